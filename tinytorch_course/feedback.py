"""The feedback page of one graded submission, and the outputs it may show.

The executed notebook comes back from the sandbox as untrusted data. `safe_outputs`
puts onto the graded (normalized) notebook only the outputs a feedback page may show:
text (stream, text/plain, errors: escape sequences removed, length-capped) and PNG
images (checked to be base64 PNG). No HTML or JavaScript from the submission reaches the
page. The page opens with the judge's verdict table and the structure notes; every text
on it is HTML-escaped.
"""

from __future__ import annotations

import base64
import binascii
import copy
import html
from pathlib import Path

from .scoring import clean

OUTPUT_CHARS = 20_000
SOURCE_CHARS = 200_000
PNG_BYTES = 2_000_000
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _text(value) -> str:
    return value if isinstance(value, str) else "".join(map(str, value or []))


def _safe_output(output) -> dict | None:
    if not isinstance(output, dict):
        return None
    kind = output.get("output_type")
    if kind == "stream":
        name = "stderr" if output.get("name") == "stderr" else "stdout"
        text = clean(_text(output.get("text")), OUTPUT_CHARS, one_line=False)
        return {"output_type": "stream", "name": name, "text": text}
    if kind == "error":
        lines = [_text(line) for line in output.get("traceback", [])][:100]
        return {
            "output_type": "error",
            "ename": clean(output.get("ename", ""), 100),
            "evalue": clean(output.get("evalue", ""), OUTPUT_CHARS, one_line=False),
            "traceback": [clean(line, OUTPUT_CHARS, one_line=False) for line in lines],
        }
    if kind in ("display_data", "execute_result"):
        data = output.get("data") if isinstance(output.get("data"), dict) else {}
        kept = {}
        if "text/plain" in data:
            kept["text/plain"] = clean(_text(data["text/plain"]), OUTPUT_CHARS, one_line=False)
        png = _text(data.get("image/png", "")).replace("\n", "")
        if png and len(png) < PNG_BYTES * 4 // 3 + 8:
            try:
                if base64.b64decode(png, validate=True).startswith(_PNG_MAGIC):
                    kept["image/png"] = png
            except (binascii.Error, ValueError):
                pass
        if not kept:
            return None
        made = {"output_type": kind, "data": kept, "metadata": {}}
        if kind == "execute_result":
            count = output.get("execution_count")
            made["execution_count"] = count if isinstance(count, int) else None
        return made
    return None


def safe_outputs(graded, returned: dict | None):
    """A copy of `graded` (the notebook that was sent to the sandbox) carrying the
    returned notebook's outputs and execution counts, filtered. When the returned notebook
    does not have the same cells, no outputs are taken and every cell counts as not run."""
    import nbformat

    notebook = copy.deepcopy(graded)
    cells = returned.get("cells") if isinstance(returned, dict) else None
    same = isinstance(cells, list) and len(cells) == len(notebook.cells)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        theirs = cells[index] if same and isinstance(cells[index], dict) else {}
        count = theirs.get("execution_count")
        cell.execution_count = count if isinstance(count, int) else None
        outputs = theirs.get("outputs") if isinstance(theirs.get("outputs"), list) else []
        cell.outputs = [
            nbformat.from_dict(o) for o in map(_safe_output, outputs[:200]) if o is not None
        ]
    return notebook


def _output_html(output) -> str:
    kind = output.get("output_type")
    if kind == "stream":
        css = "err" if output.get("name") == "stderr" else "out"
        return f'<pre class="{css}">{html.escape(output.get("text", ""))}</pre>'
    if kind == "error":
        text = "\n".join(output.get("traceback") or [f"{output['ename']}: {output['evalue']}"])
        return f'<pre class="err">{html.escape(text)}</pre>'
    data = output.get("data", {})
    if "image/png" in data:
        return f'<img alt="plot" src="data:image/png;base64,{data["image/png"]}">'
    return f'<pre class="out">{html.escape(data.get("text/plain", ""))}</pre>'


STYLE = """
body { font-family: sans-serif; max-width: 60em; margin: 2em auto; }
pre { white-space: pre-wrap; padding: .4em; margin: .2em 0; }
pre.src { background: #f4f4f4; } pre.md { color: #333; } pre.err { background: #fde8e8; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: .2em .5em; }
.FAIL { color: #a00; font-weight: bold; } .pass { color: #070; }
"""


def _source(cell) -> str:
    """A cell's source as shown: escape sequences and control characters removed."""
    return clean(_text(cell.get("source", "")), SOURCE_CHARS, one_line=False)


def render(notebook, title: str, verdicts: list, score: str, notes: list[str]) -> str:
    """The feedback page: the verdict table and notes, then every cell with its outputs."""
    rows = "".join(
        f'<tr><td class="{"pass" if v.passed else "FAIL"}">{"pass" if v.passed else "FAIL"}</td>'
        f"<td>{html.escape(v.grade_id)}</td><td>{v.score:g}/{v.points:g}</td>"
        f"<td>{html.escape(v.message)}</td></tr>"
        for v in verdicts
    )
    note_items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}: {html.escape(score)}</h1>",
        f"<table><tr><th></th><th>test</th><th>points</th><th>why</th></tr>{rows}</table>",
        f"<ul>{note_items}</ul>" if note_items else "",
        "<hr>",
    ]
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            parts.append(f'<pre class="md">{html.escape(_source(cell))}</pre>')
        elif cell.cell_type == "code":
            parts.append(f'<pre class="src">{html.escape(_source(cell))}</pre>')
            parts += [_output_html(o) for o in cell.get("outputs", [])]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_feedback(path: Path, page: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
