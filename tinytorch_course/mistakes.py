"""`mistakes`: apply each typical student mistake of a module's catalogue to the reference
solution and require the graded tests it names to fail.

The catalogue is `modules/NN_name/mistakes.toml` (format in CONTRIBUTING.md): each
`[[mistake]]` names the solution cell (`cell`, its grade_id), what the student did
(`name`), an exact text of the reference solution (`find`, once inside that cell's
solution regions), what the student wrote instead (`replace`) and the graded cells that
must fail (`caught_by`). They must fail on the tests the student has: the hidden tests are
taken out first, so that a student who makes a catalogued mistake sees it in `test`, not
first in `grade`. Each mutated source runs in a fresh subprocess
(`tinytorch_course.cellrun`), two at a time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


def run_text(
    project: Project,
    module: Module,
    text: str,
    timeout: float = 300,
    only: tuple[str, ...] | None = None,
) -> Run:
    """Run `text` (a version of `module`'s source) in a fresh Python; its verdicts (with
    `only`, of those graded cells alone, skipping the others)."""
    from .runner import kernel_env

    env = kernel_env(project)
    env["TINYTORCH_CHECK_SEED"] = env.get("TINYTORCH_CHECK_SEED", "0")
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "tinytorch_course.cellrun",
                str(module.folder),
                *([",".join(only)] if only else []),
            ],
            input=text,
            capture_output=True,
            text=True,
            encoding="utf-8",
            env=env,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        cells = {c.grade_id: (False, f"timed out after {timeout:g}s") for c in module.graded_cells}
        return Run(cells, [], time.perf_counter() - start)
    seconds = time.perf_counter() - start
    lines = done.stdout.strip().splitlines()
    try:
        data = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        cells = {c.grade_id: (False, f"crashed: {tail}") for c in module.graded_cells}
        return Run(cells, [tail], seconds)
    cells = {k: (bool(v[0]), v[1]) for k, v in data["cells"].items()}
    for graded in module.graded_cells:  # a cell that never ran did not pass
        if only is None or graded.grade_id in only:
            cells.setdefault(graded.grade_id, (False, "did not run"))
    return Run(cells, data["errors"], seconds)


def run_many(
    project: Project,
    module: Module,
    texts: Iterable[str],
    timeout: float = 300,
    only: Iterable[tuple[str, ...] | None] | None = None,
) -> list[Run]:
    """`run_text` over several sources, `WORKERS` at a time, results in order."""
    workers = int(os.environ.get("TINYTORCH_MUTATION_WORKERS", WORKERS))
    texts = list(texts)
    selections = list(only) if only is not None else [None] * len(texts)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(
            pool.map(
                lambda job: run_text(project, module, job[0], timeout, job[1]),
                zip(texts, selections, strict=True),
            )
        )


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
