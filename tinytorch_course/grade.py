"""`grade`: autograde every submission with nbgrader, then write and print the grade table.

Submissions are read from `submitted/<student>/<module>/<notebook>.ipynb` (nbgrader's
layout) and never modified; nbgrader grades copies in `autograded/`, writes feedback HTML
to `feedback/<student>/<module>/`, and keeps every result in the gradebook
(`<course_id>.db`). The table of each run goes to `grades/grades.csv`, and a copy to
`grades/history/` so no earlier table is lost.

What the wrapper adds to nbgrader, whose failures are silent:

- before grading, the grading kernel must import this course's `tinytorch` (the modules a
  notebook builds on); if it cannot, grading stops with the reason instead of every
  student scoring 0;
- files that are not notebooks (empty, invalid JSON), a missing notebook, or a folder
  for a module that does not exist are reported in the table, never sent to nbgrader;
- each submission runs with a whole-notebook time limit (`[grading] notebook_timeout`)
  and is scored on what completed (`DeadlineExecute`); a worker that still hangs is
  killed after that limit plus a margin, costing only that submission;
- scores come from the gradebook (nbgrader's exit code says nothing about them).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .project import CourseError, Module, Project
from .release import released_notebook

SUBMITTED_DIR = "submitted"
GRADES_DIR = "grades"
KILL_MARGIN_SECONDS = 60.0
# Submissions graded at once, each in its own nbgrader worker ([grading] workers).
DEFAULT_WORKERS = 2
CSV_COLUMNS = ["student", "module", "score", "max_score", "failed_tests", "problem"]


@dataclass
class GradeRow:
    """One submission's line in the grade table."""

    student: str
    module: str
    score: float = 0.0
    max_score: float | None = None
    failed: list[str] = field(default_factory=list)  # "grade_id: first line of the error"
    problem: str = ""  # why the submission was not (fully) graded
    seconds: float = 0.0

    def csv_row(self) -> list[str]:
        max_score = "" if self.max_score is None else f"{self.max_score:g}"
        return [
            self.student,
            self.module,
            f"{self.score:g}",
            max_score,
            " | ".join(self.failed),
            self.problem,
        ]


@dataclass
class Submission:
    student: str
    folder: Path
    module: Module | None
    problem: str = ""

    @property
    def job(self) -> str:
        return f"{self.module.key}/{self.student}/{self.module.notebook.stem}"


def _first_line(text: str) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def notebook_problem(path: Path) -> str:
    """Why `path` cannot be graded as a notebook, or "" when it can."""
    import nbformat

    data = path.read_bytes()
    if not data.strip():
        return f"not graded: {path.name} is empty"
    try:
        text = data.decode("utf-8")
        json.loads(text)
    except (UnicodeDecodeError, ValueError) as error:
        return f"not graded: {path.name} is not valid JSON ({_first_line(error)})"
    try:
        nbformat.reads(text, as_version=4)
    except Exception as error:  # nbformat raises several types for malformed notebooks
        return f"not graded: {path.name} is not a notebook ({_first_line(error)})"
    return ""


def find_submissions(
    project: Project, modules: list[Module], every_module: bool
) -> list[Submission]:
    """The submissions of `modules` under `submitted/`; with `every_module`, also folders
    named after no module (reported, not graded)."""
    folder = project.root / SUBMITTED_DIR
    if not folder.is_dir():
        raise CourseError(
            f"no {SUBMITTED_DIR}/ folder in {project.root}: put each submission at "
            f"{SUBMITTED_DIR}/<student>/<module>/<notebook>.ipynb"
        )
    by_key = {m.key: m for m in modules}
    known = {m.key for m in project.modules}
    found = []
    for student in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for part in sorted(
            p for p in student.iterdir() if p.is_dir() and not p.name.startswith(".")
        ):
            if part.name in by_key:
                module = by_key[part.name]
                notebook = part / module.notebook.name
                if notebook.is_file():
                    problem = notebook_problem(notebook)
                else:
                    others = (
                        ", ".join(sorted(p.name for p in part.glob("*.ipynb"))) or "no notebook"
                    )
                    problem = (
                        f"not graded: no {module.notebook.name} in the submission (found: {others})"
                    )
                found.append(Submission(student.name, part, module, problem))
            elif every_module and part.name not in known:
                found.append(
                    Submission(
                        student.name,
                        part,
                        None,
                        f"not graded: there is no module {part.name!r} in this course",
                    )
                )
    return found


