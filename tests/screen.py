"""Shared by the browser tests: Chromium's launch settings, and where the box-drawing
characters of a diagram land on screen (a diagram is a true rectangle only if each
character is drawn at the x of its display column, and no line wraps)."""

from __future__ import annotations

import os
from pathlib import Path

from tinytorch_course.boxes import BOX_CHARS, char_width

CHROMIUM = Path(os.environ.get("TINYTORCH_CHROMIUM", "/usr/bin/chromium"))
# As root in a container Chromium needs --no-sandbox; the rest keep it off a network it
# cannot reach (without them it retries Google's hosts at every start).
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def glyphs_js(selector: str, exclude: str = "") -> str:
    """JavaScript that returns, for every element matching `selector` (not inside
    `exclude`) that draws with box characters: each line's characters with the x, width
    and y the browser drew them at."""
    skip = f" && !pre.closest({exclude!r})" if exclude else ""
    return f"""() => Array.from(document.querySelectorAll({selector!r}))
  .filter(pre => /[┌┐└┘│─├┤┬┴┼]/.test(pre.textContent){skip})
  .map(pre => {{
    const lines = [[]], range = document.createRange();
    const walker = document.createTreeWalker(pre, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {{
      for (let i = 0; i < node.data.length;) {{
        const ch = String.fromCodePoint(node.data.codePointAt(i));
        if (ch === '\\n') {{ lines.push([]); i += 1; continue; }}
        range.setStart(node, i); range.setEnd(node, i + ch.length);
        const box = range.getBoundingClientRect();
        lines[lines.length - 1].push([ch, box.left, box.width, box.top]);
        i += ch.length;
      }}
    }}
    return lines;
  }})"""


def assert_boxes_aligned_on_screen(blocks: list) -> int:
    """Every line of every diagram on the page is drawn on one row (not wrapped at the
    window's edge), and every box-drawing character at the x of its display column:
    the browser's monospace font keeps boxes rectangular. Returns how many box-drawing
    characters were measured."""
    measured = 0
    for block, lines in enumerate(blocks):
        starts = [line[0][1] for line in lines if line]
        assert starts, f"diagram {block}: nothing was laid out"
        left, column_width = min(starts), _column_width(lines)
        assert column_width > 0, f"diagram {block}: box characters have no width on screen"
        for number, line in enumerate(lines):
            text = "".join(char for char, *_ in line)
            rows = {round(top) for *_, top in line}
            assert len(rows) <= 1, (
                f"diagram {block}, line {number} wraps onto {len(rows)} rows in a "
                f"{round(max(x + w for _, x, w, _ in line) - left)} px wide page: {text!r}"
            )
            column = 0
            for char, x, _, _ in line:
                if char in BOX_CHARS:
                    expected = left + column * column_width
                    assert abs(x - expected) < 1.0, (
                        f"diagram {block}, line {number}: {char!r} at display column {column} "
                        f"is drawn at x={x:.1f}, expected {expected:.1f}: {text!r}"
                    )
                    measured += 1
                column += char_width(char)
    return measured


def _column_width(lines: list) -> float:
    """The font's advance per display column: the median over lines of the distance
    between a line's first and last character divided by the columns between them
    (an advance is fractional, 7.834 px, so one glyph's rounded width drifts; the median
    is not moved by one misdrawn line)."""
    ratios = []
    for line in lines:
        columns = sum(char_width(char) for char, *_ in line[:-1])
        if len(line) > 1 and columns >= 4:
            ratios.append((line[-1][1] - line[0][1]) / columns)
    widths = [width for line in lines for char, _, width, _ in line if char in "─│"]
    if not ratios:
        return min(widths, default=0.0)
    ratios.sort()
    return ratios[len(ratios) // 2]
