"""`DeadlineExecute`: nbgrader's Execute preprocessor with a whole-notebook time limit.

nbgrader scores a graded test cell by its outputs: an error (or anything on stderr) scores
0, anything else full marks, so a test cell that never ran would score full marks. And
nbgrader's `Execute.timeout` is per cell, and a kernel that dies (`os._exit()`, a crash)
aborts the whole notebook so nothing at all is recorded. This preprocessor:

- stops executing once the notebook has used `notebook_timeout` seconds (each cell's
  timeout is the smaller of nbgrader's per-cell timeout and the time left);
- survives a dead kernel, keeping the results of the cells that completed;
- gives every code cell that did not run an error output saying why, so its tests score 0;
- truncates huge outputs (a cell that prints 50 MB) so the graded notebook and the feedback
  HTML stay small.

Configured in `nbgrader_config.py` (`c.Autograde.autograde_preprocessors`).
"""

from __future__ import annotations

import math
import time

from nbclient.exceptions import DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Float, Integer

NOT_RUN = "NotRunError"


def not_run_output(reason: str) -> NotebookNode:
    """The error output given to a code cell that was not executed."""
    return NotebookNode(
        output_type="error", ename=NOT_RUN, evalue=reason, traceback=[f"{NOT_RUN}: {reason}"]
    )


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return (
        text[:limit]
        + f"\n... output truncated: {len(text):,} characters, showing the first {limit:,}"
    )


def truncate_outputs(cell: NotebookNode, limit: int) -> None:
    """Cut every text in `cell`'s outputs (stream text, data, error message) to `limit` chars."""
    budget = limit
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            output["text"] = _truncate(output.get("text", ""), max(budget, 200))
            budget -= len(output["text"])
        elif output.get("output_type") == "error":
            output["evalue"] = _truncate(str(output.get("evalue", "")), limit)
            output["traceback"] = [
                _truncate(line, limit) for line in output.get("traceback", [])[:200]
            ]
        else:
            data = output.get("data", {})
            for mime, value in list(data.items()):
                if isinstance(value, str):
                    data[mime] = _truncate(value, limit)
                elif isinstance(value, list):
                    data[mime] = _truncate("".join(value), limit)


class DeadlineExecute(Execute):
    """Execute with a per-notebook deadline, dead-kernel recovery and output truncation."""

    notebook_timeout = Float(
        300.0, help="Seconds the whole notebook may run; later cells are not run."
    ).tag(config=True)
    max_output_chars = Integer(
        100_000, help="Characters of output kept per cell; the rest is cut."
    ).tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        self._deadline = time.monotonic() + self.notebook_timeout
        self._stopped: str | None = None
        self._cell_timeout = self.timeout
        try:
            return super().preprocess(nb, resources, km)
        finally:
            self.timeout = self._cell_timeout

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or not cell.source.strip():
            return cell, resources
        left = self._deadline - time.monotonic()
        if self._stopped is None and left <= 0:
            self._stopped = (
                f"not run: the notebook reached its {self.notebook_timeout:g} s time limit"
            )
        if self._stopped is not None:
            cell.outputs = [not_run_output(self._stopped)]
            return cell, resources
        self.timeout = max(1, min(self._cell_timeout or math.inf, math.ceil(left)))
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            self._stopped = (
                f"not run: the kernel died in cell {index} (os._exit, a crash or out of memory)"
            )
            cell.outputs = [
                *cell.get("outputs", []),
                not_run_output("the kernel died while running this cell"),
            ]
        else:
            if time.monotonic() >= self._deadline:  # this cell was interrupted (or just made it)
                self._stopped = (
                    f"not run: the notebook reached its {self.notebook_timeout:g} s time limit"
                )
        truncate_outputs(cell, self.max_output_chars)
        return cell, resources
