"""`mistakes`: apply each typical student mistake of a module's catalogue to the reference
solution and require the graded tests it names to fail.

The catalogue is `modules/NN_name/mistakes.toml` (format in CONTRIBUTING.md): each
`[[mistake]]` names the solution cell (`cell`, its grade_id), what the student did
(`name`), an exact text of the reference solution (`find`, once inside that cell's
solution regions), what the student wrote instead (`replace`) and the graded cells that
must fail (`caught_by`). They must fail on the tests the student has: the hidden tests are
taken out first, so that a student who makes a catalogued mistake sees it in `test`, not
first in `grade`. Each mutated source runs in a fresh process, forked from a warmed-up
`tinytorch_course.cellrun` server, two at a time.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .lint import _cells

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from .project import (
    HIDDEN_MARKERS,
    SOLUTION_MARKERS,
    CourseError,
    Module,
    Project,
    nbgrader_metadata,
    strip_regions,
)

CATALOGUE = "mistakes.toml"
WORKERS = 2
_BEGIN, _END = SOLUTION_MARKERS


@dataclass(frozen=True)
class Region:
    """The lines (0-based, end exclusive) between one pair of solution markers."""

    cell: str
    start: int
    end: int


def solution_regions(text: str) -> list[Region]:
    """Every solution region of a module source, with the grade_id of its cell."""
    metadata = nbgrader_metadata(text)
    regions = []
    for number, _marker, body in _cells(text):
        cell = (metadata.get(number) or {}).get("grade_id", f"line {number}")
        start = None
        for offset, line in enumerate(body):
            index = number + offset  # 0-based index of this body line in the file
            if line.strip() == _BEGIN:
                start = index + 1
            elif line.strip() == _END and start is not None:
                regions.append(Region(cell, start, index))
                start = None
    return regions


@dataclass(frozen=True)
class Mistake:
    cell: str
    name: str
    find: str
    replace: str
    caught_by: tuple[str, ...]


def load_catalogue(module: Module) -> list[Mistake]:
    path = module.folder / CATALOGUE
    if not path.is_file():
        return []
    with path.open("rb") as file:
        data = tomllib.load(file)
    mistakes = []
    for number, entry in enumerate(data.get("mistake", []), start=1):
        missing = {"cell", "name", "find", "replace", "caught_by"} - set(entry)
        if missing or not entry.get("caught_by"):
            raise CourseError(f"{path}: mistake {number} needs {sorted(missing) or 'caught_by'}")
        mistakes.append(
            Mistake(
                entry["cell"],
                entry["name"],
                entry["find"],
                entry["replace"],
                tuple(entry["caught_by"]),
            )
        )
    return mistakes


def apply(text: str, cell: str, find: str, replace: str) -> str:
    """`text` with `find` replaced by `replace` inside the solution regions of `cell`;
    `find` must occur exactly once there."""
    lines = text.splitlines(keepends=True)
    regions = [r for r in solution_regions(text) if r.cell == cell]
    if not regions:
        raise CourseError(f"no solution region in a cell with grade_id {cell!r}")
    hits = []
    for region in regions:
        chunk = "".join(lines[region.start : region.end])
        position = chunk.find(find)
        while position != -1:
            hits.append((region, position))
            position = chunk.find(find, position + 1)
    if len(hits) != 1:
        raise CourseError(
            f"{find!r} occurs {len(hits)} times in the solution regions of {cell!r}, not once"
        )
    region, position = hits[0]
    chunk = "".join(lines[region.start : region.end])
    chunk = chunk[:position] + replace + chunk[position + len(find) :]
    return "".join(lines[: region.start]) + chunk + "".join(lines[region.end :])


@dataclass
class Run:
    """The verdicts of one execution of a module source."""

    cells: dict[str, tuple[bool, str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def failed(self) -> set[str]:
        return {cell for cell, (passed, _) in self.cells.items() if not passed}


class CellRunner:
    """A `tinytorch_course.cellrun` server for one module: it runs one source at a time, each
    in a child forked from a Python that has numpy imported already."""

    def __init__(self, project: Project, module: Module):
        from .runner import kernel_env

        self.module = module
        self.env = kernel_env(project)
        self.env["TINYTORCH_CHECK_SEED"] = self.env.get("TINYTORCH_CHECK_SEED", "0")
        self.process: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        self.stderr = tempfile.TemporaryFile()
        command = [sys.executable, "-m", "tinytorch_course.cellrun", str(self.module.folder)]
        return subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            encoding="utf-8",
            env=self.env,
        )

    def run(self, text: str, timeout: float = 300, only: tuple[str, ...] | None = None) -> Run:
        """Run `text` (a version of the module's source); its verdicts (with `only`, of those
        graded cells alone, skipping the others)."""
        if self.process is None:
            self.process = self._start()
        job = {"text": text, "only": list(only) if only else None, "timeout": timeout}
        start = time.perf_counter()
        try:
            self.process.stdin.write(json.dumps(job) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except OSError:
            line = ""
        seconds = time.perf_counter() - start
        if not line:  # the server itself died: report it, start another for the next job
            self.stderr.seek(0)
            tail = self.stderr.read().decode("utf-8", "replace").strip().splitlines()
            self.close()
            answer = {"crashed": f"the cell runner died: {tail[-1] if tail else 'no output'}"}
        else:
            answer = json.loads(line)
        return self._verdicts(answer, timeout, only, seconds)

    def _verdicts(self, answer: dict, timeout: float, only, seconds: float) -> Run:
        graded = self.module.graded_cells
        if answer.get("timed_out"):
            cells = {c.grade_id: (False, f"timed out after {timeout:g}s") for c in graded}
            return Run(cells, [], seconds)
        if "crashed" in answer:
            tail = answer["crashed"]
            cells = {c.grade_id: (False, f"crashed: {tail}") for c in graded}
            return Run(cells, [tail], seconds)
        cells = {k: (bool(v[0]), v[1]) for k, v in answer["cells"].items()}
        for cell in graded:  # a cell that never ran did not pass
            if only is None or cell.grade_id in only:
                cells.setdefault(cell.grade_id, (False, "did not run"))
        return Run(cells, answer["errors"], seconds)

    def close(self) -> None:
        if self.process is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process.stdout.close()
            self.stderr.close()
            self.process = None

    def __enter__(self) -> CellRunner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_text(
    project: Project,
    module: Module,
    text: str,
    timeout: float = 300,
    only: tuple[str, ...] | None = None,
) -> Run:
    """Run `text` (a version of `module`'s source) in a fresh process; its verdicts (with
    `only`, of those graded cells alone, skipping the others)."""
    with CellRunner(project, module) as runner:
        return runner.run(text, timeout, only)


def run_many(
    project: Project,
    module: Module,
    texts: Iterable[str],
    timeout: float = 300,
    only: Iterable[tuple[str, ...] | None] | None = None,
) -> list[Run]:
    """`run_text` over several sources, `WORKERS` at a time (one cell runner each), results
    in order."""
    workers = int(os.environ.get("TINYTORCH_MUTATION_WORKERS", WORKERS))
    texts = list(texts)
    selections = list(only) if only is not None else [None] * len(texts)
    runners: queue.SimpleQueue = queue.SimpleQueue()
    started = [CellRunner(project, module) for _ in range(max(1, min(workers, len(texts))))]
    for runner in started:
        runners.put(runner)

    def work(job) -> Run:
        runner = runners.get()
        try:
            return runner.run(job[0], timeout, job[1])
        finally:
            runners.put(runner)

    try:
        with ThreadPoolExecutor(max_workers=len(started)) as pool:
            return list(pool.map(work, zip(texts, selections, strict=True)))
    finally:
        for runner in started:
            runner.close()


def baseline(project: Project, module: Module) -> Run:
    """The reference source's run, which must pass every graded cell."""
    run = run_text(project, module, module.text)
    failing = sorted(run.failed())
    if failing or run.errors:
        detail = "; ".join([f"{c}: {run.cells[c][1]}" for c in failing] + run.errors)
        raise CourseError(f"{module.key}: the reference solution does not pass: {detail}")
    return run


