"""From a run's recorded observations to verdicts and a score, in the trusted process.

`grade` and `test` both score this way: the graded cells (their grade_id, points and the
instructor's source with hidden tests) are replayed by `checks.judge` against what the
student's kernel recorded, and a cell that did not run gets 0 with the reason the
notebook stopped. Nothing here runs student code. Every message is cleaned of terminal
escape sequences and control characters and cut to a length before it is shown or saved.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from .normalize import grade_id, nbgrader_meta

MESSAGE_CHARS = 300
SECRET_FILE = Path(".tinytorch") / "grading-secret"
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b.?")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


def clean(text: object, limit: int = MESSAGE_CHARS, one_line: bool = True) -> str:
    """`text` without escape sequences or control characters, cut to `limit` characters."""
    text = _CONTROL.sub("", _ESCAPES.sub("", str(text)).replace("\t", "    "))
    if one_line:
        text = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


@dataclass
class CellVerdict:
    """One graded cell's outcome, as shown to the instructor and the student."""

    grade_id: str
    points: float
    passed: bool
    message: str

    @property
    def score(self) -> float:
        return self.points if self.passed else 0.0

    def line(self) -> str:
        status = "pass" if self.passed else "FAIL"
        detail = f"  {self.message}" if self.message and not self.passed else ""
        return f"  {status}  {self.grade_id:<32} {self.score:g}/{self.points:g}{detail}"


def graded_cells(notebook) -> list:
    """The graded code cells of `notebook` as `checks.JudgedCell`s, in order."""
    from .checks import JudgedCell

    cells = []
    for cell in notebook["cells"]:
        meta = nbgrader_meta(cell)
        if cell.get("cell_type") == "code" and meta.get("grade") and grade_id(cell):
            source = cell.get("source", "")
            source = source if isinstance(source, str) else "".join(source)
            cells.append(JudgedCell(grade_id(cell), float(meta.get("points", 0)), source))
    return cells


def ran(executed, gid: str) -> bool:
    """Whether the graded cell `gid` was executed (per the run's notebook)."""
    for cell in executed["cells"] if executed else []:
        if grade_id(cell) == gid:
            return cell.get("execution_count") is not None
    return False


def verdicts(judged: list, observations: bytes, seed: int, executed, stopped: str) -> list:
    """Judge `judged` cells against `observations`; a cell that did not run gets 0 with
    the reason the notebook stopped."""
    from .checks import judge

    results = judge(judged, observations, seed) if judged else []
    by_id = {v.grade_id: v for v in results}
    out = []
    for cell in judged:
        verdict = by_id.get(cell.grade_id)
        if not ran(executed, cell.grade_id):
            why = stopped or "the notebook stopped before this cell"
            out.append(CellVerdict(cell.grade_id, cell.points, False, clean(f"did not run: {why}")))
        elif verdict is None:
            out.append(CellVerdict(cell.grade_id, cell.points, False, "not judged"))
        else:
            message = clean(verdict.message) if not verdict.passed else ""
            out.append(CellVerdict(cell.grade_id, cell.points, bool(verdict.passed), message))
    return out


def course_secret(root: Path) -> bytes:
    """The course's grading secret, made once in `.tinytorch/grading-secret` (the sandbox
    never sees it)."""
    path = root / SECRET_FILE
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32) + "\n", encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip().encode("utf-8")


def module_seed(root: Path, module_key: str) -> int:
    """The seed of a module's checks: from the course secret and the module, so the same
    submission gets the same inputs on every re-grade and students cannot know them."""
    digest = hashlib.sha256(course_secret(root) + b"\0" + module_key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def run_errors(executed) -> list[str]:
    """`cell N: Name: message` for errors in cells that are not graded (a broken solution
    cell), cleaned."""
    errors = []
    for index, cell in enumerate(executed["cells"] if executed else []):
        if cell.get("cell_type") != "code" or nbgrader_meta(cell).get("grade"):
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error" and output.get("ename") != "NotRunError":
                errors.append(clean(f"cell {index}: {output.get('ename')}: {output.get('evalue')}"))
                break
    return errors
