"""Execute a notebook top to bottom with nbclient, the way `test` and `grade` both do.

- Every cell runs even after an earlier one fails (as a grader does), so one unfinished
  part costs only its own tests.
- The whole notebook has a time limit (`[grading] notebook_timeout`); each cell's limit
  is the smaller of `cell_timeout` and the time left. A timed-out cell is interrupted
  and later cells are not run; a kernel that dies (`os._exit`, out of memory) ends the
  run too. Either way the reason is returned, and the cells that completed keep their
  outputs.
- Every cell's outputs are cut to `max_output_chars` (a cell that prints 50 MB).
- The kernel talks to the client over IPC sockets in its runtime folder (no TCP port, and
  no "running over TCP without encryption" warning).

Run as `python -m tinytorch_course.execute` this is the program inside the grading
sandbox (`sandbox.py`): it reads a JSON request (the notebook and the limits) on stdin,
executes the notebook in the current folder with recording on, and writes one JSON
result (the executed notebook, why it stopped, the recorded observations) on stdout.
"""

from __future__ import annotations

import base64
import json
import math
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

NOT_RUN = "NotRunError"
DEFAULT_MAX_OUTPUT_CHARS = 100_000
OBSERVATIONS_MAX_BYTES = 16_000_000


@dataclass
class Execution:
    """An executed notebook and why it stopped early ("" when every cell ran)."""

    notebook: object  # nbformat.NotebookNode
    stopped: str
    seconds: float
    kernel_seconds: float = 0.0  # of `seconds`, the kernel's start-up


def tool_path(env: dict[str, str]) -> str:
    """PATH with this interpreter's folder first, so the commands that the course's tools
    start (nbgrader's `alembic`, `jupyter`) are found without an activated venv."""
    folder = str(Path(sys.executable).parent)
    return os.pathsep.join([folder, *[p for p in env.get("PATH", "").split(os.pathsep) if p]])


def kernel_env(project) -> dict[str, str]:
    """The environment of a kernel that must import this project's `tinytorch`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project.root), env.get("PYTHONPATH")]))
    env["PYTHONIOENCODING"] = "utf-8"
    env["PATH"] = tool_path(env)
    # The course's matrices are small: extra BLAS threads only contend with each other
    # (module 04's digits run: 2 s with one OpenBLAS thread, ~30 s with two on a busy box).
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.pop("IN_TEST", None)
    return env


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n... output cut: {len(text):,} characters, the first {limit:,} shown"


def cut_outputs(cell, limit: int) -> None:
    """Cut every text in `cell`'s outputs (stream, data, error) to `limit` characters."""
    budget = limit
    outputs = cell.get("outputs", [])
    del outputs[200:]
    for output in outputs:
        kind = output.get("output_type")
        if kind == "stream":
            output["text"] = _cut(output.get("text", ""), max(budget, 200))
            budget -= len(output["text"])
        elif kind == "error":
            output["evalue"] = _cut(str(output.get("evalue", "")), limit)
            output["traceback"] = [_cut(line, limit) for line in output.get("traceback", [])[:100]]
        else:
            data = output.get("data", {})
            for mime, value in list(data.items()):
                text = value if isinstance(value, str) else "".join(map(str, value))
                data[mime] = _cut(text, limit * 10 if mime == "image/png" else limit)


def not_run_output(reason: str):
    from nbformat import NotebookNode

    return NotebookNode(
        output_type="error", ename=NOT_RUN, evalue=reason, traceback=[f"{NOT_RUN}: {reason}"]
    )


def execute(
    notebook,
    cwd: str,
    env: dict[str, str],
    notebook_timeout: float = 300,
    cell_timeout: float = 120,
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
    kernel_stderr=None,
) -> Execution:
    """Run `notebook` (changed in place) in a `python3` kernel started in `cwd` with `env`."""
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    for cell in notebook.cells:  # a notebook read as plain JSON may hold lists of lines
        if not isinstance(cell.get("source", ""), str):
            cell["source"] = "".join(cell["source"])
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    from jupyter_core.paths import jupyter_runtime_dir

    runtime = Path(jupyter_runtime_dir())
    runtime.mkdir(parents=True, exist_ok=True)
    sockets = runtime / f"kernel-{uuid.uuid4().hex[:12]}-ipc"  # absolute: client and kernel
    manager = AsyncKernelManager(kernel_name="python3", transport="ipc", ip=str(sockets))
    client = NotebookClient(
        notebook,
        km=manager,
        timeout=int(cell_timeout),
        allow_errors=True,
        interrupt_on_timeout=True,
        shutdown_kernel="immediate",
        resources={"metadata": {"path": cwd}},
    )
    start = time.monotonic()
    deadline = start + notebook_timeout
    stopped = ""
    kernel_seconds = 0.0
    streams = {"stdout": subprocess.DEVNULL, "stderr": kernel_stderr or subprocess.DEVNULL}
    try:
        # cleanup_kc: nbclient stops only the kernels of managers it made itself
        with client.setup_kernel(cwd=cwd, env=env, cleanup_kc=True, **streams):
            kernel_seconds = time.monotonic() - start
            for index, cell in enumerate(notebook.cells):
                if cell.cell_type != "code" or not cell.source.strip():
                    continue
                if stopped:
                    cell.outputs = [not_run_output(stopped)]
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    stopped = f"the notebook reached its {notebook_timeout:g} s time limit"
                    cell.outputs = [not_run_output(stopped)]
                    continue
                client.timeout = max(1, min(int(cell_timeout), math.ceil(left)))
                try:
                    client.execute_cell(cell, index)
                except CellTimeoutError:
                    stopped = (
                        f"the notebook reached its {notebook_timeout:g} s time limit "
                        f"in cell {index}"
                        if time.monotonic() >= deadline - 1
                        else f"cell {index} ran longer than its {cell_timeout:g} s limit"
                    )
                except DeadKernelError:
                    stopped = (
                        f"the kernel died in cell {index} (os._exit, a crash or out of memory)"
                    )
                cut_outputs(cell, max_output_chars)
    except DeadKernelError:
        stopped = stopped or "the kernel died (os._exit, a crash or out of memory)"
    except RuntimeError as error:  # the kernel did not start
        stopped = stopped or f"the kernel did not start: {str(error).splitlines()[0]}"
    return Execution(notebook, stopped, time.monotonic() - start, kernel_seconds)


def _sandbox_main() -> int:
    """Inside the sandbox: request on stdin, result on stdout (see the module docstring)."""
    import nbformat

    request = json.loads(sys.stdin.buffer.read())
    notebook = nbformat.from_dict(request["notebook"])
    here = os.getcwd()
    record = os.environ.get("TINYTORCH_CHECK_RECORD", "")
    execution = execute(
        notebook,
        here,
        dict(os.environ),
        notebook_timeout=float(request["notebook_timeout"]),
        cell_timeout=float(request["cell_timeout"]),
        max_output_chars=int(request["max_output_chars"]),
    )
    observations = b""
    if record and os.path.exists(record):
        with open(record, "rb") as handle:
            observations = handle.read(OBSERVATIONS_MAX_BYTES + 1)
    result = {
        "notebook": notebook,
        "stopped": execution.stopped,
        "seconds": execution.seconds,
        "kernel_seconds": execution.kernel_seconds,
        "observations": base64.b64encode(observations).decode("ascii"),
    }
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_sandbox_main())
