"""The text between `<!-- name -->` and `<!-- /name -->` markers in a module's markdown: the
diagrams a test re-renders from the live package and compares with the module's text."""

from __future__ import annotations

import re
from pathlib import Path


def marked_block(source: Path, name: str) -> str:
    """The one fenced code block between the markers, without the `# ` prefix and fences."""
    text = source.read_text(encoding="utf-8")
    pattern = rf"^# <!-- {re.escape(name)} -->\n(.*?)^# <!-- /{re.escape(name)} -->"
    match = re.search(pattern, text, re.S | re.M)
    assert match, f"{source.name}: no <!-- {name} --> block"
    lines = [line[2:] if line.startswith("# ") else line[1:] for line in match[1].splitlines()]
    assert lines[0] == "```" and lines[-1] == "```", f"{name}: should be one fenced code block"
    return "\n".join(lines[1:-1])