def check_grading_kernel(project: Project, modules: list[Module]) -> str:
    """Start the grading kernel the way nbgrader will and import `tinytorch` and each
    module's package; raise CourseError naming what failed. Returns tinytorch's folder."""
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    from .runner import kernel_env

    names = ["tinytorch"] + [f"tinytorch.{m.export_target}" for m in modules if m.export_target]
    code = (
        "import importlib, json\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "import tinytorch\n"
        "print(json.dumps(list(tinytorch.__path__)))"
    )
    notebook = new_notebook(cells=[new_code_cell(code)])
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    client = NotebookClient(notebook, timeout=120, kernel_name="python3", allow_errors=True)
    try:
        with tempfile.TemporaryDirectory(
            prefix="tinytorch-kernel-check-"
        ) as empty:  # as in autograded/
            client.execute(cwd=empty, env=kernel_env(project))
    except Exception as error:
        raise CourseError(
            f"could not start the grading kernel (python3): {type(error).__name__}: {error}"
        ) from None
    outputs = notebook.cells[0].outputs
    failed = next((o for o in outputs if o.get("output_type") == "error"), None)
    if failed:
        raise CourseError(
            f"the grading kernel cannot import the course package ({failed['ename']}: {failed['evalue']}); "
            f"every submission that imports tinytorch would score 0. The kernel runs with "
            f"PYTHONPATH={project.root}: run `tinytorch-course build` there first"
        )
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    paths = json.loads(text.strip().splitlines()[-1])
    expected = project.package_dir.resolve()
    if not any(Path(p).resolve() == expected for p in paths):
        raise CourseError(
            f"the grading kernel imports tinytorch from {', '.join(paths)}, not from this course's "
            f"{expected}: grading would test another package"
        )
    return str(expected)


def grading_env(project: Project, module: Module) -> dict[str, str]:
    """The environment that grades `module`: its kernel imports a `tinytorch` holding only
    the modules before it (a copy made for this run; the graded module and later ones are
    stubs that raise ImportError), so a solution cell that imports the reference answer,
    e.g. `from tinytorch.autograd import *` in module 01, is graded like a missing answer.
    What is tested is the student's code."""
    from .runner import kernel_env

    folder = project.root / ".tinytorch" / "grading" / module.key
    shutil.rmtree(folder, ignore_errors=True)
    package = folder / project.package_dir.name
    package.mkdir(parents=True)
    shutil.copy2(project.package_dir / "__init__.py", package / "__init__.py")
    position = project.modules.index(module)
    for index, other in enumerate(project.modules):
        for name in (other.export_target, *other.extra_targets):
            relative = f"{name.replace('.', '/')}.py"
            (package / relative).parent.mkdir(parents=True, exist_ok=True)
            if index < position:
                shutil.copy2(project.package_dir / relative, package / relative)
            else:  # shadows the reference, which an editable install would otherwise find
                message = (
                    f"tinytorch.{name} is built in module {other.key}; while module "
                    f"{module.key} is graded, the kernel has only the modules before it"
                )
                (package / relative).write_text(
                    f"raise ImportError({message!r})\n", encoding="utf-8"
                )
    env = kernel_env(project)
    env["PYTHONPATH"] = os.pathsep.join([str(folder), env["PYTHONPATH"]])
    return env


def _modules_needed_by(project: Project, modules: list[Module]) -> list[Module]:
    """The modules whose package the selected ones build on (all before the last one)."""
    last = max(project.modules.index(m) for m in modules)
    return project.modules[:last]


