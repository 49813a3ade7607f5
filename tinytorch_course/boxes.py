"""Check that box-drawing diagrams are true rectangles in a monospace font.

Columns are display columns: a wide character (CJK, most emoji) takes two, a combining
mark none. A box is found at each `┌` and traced along its top edge to `┐`, down both
sides to `└` and `┘`, and along its bottom edge; any break is reported with its line.
"""

from __future__ import annotations

import unicodedata

HORIZONTAL = set("─┬┴┼")
LEFT_SIDE = set("│├┼")
RIGHT_SIDE = set("│┤┼")
BOX_CHARS = set("┌┐└┘│─├┤┬┴┼")


def char_width(char: str) -> int:
    if unicodedata.combining(char) or char in "\u200b\u200d\ufe0f":
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def display_width(text: str) -> int:
    """How many monospace columns `text` occupies."""
    return sum(char_width(c) for c in text)


def _columns(line: str) -> dict[int, str]:
    """Map display column → character for one line."""
    grid, column = {}, 0
    for char in line:
        grid[column] = char
        column += char_width(char)
    return grid


def misaligned_boxes(lines: list[str]) -> list[tuple[int, str]]:
    """(0-based line index, problem) for every box in `lines` that is not a rectangle."""
    grid = [_columns(line) for line in lines]
    problems = []
    for top, row in enumerate(grid):
        for left, char in sorted(row.items()):
            if char == "┌":
                problem = _trace_box(grid, top, left)
                if problem:
                    problems.append((top, problem))
    return problems


def _trace_box(grid: list[dict[int, str]], top: int, left: int) -> str | None:
    right = left + 1
    while grid[top].get(right) in HORIZONTAL:
        right += 1
    if grid[top].get(right) != "┐":
        return f"box at column {left}: top edge ends at column {right} without ┐"
    bottom = top + 1
    while bottom < len(grid) and grid[bottom].get(left) in LEFT_SIDE:
        bottom += 1
    if bottom == len(grid) or grid[bottom].get(left) != "└":
        found = grid[bottom].get(left, "nothing") if bottom < len(grid) else "the end"
        return (
            f"box at column {left}: left side breaks {bottom - top} lines down "
            f"({found!r} instead of │ or └)"
        )
    for row in range(top + 1, bottom):
        if grid[row].get(right) not in RIGHT_SIDE:
            found = grid[row].get(right, " ")
            return (
                f"box at column {left}: right side should be at column {right}, "
                f"{row - top} lines down it is {found!r}"
            )
    if grid[bottom].get(right) != "┘":
        return f"box at column {left}: bottom-right corner ┘ is not at column {right}"
    if any(grid[bottom].get(col) not in HORIZONTAL for col in range(left + 1, right)):
        return f"box at column {left}: bottom edge is broken"
    return None
