"""nbgrader configuration of this course, read by every `nbgrader` command run in this folder
and by `tinytorch-course release` (which runs nbgrader's generate_assignment with it).

`grade` does not run nbgrader's autograde: it runs each submission in its own sandbox and
scores it with the course's trusted judge (see tinytorch_course/grade.py), then records
the scores in the gradebook that release made. The values come from `settings.ini` (the
one place instructors edit). nbgrader's course folders live beside this file: `source/`
(staged by `release` from modules/, a build product), `release/`, `submitted/`,
`feedback/`, and the gradebook `<course_id>.db`.
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
