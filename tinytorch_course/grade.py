"""`grade`: grade every submission of a module (or of all) and write the grade table.

Submissions are read from `submitted/<student>/<module>/<notebook>.ipynb` and never
modified. For each one, in `[grading] workers` parallel slots:

1. `normalize.py` rebuilds it around the instructor's cells (tests with hidden tests
   from `source/`, the student's solution cells), noting duplicated, deleted or edited
   cells;
2. `sandbox.py` executes it with nbclient inside bubblewrap, where it sees only its own
   copy, a read-only Python and the package of the modules before it, with time, memory,
   process and output limits; the check framework records every probed value;
3. `scoring.py` replays the instructor's graded cells against those values in this
   process (`checks.judge`), which never runs student code;
4. `gradebook.py` stores the scores in nbgrader's gradebook, `feedback.py` writes
   `feedback/<student>/<module>/<notebook>.html`, and the table goes to
   `grades/grades.csv` with a copy in `grades/history/`.

Files that are not notebooks, a missing notebook, or a folder for a module that does
not exist are reported in the table, never run.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import execute, gradebook, sandbox, scoring
from .feedback import render, safe_outputs, write_feedback
from .normalize import normalize
from .project import CourseError, Module, Project
from .release import SOURCE_DIR, release_dir, released_notebook
from .scoring import clean

SUBMITTED_DIR = "submitted"
GRADES_DIR = "grades"
FEEDBACK_DIR = "feedback"
# Submissions graded at once, each in its own sandbox slot ([grading] workers).
DEFAULT_WORKERS = 2
DEFAULT_MEMORY_MB = 2048
CSV_COLUMNS = ["student", "module", "score", "max_score", "failed_tests", "problem", "notes"]


@dataclass
class GradeRow:
    """One submission's line in the grade table."""

    student: str
    module: str
    score: float = 0.0
    max_score: float | None = None
    failed: list[str] = field(default_factory=list)  # "grade_id: first line of the error"
    problem: str = ""  # why the submission was not (fully) graded
    notes: list[str] = field(default_factory=list)  # structure notes (never cost points)
    verdicts: list = field(default_factory=list)  # scoring.CellVerdict per graded cell
    timings: dict[str, float] = field(default_factory=dict)
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
            " | ".join(self.notes),
        ]


@dataclass
class Submission:
    student: str
    folder: Path
    module: Module | None
    problem: str = ""


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


def student_folders(project: Project, names: list[str] | None = None) -> list[Path]:
    """`submitted/<student>` folders, all or the ones `names` asks for (each must exist)."""
    folder = project.root / SUBMITTED_DIR
    if not folder.is_dir():
        raise CourseError(
            f"no {SUBMITTED_DIR}/ folder in {project.root}: put each submission at "
            f"{SUBMITTED_DIR}/<student>/<module>/<notebook>.ipynb"
        )
    found = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if names is None:
        return found
    by_name = {p.name: p for p in found}
    missing = [name for name in names if name not in by_name]
    if missing:
        known = ", ".join(sorted(by_name)) or "none"
        raise CourseError(
            f"no submissions from {', '.join(map(repr, missing))} in {SUBMITTED_DIR}/ "
            f"(students there: {known})"
        )
    return [by_name[name] for name in sorted(set(names))]


def find_submissions(
    project: Project,
    modules: list[Module],
    every_module: bool,
    students: list[str] | None = None,
) -> list[Submission]:
    """The submissions of `modules` under `submitted/` (of `students` only, if given); with
    `every_module`, also folders named after no module (reported, not graded)."""
    by_key = {m.key: m for m in modules}
    known = {m.key for m in project.modules}
    found = []
    for student in student_folders(project, students):
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