def _row(submission: Submission, result: dict) -> GradeRow:
    module = submission.module
    row = GradeRow(
        submission.student, module.key, max_score=module.points, seconds=result.get("seconds", 0.0)
    )
    if not result.get("ok"):
        row.problem = _first_line(result.get("error", "grading failed"))
        if "killed" not in result:
            row.problem = "not graded: " + row.problem.removeprefix("not graded: ")
        return row
    grades = result.get("grades", [])
    row.score = sum(g["score"] for g in grades)
    row.max_score = sum(g["max_score"] for g in grades)
    for g in grades:
        if g["score"] < g["max_score"]:
            row.failed.append(f"{g['name']}: {g['error'] or 'no points'}")
    other = result.get("other_error")
    feedback = result.get("feedback_error")
    problems = [
        result.get("stopped") or "",
        f"error outside the tests: {other}" if other else "",
        f"no feedback file: {_first_line(feedback)}" if feedback else "",
    ]
    row.problem = "; ".join(p for p in problems if p)
    return row


def grade(project: Project, key: str | None = None, log=print) -> list[GradeRow]:
    """Autograde every submission of one module (`key`) or of all modules; write the table."""
    from .nbgrader_jobs import require_nbgrader_config, run_jobs

    require_nbgrader_config(project)
    modules = project.select(key)
    submissions = find_submissions(project, modules, every_module=key is None)
    gradable = [s for s in submissions if not s.problem]
    used = sorted({s.module for s in gradable}, key=project.modules.index)
    unreleased = [m.key for m in used if not released_notebook(project, m).exists()]
    if unreleased:
        raise CourseError(
            f"not released: {', '.join(unreleased)}; run `tinytorch-course release` first "
            "(nbgrader grades against the cells and checksums recorded at release)"
        )
    rows = [
        GradeRow(
            s.student,
            s.folder.name,
            max_score=s.module.points if s.module else None,
            problem=s.problem,
        )
        for s in submissions
        if s.problem
    ]
    if gradable:
        package = check_grading_kernel(project, _modules_needed_by(project, used))
        log(f"grading {len(gradable)} submissions with the kernel importing {package}")
        limit = project.setting("grading", "notebook_timeout", 300)
        start = time.perf_counter()
        workers = int(project.setting("grading", "workers", DEFAULT_WORKERS))
        results = {}
        for module in used:
            jobs = [s.job for s in gradable if s.module == module]
            results |= run_jobs(
                project,
                "grade",
                jobs,
                job_seconds=limit + KILL_MARGIN_SECONDS,
                workers=workers,
                env=grading_env(project, module),
            )
        elapsed = time.perf_counter() - start
        rows += [_row(s, results[s.job]) for s in gradable]
        log(
            f"graded {len(gradable)} submissions in {elapsed:.1f}s ({elapsed / len(gradable):.1f}s each)"
        )
    rows.sort(key=lambda r: (r.student, r.module))
    write_table(project, rows)
    return rows


def table_csv(rows: list[GradeRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(row.csv_row() for row in rows)
    return out.getvalue()


def write_table(project: Project, rows: list[GradeRow]) -> Path:
    """`grades/grades.csv` (this run) and a timestamped copy in `grades/history/`."""
    folder = project.root / GRADES_DIR
    (folder / "history").mkdir(parents=True, exist_ok=True)
    text = table_csv(rows)
    path = folder / "grades.csv"
    path.write_text(text, encoding="utf-8")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    history = folder / "history" / f"grades-{stamp}.csv"
    suffix = 1
    while history.exists():
        suffix += 1
        history = folder / "history" / f"grades-{stamp}-{suffix}.csv"
    history.write_text(text, encoding="utf-8")
    return path


def read_table(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def print_table(rows: list[GradeRow], out=print) -> None:
    """Student, module, score; each failed test and problem on the lines below."""
    if not rows:
        out("no submissions found")
        return
    width = max(len(r.student) for r in rows)
    for row in rows:
        total = "-" if row.max_score is None else f"{row.max_score:g}"
        out(f"{row.student:<{width}}  {row.module:<14} {row.score:>6g}/{total:<5}")
        for failed in row.failed:
            out(f"{'':<{width}}    FAIL {failed}")
        if row.problem:
            out(f"{'':<{width}}    NOTE {row.problem}")
    out(f"table written to {GRADES_DIR}/grades.csv")
