"""Run a module's code cells in this process, the way a grader runs a notebook, and print
each graded cell's verdict as JSON: the fast runner behind `mistakes` and `bench mutation`.

`python -m tinytorch_course.cellrun FOLDER [GRADE_IDS] < source.py` reads a percent-format module
source on stdin, executes its code cells in order in one namespace (with FOLDER as the
working directory, as a kernel started there), keeps going after a failing cell (as
nbgrader does), and prints one JSON line: {"cells": {grade_id: [passed, first line]},
"errors": [first lines of failures outside graded cells]}. No Jupyter kernel is involved;
graded cells run in the check framework's live mode. GRADE_IDS (comma-separated) runs
only those graded cells (and every other cell up to the last of them).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys

from .lint import _cells
from .project import nbgrader_metadata


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".strip()


def run_source(text: str, only: set[str] | None = None) -> dict:
    """Execute the code cells of `text`; the verdict of each graded cell. With `only`, the
    other graded cells are skipped and the run stops after the last of `only`."""
    metadata = nbgrader_metadata(text)
    remaining = set(only) if only is not None else None
    namespace: dict = {"__name__": "__main__"}
    cells: dict[str, list] = {}
    errors: list[str] = []
    for number, marker, body in _cells(text):
        if "[markdown]" in marker:
            continue
        meta = metadata.get(number) or {}
        if remaining is not None:
            if not remaining:
                break
            if meta.get("grade"):
                if meta["grade_id"] not in remaining:
                    continue
                remaining.discard(meta["grade_id"])
        source = "\n".join(body)
        sink = io.StringIO()
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                exec(compile(source, f"<cell line {number}>", "exec"), namespace)
        except Exception as error:  # noqa: BLE001  (a failing cell is a verdict, not a crash)
            message = first_line(error)
            if meta.get("grade"):
                cells[meta["grade_id"]] = [False, message]
            else:
                errors.append(f"cell at line {number}: {message}")
            continue
        if meta.get("grade"):
            cells[meta["grade_id"]] = [True, ""]
    return {"cells": cells, "errors": errors}


def main() -> None:
    folder = sys.argv[1]
    only = set(sys.argv[2].split(",")) if len(sys.argv) > 2 else None
    text = sys.stdin.read()
    os.chdir(folder)
    sys.path.insert(0, folder)
    os.environ.setdefault("MPLBACKEND", "Agg")
    result = run_source(text, only)
    sys.stdout.write("\n" + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