def check_package(project: Project, module: Module, lib: Path) -> None:
    """Import, in a fresh interpreter that sees only `lib`, the course package modules
    that `module` builds on; raise CourseError naming what failed (else every submission
    that imports them would score 0)."""
    before = project.modules[: project.modules.index(module)]
    names = ["tinytorch"] + [
        f"tinytorch.{name}" for m in before for name in filter(None, (m.export_target,))
    ]
    code = (
        "import importlib, tinytorch\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "print(tinytorch.__file__)\n"
    )
    env = {**execute.kernel_env(project), "PYTHONPATH": str(lib)}
    with tempfile.TemporaryDirectory(prefix="tinytorch-import-check-") as empty:
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=empty, env=env, capture_output=True, text=True
        )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        raise CourseError(
            f"the grading kernel cannot import the course package ({clean(last)}); every "
            f"submission of {module.key} that imports it would score 0: run "
            "`tinytorch-course build` first"
        )
    if not Path(done.stdout.strip()).resolve().is_relative_to(lib.resolve()):
        raise CourseError(
            f"the grading kernel imports tinytorch from {done.stdout.strip()}, not from this "
            "course's copy: grading would test another package"
        )


def _read_notebook(path: Path):
    import warnings

    import nbformat

    with warnings.catch_warnings():  # missing or repeated cell ids: normalize renumbers them
        warnings.simplefilter("ignore")
        return nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)


@dataclass
class ModuleJob:
    """What every submission of one module is graded against."""

    module: Module
    source: object  # the instructor's notebook, with hidden tests
    release: object  # the student's release notebook
    lib: Path
    data_files: list[Path]
    seed: int
    judged: list  # checks.JudgedCell of the graded cells


def _module_job(project: Project, module: Module, folder: Path) -> ModuleJob:
    source_path = project.root / SOURCE_DIR / module.key / module.notebook.name
    if not source_path.is_file():
        raise CourseError(
            f"{SOURCE_DIR}/{module.key}/{module.notebook.name} is missing: run "
            "`tinytorch-course release` first (grading uses the release's instructor copy)"
        )
    if not project.package_dir.joinpath("__init__.py").is_file():
        raise CourseError(
            f"the grading kernel cannot import the course package: no {project.package_dir}; "
            "run `tinytorch-course build` first"
        )
    source = _read_notebook(source_path)
    lib = sandbox.module_lib(project, module, folder / module.key)
    check_package(project, module, lib)
    release = release_dir(project, module)
    data = sorted(p for p in release.iterdir() if p.name != module.notebook.name)
    return ModuleJob(
        module,
        source,
        _read_notebook(released_notebook(project, module)),
        lib,
        data,
        scoring.module_seed(project.root, module.key),
        scoring.graded_cells(source),
    )


@dataclass
class Outcome:
    """One submission graded: its row, its graded notebook and what the gradebook gets."""

    row: GradeRow
    notebook: object | None = None
    verdicts: list = field(default_factory=list)


def _run_unsandboxed(job: ModuleJob, notebook, limits: dict) -> sandbox.SandboxResult:
    """`--no-sandbox`: execute in a temporary folder as this user (no isolation)."""
    with tempfile.TemporaryDirectory(prefix="tinytorch-grade-") as folder:
        for path in job.data_files:
            copy = shutil.copytree if path.is_dir() else shutil.copy2
            copy(path, Path(folder) / path.name)
        record = Path(folder) / ".observations"
        env = {
            **os.environ,
            "PYTHONPATH": str(job.lib),
            "PYTHONIOENCODING": "utf-8",
            "OPENBLAS_NUM_THREADS": "1",
            "TINYTORCH_CHECK_RECORD": str(record),
            "TINYTORCH_CHECK_SEED": str(job.seed),
        }
        env.pop("IN_TEST", None)
        ran = execute.execute(notebook, folder, env, **limits)
        observations = record.read_bytes() if record.is_file() else b""
    inside = {"seconds": ran.seconds, "kernel_seconds": ran.kernel_seconds}
    return sandbox.SandboxResult(ran.notebook, observations, ran.stopped, "", ran.seconds, inside)