@dataclass
class Verdict:
    mistake: Mistake
    ok: bool
    line: str


def check_mistakes(
    project: Project, module: Module, log: Callable[[str], None] = print, fast: bool = False
) -> list[Verdict]:
    """Apply every catalogued mistake of `module` and run the graded cells without their
    hidden tests (as the student runs them); one verdict (and printed line) each.
    `fast`: run only the graded cells each mistake names (others are not reported)."""
    mistakes = load_catalogue(module)
    if not mistakes:
        return []
    reference = baseline(project, module)
    graded = {c.grade_id for c in module.graded_cells}
    texts, verdicts = [], []
    for mistake in mistakes:
        unknown = set(mistake.caught_by) - graded
        if unknown:
            raise CourseError(f"{module.key}: {mistake.name!r}: no graded cell {sorted(unknown)}")
        mistaken = apply(module.text, mistake.cell, mistake.find, mistake.replace)
        texts.append(strip_regions(mistaken, None, HIDDEN_MARKERS) + "\n")
    timeout = max(30.0, 4 * reference.seconds + 10)
    only = [m.caught_by for m in mistakes] if fast else None
    runs = run_many(project, module, texts, timeout, only)
    for mistake, run in zip(mistakes, runs, strict=True):
        failed = run.failed()
        missed = [c for c in mistake.caught_by if c not in failed]
        also = sorted(failed - set(mistake.caught_by))
        if missed:
            line = f"  MISSED  {mistake.cell}: {mistake.name} (passed: {', '.join(missed)}"
            line += " without hidden tests)"
        else:
            first = run.cells[mistake.caught_by[0]][1]
            line = f"  caught  {mistake.cell}: {mistake.name} -> {first[:90]}"
            if also:
                line += f" (also failed: {', '.join(also)})"
        verdicts.append(Verdict(mistake, not missed, line))
        log(line)
    return verdicts


def cmd_mistakes(project: Project, args) -> int:
    failed = 0
    for module in project.select(args.module):
        if not (module.folder / CATALOGUE).is_file():
            continue
        print(f"{module.key}: {len(load_catalogue(module))} catalogued mistakes")
        verdicts = check_mistakes(project, module, fast=args.fast)
        missed = sum(not v.ok for v in verdicts)
        print(f"  {module.key}: {len(verdicts) - missed}/{len(verdicts)} mistakes caught")
        failed += missed
    return 1 if failed else 0


def register(add) -> None:
    parser = add(
        "mistakes",
        cmd_mistakes,
        "apply each catalogued student mistake; the graded cells it names must fail "
        "on the tests students have (hidden tests taken out)",
    )
    parser.add_argument("module", nargs="?", help="module key, name or number (default: all)")
    parser.add_argument(
        "--fast",
        action="store_true",
        help="run only the graded cells a mistake names (no 'also failed' report)",
    )
