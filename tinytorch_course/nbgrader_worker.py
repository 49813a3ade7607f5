"""A worker process that runs nbgrader for `release` and `grade` (internal).

Run as `python -m tinytorch_course.nbgrader_worker ROOT generate KEY...` or
`... ROOT grade MODULE/STUDENT...` with the course root as working directory and the
grading kernel's environment. Importing nbgrader takes seconds, so one worker handles
many jobs; it reports each one as a line `@@tinytorch {json}` on stdout so that the parent
(`grade.py`) can enforce a wall-clock limit per submission and restart the worker when
one has to be killed. The worker never raises: every job ends with a result line.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

MARK = "@@tinytorch "
NOT_RUN = "NotRunError"


def emit(**fields) -> None:
    """Report one event to the parent process."""
    print(MARK + json.dumps(fields), flush=True)


def make_api(root: Path):
    """An `NbGraderAPI` configured by the course's `nbgrader_config.py`."""
    from nbgrader.apps.api import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    config.CourseDirectory.root = str(root)
    coursedir = CourseDirectory(config=config)
    return NbGraderAPI(coursedir=coursedir, config=config)


def _log_tail(result: dict, lines: int = 6) -> str:
    text = (result.get("error") or "") + "\n" + (result.get("log") or "")
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def generate(api, key: str) -> None:
    start = time.time()
    result = api.generate_assignment(key, force=True, create=True)
    emit(
        event="done",
        job=key,
        ok=bool(result.get("success")),
        seconds=time.time() - start,
        log=result.get("log", ""),
        error=result.get("error", ""),
    )


def first_line(text: str) -> str:
    lines = [line for line in str(text).splitlines() if line.strip()]
    return lines[0].strip() if lines else ""


def cell_problem(cell: dict) -> str | None:
    """Why nbgrader gives a graded code cell 0: its first error, or what it wrote to stderr."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return f"{output.get('ename')}: {first_line(output.get('evalue', ''))}".strip()
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            return f"wrote to stderr: {first_line(output.get('text', ''))}"
    return None


def stop_reason(cells: list[dict]) -> str | None:
    """Why execution stopped early (time limit, dead kernel), if it did."""
    for cell in cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error" and output.get("ename") == NOT_RUN:
                return first_line(output.get("evalue", ""))
    return None


def read_scores(api, module: str, student: str, notebook: str) -> dict:
    """Scores per graded cell from the gradebook, errors from the autograded notebook."""
    from nbgrader.api import Gradebook

    coursedir = api.coursedir
    autograded = (
        Path(coursedir.format_path(coursedir.autograded_directory, student, module))
        / f"{notebook}.ipynb"
    )
    cells = (
        json.loads(autograded.read_text(encoding="utf-8"))["cells"] if autograded.exists() else []
    )
    order = {}
    problems = {}
    for index, cell in enumerate(cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade") and meta.get("grade_id"):
            order[meta["grade_id"]] = index
            problems[meta["grade_id"]] = cell_problem(cell)
    with Gradebook(coursedir.db_url, coursedir.course_id) as gradebook:
        submission = gradebook.find_submission_notebook(notebook, module, student)
        grades = [
            {
                "name": g.name,
                "score": float(g.score or 0),
                "max_score": float(g.max_score or 0),
                "error": problems.get(g.name)
                if g.name in problems
                else "this test cell is missing from the submission",
            }
            for g in submission.grades
        ]
    grades.sort(key=lambda g: order.get(g["name"], len(order)))
    return {
        "grades": grades,
        "stopped": stop_reason(cells),
        "other_error": first_other_error(cells),
    }


def first_other_error(cells: list[dict]) -> str | None:
    """The first error in a cell that is not a test cell (a broken solution cell), if any."""
    for index, cell in enumerate(cells):
        if cell.get("cell_type") != "code" or cell.get("metadata", {}).get("nbgrader", {}).get(
            "grade"
        ):
            continue
        problem = cell_problem(cell)
        if (
            problem
            and not problem.startswith(NOT_RUN)
            and not problem.startswith("wrote to stderr")
        ):
            return f"cell {index}: {problem}"
    return None


def grade(api, job: str) -> None:
    module, student, notebook = job.split("/")
    start = time.time()
    result = api.autograde(module, student, force=True, create=True)
    if not result.get("success"):
        emit(
            event="done",
            job=job,
            ok=False,
            seconds=time.time() - start,
            error=f"nbgrader autograde failed: {_log_tail(result)}",
        )
        return
    scores = read_scores(api, module, student, notebook)
    graded = time.time() - start
    feedback = api.generate_feedback(module, student, force=True)
    emit(
        event="done",
        job=job,
        ok=True,
        seconds=graded,
        feedback_seconds=time.time() - start - graded,
        feedback_error=None if feedback.get("success") else _log_tail(feedback),
        **scores,
    )


def main(argv: list[str]) -> int:
    root, command, *jobs = argv
    api = make_api(Path(root))
    emit(event="ready")
    for job in jobs:
        emit(event="start", job=job)
        try:
            (generate if command == "generate" else grade)(api, job)
        except Exception:
            emit(event="done", job=job, ok=False, error=traceback.format_exc(limit=3))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