def grade_one(
    project: Project, job: ModuleJob, submission: Submission, slot, limits: dict
) -> Outcome:
    """Normalize, run (in the sandbox of `slot`, or without one when `slot` is None),
    judge and write the feedback page of one submission."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    module = job.module
    row = GradeRow(clean(submission.student, 100), module.key, max_score=module.points)
    path = submission.folder / module.notebook.name
    graded, notes = normalize(_read_notebook(path), job.source, job.release)
    row.notes = [clean(n) for n in notes]
    if slot is None:
        result = _run_unsandboxed(job, copy.deepcopy(graded), limits)
    else:
        result = sandbox.run(graded, job.lib, job.data_files, slot, job.seed, **limits)
    inside = result.inside.get("seconds", result.seconds)
    timings["sandbox start"] = max(0.0, result.seconds - inside)
    timings["kernel start"] = result.inside.get("kernel_seconds", 0.0)
    timings["execution"] = max(0.0, inside - timings["kernel start"])
    mark = time.perf_counter()
    executed = safe_outputs(graded, result.notebook)
    stopped = clean(result.problem or result.stopped)
    row.verdicts = scoring.verdicts(job.judged, result.observations, job.seed, executed, stopped)
    row.score = sum(v.score for v in row.verdicts)
    row.failed = [f"{v.grade_id}: {v.message}" for v in row.verdicts if not v.passed]
    errors = scoring.run_errors(executed)
    problems = [stopped, f"error outside the tests: {errors[0]}" if errors else ""]
    row.problem = "; ".join(p for p in problems if p)
    timings["judge"] = time.perf_counter() - mark
    mark = time.perf_counter()
    title = f"{row.student} · {module.key}"
    page = render(executed, title, row.verdicts, f"{row.score:g}/{module.points:g}", row.notes)
    write_feedback(feedback_path(project, submission.student, module), page)
    timings["feedback"] = time.perf_counter() - mark
    row.timings = timings
    row.seconds = time.perf_counter() - start
    return Outcome(row, executed, row.verdicts)


def feedback_path(project: Project, student: str, module: Module) -> Path:
    return project.root / FEEDBACK_DIR / student / module.key / f"{module.notebook.stem}.html"


def _grade_all(project, jobs, gradable, workers, sandboxed, limits, log) -> list[GradeRow]:
    slots: queue.Queue = queue.Queue()
    taken = []
    memory = int(project.setting("grading", "memory_limit_mb", DEFAULT_MEMORY_MB))
    for _ in range(workers):
        if sandboxed:
            taken.append(sandbox.Slot(memory * 2**20))
            slots.put(taken[-1])
        else:
            slots.put(None)
    if taken:
        uids = ", ".join(str(slot.uid) for slot in taken)
        log(f"sandbox: bubblewrap, {taken[0].limits.how}, {workers} worker slots (uids {uids})")

    def work(submission: Submission) -> GradeRow:
        slot = slots.get()
        try:
            return grade_one(project, jobs[submission.module.key], submission, slot, limits).row
        except Exception as error:  # a bug of ours must cost one row, not the class
            row = GradeRow(clean(submission.student, 100), submission.module.key)
            row.max_score = submission.module.points
            row.problem = clean(f"not graded: {type(error).__name__}: {error}")
            return row
        finally:
            slots.put(slot)

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(work, gradable))
    finally:
        for slot in taken:
            slot.release()


def grade(
    project: Project,
    key: str | None = None,
    log=print,
    sandboxed: bool = True,
    students: list[str] | None = None,
) -> list[GradeRow]:
    """Grade every submission of one module (`key`) or of all modules, of every student or
    of `students` only; merge the rows into the table. Returns this run's rows."""
    if sandboxed:
        sandbox.check_available()
        sandbox.check_course_hidden(project)
    modules = project.select(key)
    submissions = find_submissions(project, modules, every_module=key is None, students=students)
    gradable = [s for s in submissions if not s.problem]
    used = sorted({s.module for s in gradable}, key=project.modules.index)
    unreleased = [m.key for m in used if not released_notebook(project, m).exists()]
    if unreleased:
        raise CourseError(
            f"not released: {', '.join(unreleased)}; run `tinytorch-course release` first "
            "(grading uses the cells recorded at release)"
        )
    rows = [
        GradeRow(
            clean(s.student, 100),
            clean(s.folder.name, 100),
            max_score=s.module.points if s.module else None,
            problem=clean(s.problem),
        )
        for s in submissions
        if s.problem
    ]
    if gradable:
        limits = {
            "notebook_timeout": project.setting("grading", "notebook_timeout", 300),
            "cell_timeout": project.setting("grading", "cell_timeout", 120),
            "max_output_chars": int(project.setting("grading", "max_output_chars", 100_000)),
        }
        workers = max(1, int(project.setting("grading", "workers", DEFAULT_WORKERS)))
        if not sandboxed:
            log(
                "WARNING: --no-sandbox: submissions run with your rights and can change "
                "any file you can (gradebook, grades, other submissions, the course)"
            )
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="tinytorch-grading-") as folder:
            Path(folder).chmod(0o755)
            jobs = {m.key: _module_job(project, m, Path(folder)) for m in used}
            graded = _grade_all(project, jobs, gradable, workers, sandboxed, limits, log)
        mark = time.perf_counter()
        entries = [
            (s.student, r.module, s.module.notebook.stem, {v.grade_id: v.score for v in r.verdicts})
            for s, r in zip(gradable, graded, strict=True)
            if r.verdicts
        ]
        for problem in gradebook.record(project, entries):
            log(f"gradebook: {problem}")
        gradebook_seconds = time.perf_counter() - mark
        for r in graded:
            r.timings["gradebook"] = gradebook_seconds / len(graded)
        rows += graded
        elapsed = time.perf_counter() - start
        log(
            f"graded {len(gradable)} submissions in {elapsed:.1f}s "
            f"({elapsed / len(gradable):.1f}s each, {workers} workers)"
        )
    rows.sort(key=lambda r: (r.student, r.module))
    write_table(project, rows)
    return rows


