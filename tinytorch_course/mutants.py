"""`bench mutation`: mutmut's operators over the solution regions, and how many of the
mutants the graded cells kill.

Each mutant is one change that mutmut's operators make to one line of a solution region
(an operator swapped, a number changed, a keyword flipped, an assignment dropped...). The
module's code cells run on the mutated source in a fresh Python (as `mistakes` does); a
mutant is killed when a graded cell fails or the notebook errors. Survivors that cannot
change what a student would observe are listed, with the reason, in
`modules/NN_name/mutants-equivalent.toml` and reported apart.

Two stages (the default): each mutant first runs the notebook only up to and including the
graded cells that test its own solution cell (the cheap stage; the other graded cells are
skipped); a mutant killed there is killed. Only the survivors then run the whole notebook,
where a later test may still catch them. `--one-stage` runs every mutant on the whole
notebook. Both give the same verdicts as long as no graded cell changes what a later cell
sees (its inputs come from its own seeded generator); on module 04 they were compared
mutant by mutant: identical, in 106 s against 200 s.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

from .lint import _cells
from .mistakes import Region, Run, baseline, run_many, solution_regions, tomllib
from .project import Module, Project, nbgrader_metadata

EQUIVALENT = "mutants-equivalent.toml"


@dataclass(frozen=True)
class Mutant:
    cell: str
    line: int  # 0-based line in the module source
    original: str
    mutated: str
    text: str  # the whole mutated source


def mutants(text: str, regions: list[Region]) -> list[Mutant]:
    """Every mutant mutmut makes on a line inside a solution region. mutmut parses one
    cell at a time (a cell is a complete piece of Python), which keeps this fast."""
    from mutmut import Context, list_mutations, mutate

    lines = text.splitlines(keepends=True)
    found = []
    for first, last in _cells_with_regions(text, regions):
        cell = "".join(lines[first:last])
        inside = {
            i - first: r.cell for r in regions for i in range(r.start, r.end) if first <= i < last
        }
        for mutation_id in list_mutations(Context(source=cell, filename="cell.py")):
            number = mutation_id.line_number
            if number not in inside:
                continue
            context = Context(source=cell, mutation_id=mutation_id, filename="cell.py")
            mutated, count = mutate(context)
            if count != 1:
                continue
            new_lines = mutated.splitlines()
            changed = new_lines[number] if number < len(new_lines) else ""
            whole = "".join(lines[:first]) + mutated + "".join(lines[last:])
            original = lines[first + number].rstrip("\n")
            found.append(Mutant(inside[number], first + number, original, changed, whole))
    return found


def _cells_with_regions(text: str, regions: list[Region]) -> list[tuple[int, int]]:
    """(first, last) 0-based line span of each cell body that holds a solution region."""
    markers = [i for i, line in enumerate(text.splitlines()) if line.startswith("# %%")]
    bounds = list(zip(markers, [*markers[1:], len(text.splitlines())], strict=True))
    spans = []
    for marker, end in bounds:
        if any(marker < r.start < end for r in regions):
            spans.append((marker + 1, end))
    return spans


def own_tests(text: str, regions: list[Region]) -> dict[str, tuple[str, ...]]:
    """For each solution cell, the graded cells that test it: those between it and the next
    solution cell; when there are none, the next group of graded cells after it."""
    metadata = nbgrader_metadata(text)
    solution = {r.cell for r in regions}
    order = []  # ("solution" | "graded", grade_id) in notebook order
    for number, _marker, _body in _cells(text):
        meta = metadata.get(number) or {}
        if meta.get("grade"):
            order.append(("graded", meta["grade_id"]))
        elif meta.get("grade_id") in solution:
            order.append(("solution", meta["grade_id"]))
    tests: dict[str, tuple[str, ...]] = {}
    for index, (kind, cell) in enumerate(order):
        if kind != "solution":
            continue
        found: list[str] = []
        for later_kind, later in order[index + 1 :]:
            if later_kind == "graded":
                found.append(later)
            elif found:
                break
        tests[cell] = tuple(found)
    return tests


def judge(runs_stage_one: list[Run], run_whole) -> tuple[list[Run], int]:
    """The verdict run of each mutant: its stage-one run where that killed it, else the
    whole-notebook run `run_whole(indexes)` gives for the survivors; and how many died in
    stage one."""
    survivors = [i for i, run in enumerate(runs_stage_one) if not _killed(run)]
    final = list(runs_stage_one)
    for index, run in zip(survivors, run_whole(survivors), strict=True):
        final[index] = run
    return final, len(runs_stage_one) - len(survivors)


def _killed(run: Run) -> bool:
    return bool(run.failed() or run.errors)


def equivalents(module: Module) -> list[dict]:
    """Entries {cell, find, replace, why}: a mutant of `cell` whose original line contains
    `find` and whose mutated line contains `replace` changes nothing observable, because
    `why`."""
    path = module.folder / EQUIVALENT
    if not path.is_file():
        return []
    with path.open("rb") as file:
        return list(tomllib.load(file).get("equivalent", []))


def explained(known: list[dict], mutant: Mutant) -> str | None:
    for entry in known:
        if (
            entry["cell"] == mutant.cell
            and entry["find"] in mutant.original
            and entry["replace"] in mutant.mutated
        ):
            return entry["why"]
    return None


@dataclass
class Report:
    module: str
    total: int
    killed: int
    equivalent: int
    survivors: list[str]
    seconds: float
    killed_in_stage_one: int | None = None  # None: one-stage run

    @property
    def rate(self) -> float:
        return self.killed / self.total if self.total else 1.0

    @property
    def rate_without_equivalent(self) -> float:
        counted = self.total - self.equivalent
        return self.killed / counted if counted else 1.0


def run_module(
    project: Project,
    module: Module,
    limit: int | None = None,
    log=print,
    two_stage: bool = True,
) -> Report:
    start = time.perf_counter()
    regions = solution_regions(module.text)
    found = mutants(module.text, regions)
    if limit is not None:
        found = found[:limit]
    reference = baseline(project, module)
    timeout = max(30.0, 4 * reference.seconds + 10)
    known = equivalents(module)
    killed = equivalent = 0
    survivors = []
    texts = [m.text for m in found]
    early = None
    if two_stage:
        tests = own_tests(module.text, regions)
        own = [tests.get(m.cell) or None for m in found]
        first = run_many(project, module, texts, timeout, own)
        runs, early = judge(
            first, lambda indexes: run_many(project, module, [texts[i] for i in indexes], timeout)
        )
    else:
        runs = run_many(project, module, texts, timeout)
    for mutant, run in zip(found, runs, strict=True):
        if _killed(run):
            killed += 1
            continue
        change = (
            f"{mutant.cell}:{mutant.line + 1}: {mutant.original.strip()!r} -> "
            f"{mutant.mutated.strip()!r}"
        )
        why = explained(known, mutant)
        if why:
            equivalent += 1
            log(f"  equivalent  {change}  ({why})")
        else:
            survivors.append(change)
            log(f"  SURVIVED    {change}")
    seconds = time.perf_counter() - start
    return Report(module.key, len(found), killed, equivalent, survivors, seconds, early)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tinytorch-course bench mutation",
        description="mutmut's operators over the solution regions: kill rate per module",
    )
    parser.add_argument("module", nargs="?", help="module key, name or number (default: all)")
    parser.add_argument("--limit", type=int, help="only the first N mutants of each module")
    parser.add_argument(
        "--one-stage",
        action="store_true",
        help="run every mutant on the whole notebook (slower; the same verdicts)",
    )
    args = parser.parse_args(argv)
    project = Project.find()
    reports = []
    for module in project.select(args.module):
        if not solution_regions(module.text):
            continue
        print(f"{module.key}: mutating the solution regions")
        report = run_module(project, module, args.limit, two_stage=not args.one_stage)
        reports.append(report)
        if report.killed_in_stage_one is not None:
            print(
                f"  {module.key}: {report.killed_in_stage_one} killed by their own cell's tests, "
                f"{report.total - report.killed_in_stage_one} ran the whole notebook"
            )
        print(
            f"  {module.key}: {report.killed}/{report.total} mutants killed "
            f"({report.rate:.1%}); {report.equivalent} judged equivalent, "
            f"{len(report.survivors)} unexplained survivors; "
            f"{report.rate_without_equivalent:.1%} of the non-equivalent killed "
            f"({report.seconds:.0f}s)"
        )
    return 1 if any(r.survivors for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
