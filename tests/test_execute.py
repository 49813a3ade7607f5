"""`execute` runs a notebook in a kernel of its own and leaves no kernel behind: grading a
class without the sandbox (`grade --no-sandbox`) or testing every module runs one notebook
after another in the same process."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT

from tinytorch_course.execute import execute, kernel_env
from tinytorch_course.project import Project

pytestmark = pytest.mark.slow


def is_running(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_the_kernel_is_stopped_when_the_notebook_has_run(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("import os\nprint(os.getpid())"),
        nbformat.v4.new_code_cell("print(6 * 7)"),
    ]
    execution = execute(notebook, str(tmp_path), kernel_env(Project(ROOT)))
    assert execution.stopped == ""
    assert notebook.cells[1].outputs[0]["text"].strip() == "42"
    pid = int(notebook.cells[0].outputs[0]["text"])
    deadline = time.monotonic() + 10
    while is_running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not is_running(pid), f"the kernel (pid {pid}) is still running after execute()"