def earlier_rows(path: Path) -> list[list[str]]:
    """The rows of an existing grade table, or a clear error if it is not one of ours."""
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows or rows[0] != CSV_COLUMNS or any(len(r) != len(CSV_COLUMNS) for r in rows):
        raise CourseError(
            f"{path} is not a grade table this tool wrote (columns {', '.join(CSV_COLUMNS)}); "
            "move it away and grade again (every earlier table is in grades/history/)"
        )
    return rows[1:]


def write_table(project: Project, rows: list[GradeRow]) -> Path:
    """Merge this run's rows into `grades/grades.csv`: a (student, module) graded now
    replaces its earlier row, every other row is kept. A copy of the whole table goes to
    `grades/history/`."""
    folder = project.root / GRADES_DIR
    (folder / "history").mkdir(parents=True, exist_ok=True)
    path = folder / "grades.csv"
    table = {(r[0], r[1]): r for r in earlier_rows(path)}
    table |= {(r.student, r.module): r.csv_row() for r in rows}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(table[k] for k in sorted(table))
    text = out.getvalue()
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
        for verdict in row.verdicts or []:
            if not verdict.passed:
                out(f"{'':<{width}}  {verdict.line()}")
        if not row.verdicts:
            for failed in row.failed:
                out(f"{'':<{width}}    FAIL {failed}")
        if row.problem:
            out(f"{'':<{width}}    NOTE {row.problem}")
        for note in row.notes:
            out(f"{'':<{width}}    NOTE {note}")
    out(f"table written to {GRADES_DIR}/grades.csv")
