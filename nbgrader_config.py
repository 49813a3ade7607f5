"""nbgrader configuration of this course, read by every `nbgrader` command run in this folder
and by `tinytorch-course release` / `grade` (which always run nbgrader with this file).

The values come from `settings.ini` (the one place instructors edit): the course id, the
per-cell and per-notebook time limits. nbgrader's course folders live beside this file:
`source/` (staged by `release` from modules/, a build product), `release/`, `submitted/`,
`autograded/`, `feedback/`, and the gradebook `<course_id>.db`.
"""

import configparser
from pathlib import Path

c = get_config()  # noqa: F821 (traitlets defines get_config when it runs this file)

_root = Path(__file__).resolve().parent
_settings = configparser.ConfigParser()
_settings.read(_root / "settings.ini", encoding="utf-8")
_course_id = _settings.get("course", "course_id", fallback="tinytorch")

c.CourseDirectory.root = str(_root)
c.CourseDirectory.course_id = _course_id
c.CourseDirectory.db_url = f"sqlite:///{_root / (_course_id + '.db')}"
# nbgrader copies every other file of an assignment folder into the release and into the
# grading folder: never the .py solution sources, and never a `tinytorch` package a student
# put beside their notebook (it would shadow the course's package in the grading kernel).
c.CourseDirectory.ignore = [
    ".ipynb_checkpoints",
    "*.pyc",
    "__pycache__",
    "feedback",
    "*.py",
    "tinytorch",
    ".*",
]

# The student's stub for each solution region.
c.ClearSolutions.code_stub = {
    "python": (
        "# YOUR CODE HERE\n"
        'raise NotImplementedError("write this part, then run the test cell below it")'
    )
}

# Time limits: nbgrader's own timeout is per cell; DeadlineExecute adds the per-notebook
# limit, scores what completed, and survives a kernel that dies (os._exit, a crash).
c.Execute.timeout = int(_settings.getfloat("grading", "cell_timeout", fallback=120))
c.DeadlineExecute.notebook_timeout = _settings.getfloat("grading", "notebook_timeout", fallback=300)
c.Autograde.autograde_preprocessors = [
    "tinytorch_course.nbgrader_execute.DeadlineExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
