"""`lint`: the rules every module source must follow, each reported as `file:line: problem`.

The rules guard what breaks silently later: a solution region outside a solution cell
fails `nbgrader generate_assignment`; an unlocked graded cell can be edited by a
student; a duplicate grade id mixes up two tests in the gradebook; a misaligned box
is a broken diagram; mojibake is text that was decoded with the wrong codec; a line
wider than `MAX_COLUMNS` wraps or scrolls in a student's notebook and in a diff.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from .boxes import BOX_CHARS, display_width, misaligned_boxes
from .project import Module, Project, nbgrader_metadata


def mis_decoded(text: str, codec: str = "cp1252") -> str:
    """`text` as it reads after its UTF-8 bytes were decoded with a Windows code page
    (bytes the code page has no character for are lost, as they were in the seed)."""
    return text.encode("utf-8").decode(codec, errors="ignore")


# The first two characters of what our own characters turn into when mis-decoded: box
# drawing, arrows, math, accents, emoji (cp1254 is how the seed's emoji arrived).
MOJIBAKE = tuple(
    sorted(
        {mis_decoded(char, codec)[:2] for char in "─│┌→←∂×·é🎯" for codec in ("cp1252", "cp1254")}
    )
)
MODULE_POINTS = 100
_MARKER = re.compile(r"^# %%(?P<kind> \[markdown\])?(?P<meta> nbgrader=\{.*\})?\s*$")
_REGIONS = {
    "### BEGIN SOLUTION": ("### END SOLUTION", "solution"),
    "### BEGIN HIDDEN TESTS": ("### END HIDDEN TESTS", "grade"),
}
_REQUIRED = {
    "grade": bool,
    "grade_id": str,
    "locked": bool,
    "schema_version": int,
    "solution": bool,
}


def _cells(text: str) -> list[tuple[int, str, list[str]]]:
    """(line number of the marker, marker line, body lines) for each `# %%` cell."""
    cells: list[tuple[int, str, list[str]]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("# %%"):
            cells.append((number, line, []))
        elif cells:
            cells[-1][2].append(line)
    return cells


# Display columns of every line but the cell markers (whose nbgrader metadata is one JSON
# line that jupytext writes); ruff's E501 holds the rest of the repository to the same.
MAX_COLUMNS = 100


def lint_module(module: Module, root: Path) -> list[str]:
    """Every rule broken by one module source."""
    where = module.source.relative_to(root)
    text = module.text
    problems = [
        f"{where}:{n}: mis-decoded text {bad!r} (mojibake); re-save as UTF-8"
        for n, line in enumerate(text.splitlines(), 1)
        for bad in MOJIBAKE
        if bad in line
    ]
    problems += [
        f"{where}:{n}: line is {display_width(line)} columns wide; the limit is {MAX_COLUMNS}"
        for n, line in enumerate(text.splitlines(), 1)
        if not line.startswith("# %%") and display_width(line) > MAX_COLUMNS
    ]
    cells = _cells(text)
    if not cells or not text.startswith("# %%"):
        problems.append(
            f"{where}:1: not percent format: the file must start with a `# %%` cell marker"
        )
        return problems
    metadata = nbgrader_metadata(text)
    for number, marker, body in cells:
        match = _MARKER.match(marker)
        if not match:
            problems.append(
                f"{where}:{number}: unrecognised cell marker {marker!r}; "
                "expected `# %%`, `# %% [markdown]` or `# %% nbgrader={...}`"
            )
            continue
        if match["kind"]:
            problems += _lint_markdown(where, number, body)
        meta = metadata.get(number, {})
        if meta is None:
            problems.append(
                f"{where}:{number}: malformed nbgrader metadata (not valid JSON): {marker[5:]}"
            )
            continue
        problems += _lint_nbgrader(where, number, meta, body)
    problems += _lint_title_cell(where, cells[0])
    if module.export_target is None:
        problems.append(f"{where}: no `#| default_exp NAME` cell: nothing would be exported")
    if abs(module.points - MODULE_POINTS) > 1e-9:
        problems.append(
            f"{where}: graded cells add up to {module.points:g} points, not {MODULE_POINTS}"
        )
    return problems


def _lint_title_cell(where: Path, cell: tuple[int, str, list[str]]) -> list[str]:
    _, marker, body = cell
    lines = [line for line in body if line.strip() not in ("", "#")]
    if marker != "# %% [markdown]" or not lines or not lines[0].startswith("# # "):
        return [f"{where}:1: the first cell must be markdown with the `# Title` (and `> summary`)"]
    if any(not line.startswith("# > ") for line in lines[1:]):
        return [
            f"{where}:1: keep the title cell to `# Title` and `> summary`; nbdev drops the rest"
        ]
    return []


def _lint_markdown(where: Path, number: int, body: list[str]) -> list[str]:
    problems = []
    for offset, line in enumerate(body, start=1):
        if line and not line.startswith("#"):
            problems.append(f"{where}:{number + offset}: markdown line not commented with `# `")
    text = [line[2:] if line.startswith("# ") else line[1:] for line in body]
    if any(BOX_CHARS & set(line) for line in text):
        for index, problem in misaligned_boxes(text):
            problems.append(f"{where}:{number + 1 + index}: diagram {problem}")
    return problems


def check_line(grade_id: str, points: float) -> str:
    """The statement every graded cell starts with (after its imports)."""
    return f'check = Check("{grade_id}", points={points:g})'


def _statements(body: list[str]) -> list[str] | None:
    """The source of each top-level statement of a code cell, or None if it does not parse."""
    source = "\n".join(body)
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    return [ast.get_source_segment(source, node) or "" for node in tree.body]


def _lint_check_cell(where: Path, number: int, meta: dict, body: list[str]) -> list[str]:
    """A graded cell: imports, then `check = Check(<grade_id>, points=N)`, ..., `check.done()`
    (the check framework records and replays what happens in between)."""
    grade_id = meta.get("grade_id")
    statements = _statements(body)
    if statements is None:
        return [f"{where}:{number}: graded cell {grade_id!r} is not valid Python"]
    code = [s for s in statements if not s.startswith(("import ", "from "))]
    expected = check_line(grade_id, meta["points"])
    problems = []
    if not code or " ".join(code[0].split()) != expected:
        problems.append(
            f"{where}:{number}: graded cell {grade_id!r} must start (after its imports) with "
            f"{expected}"
        )
    if not code or code[-1].strip() != "check.done()":
        problems.append(f"{where}:{number}: graded cell {grade_id!r} must end with check.done()")
    return problems


def _lint_nbgrader(where: Path, number: int, meta: dict, body: list[str]) -> list[str]:
    problems = []
    if meta:
        for key, kind in _REQUIRED.items():
            if not isinstance(meta.get(key), kind):
                problems.append(
                    f"{where}:{number}: nbgrader metadata needs {key!r} of type {kind.__name__}"
                )
        if meta.get("schema_version") not in (None, 3) and isinstance(
            meta.get("schema_version"), int
        ):
            problems.append(f"{where}:{number}: nbgrader schema_version must be 3")
        if meta.get("grade") and not meta.get("locked"):
            problems.append(
                f"{where}:{number}: graded cell {meta.get('grade_id')!r} must be locked"
            )
        if meta.get("grade") and not (
            isinstance(meta.get("points"), (int, float)) and meta["points"] > 0
        ):
            problems.append(
                f"{where}:{number}: graded cell {meta.get('grade_id')!r} needs points > 0"
            )
        if meta.get("grade") and isinstance(meta.get("points"), (int, float)):
            problems += _lint_check_cell(where, number, meta, body)
        if meta.get("solution") and meta.get("locked"):
            problems.append(
                f"{where}:{number}: solution cell {meta.get('grade_id')!r} must not be locked"
            )
    for begin, (end, flag) in _REGIONS.items():
        open_at = None
        for offset, line in enumerate(body, start=1):
            stripped = line.strip()
            if stripped == begin:
                if not meta.get(flag):
                    problems.append(
                        f"{where}:{number + offset}: {begin} in a cell without "
                        f'"{flag}": true in its nbgrader metadata (line {number})'
                    )
                if open_at is not None:
                    problems.append(
                        f"{where}:{number + offset}: {begin} inside another (opened line {open_at})"
                    )
                open_at = number + offset
            elif stripped == end:
                if open_at is None:
                    problems.append(f"{where}:{number + offset}: {end} without {begin}")
                open_at = None
        if open_at is not None:
            problems.append(f"{where}:{open_at}: {begin} is never closed by {end}")
    return problems


def lint(project: Project) -> list[str]:
    """Every rule broken by any module, plus grade ids repeated across the course."""
    problems = []
    seen: dict[str, str] = {}
    for module in project.modules:
        problems += lint_module(module, project.root)
        for number, meta in nbgrader_metadata(module.text).items():
            grade_id = (meta or {}).get("grade_id")
            if not grade_id:
                continue
            here = f"{module.source.relative_to(project.root)}:{number}"
            if grade_id in seen:
                problems.append(f"{here}: grade_id {grade_id!r} already used at {seen[grade_id]}")
            seen.setdefault(grade_id, here)
    return problems
