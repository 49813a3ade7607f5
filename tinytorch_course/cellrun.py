"""Run a module's code cells in a fresh process, the way a grader runs a notebook, and report
each graded cell's verdict: the fast runner behind `mistakes` and `bench mutation`.

`python -m tinytorch_course.cellrun FOLDER` is a small server. It imports numpy and the check
framework once, then answers jobs, one JSON line each on stdin:
{"text": a percent-format module source, "only": grade_ids or null, "timeout": seconds}.
Each job runs in a child forked from this warmed-up process (about half a second of Python
and numpy start-up saved per run). The child executes the source's code cells in order in one
namespace, with FOLDER as the working directory (as a kernel started there), and keeps going
after a failing cell (as nbgrader does). No Jupyter kernel is involved; graded cells run in
the check framework's live mode. With "only", the other graded cells are skipped and the run
stops after the last of them.

The answer is one JSON line per job: {"cells": {grade_id: [passed, first line]}, "errors":
[first lines of failures outside graded cells]}; or {"crashed": the last line the child wrote
to stderr} when it died without answering; or {"timed_out": true} when it was still running
at the time limit. The child's process group (the child and anything it started) is killed
when the job ends either way.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import signal
import sys
import tempfile
import time
import traceback

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


def _child(text: str, only: set[str] | None, answer: int, stderr: int) -> None:
    """In the forked child: run `text`, write its verdicts to the `answer` pipe, exit."""
    code = 1
    try:
        os.setpgid(0, 0)  # its own process group, so that a kill reaches what it starts
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)  # stray output (C libraries, subprocesses) goes nowhere
        os.dup2(stderr, 2)
        sys.stdin = open(os.devnull, encoding="utf-8")
        result = run_source(text, only)
        with os.fdopen(answer, "w", encoding="utf-8") as pipe:
            pipe.write(json.dumps(result))
        code = 0
    except BaseException:  # noqa: BLE001  (SystemExit too: the parent reports the crash)
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os._exit(code)


def _kill_group(pid: int) -> None:
    for kill in (os.killpg, os.kill):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(pid, signal.SIGKILL)


def run_job(text: str, only: set[str] | None, timeout: float) -> dict:
    """Run `text` in a forked child with a time limit; its answer (see the module's doc)."""
    reader, writer = os.pipe()
    with tempfile.TemporaryFile() as stderr:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            os.close(reader)
            _child(text, only, writer, stderr.fileno())
        os.close(writer)
        with contextlib.suppress(OSError):  # the child may have set it already
            os.setpgid(pid, pid)
        chunks, timed_out = [], False
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([reader], [], [], left)[0]:
                    timed_out = True
                    break
                chunk = os.read(reader, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(reader)
            _kill_group(pid)  # leftovers of a finished child; a hung child itself
            os.waitpid(pid, 0)
        if timed_out:
            return {"timed_out": True}
        if chunks:
            with contextlib.suppress(ValueError):
                return json.loads(b"".join(chunks))
        stderr.seek(0)
        lines = stderr.read().decode("utf-8", "replace").strip().splitlines()
        return {"crashed": lines[-1] if lines else "no output"}


def serve(folder: str) -> None:
    os.chdir(folder)
    sys.path.insert(0, folder)
    os.environ.setdefault("MPLBACKEND", "Agg")
    import numpy  # noqa: F401  (what every run imports first: paid once, before forking)

    from . import checks  # noqa: F401

    for line in sys.stdin:
        job = json.loads(line)
        only = set(job["only"]) if job.get("only") is not None else None
        sys.stdout.write(json.dumps(run_job(job["text"], only, float(job["timeout"]))) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve(sys.argv[1])
