"""Run a module notebook headless and report each graded test cell, the way a grader would.

Every cell runs even after an earlier one fails (as in nbgrader's autograde), so one
unfinished part costs only its own tests. The kernel starts in the notebook's folder
with the project root first on `PYTHONPATH`, so `import tinytorch` finds the package
of *this* project: the reference in the course repository, the student's own in a
workspace.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .project import Module, Project


@dataclass
class CellResult:
    """The outcome of one graded test cell."""

    grade_id: str
    points: float
    passed: bool
    message: str = ""

    @property
    def score(self) -> float:
        return self.points if self.passed else 0.0


@dataclass
class NotebookResult:
    module: str
    cells: list[CellResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # errors outside graded cells
    seconds: float = 0.0

    @property
    def score(self) -> float:
        return sum(cell.score for cell in self.cells)

    @property
    def max_score(self) -> float:
        return sum(cell.points for cell in self.cells)

    @property
    def passed(self) -> bool:
        return not self.errors and all(cell.passed for cell in self.cells)


def kernel_env(project: Project) -> dict[str, str]:
    """The environment of a kernel that must import this project's `tinytorch`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project.root), env.get("PYTHONPATH")]))
    env["PYTHONIOENCODING"] = "utf-8"
    # The course's matrices are small: extra BLAS threads only contend with each other
    # (module 04's digits run: 2 s with one OpenBLAS thread, ~30 s with two on a busy 2-core box).
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.pop("IN_TEST", None)
    return env


def error_message(outputs: list) -> str | None:
    """`Name: message` of the first error among a cell's outputs, or None."""
    for output in outputs:
        if output.get("output_type") == "error":
            return f"{output.get('ename')}: {output.get('evalue')}".strip()
    return None


def stderr_message(outputs: list) -> str | None:
    """The first line a cell wrote to stderr, or None: nbgrader scores a graded test cell
    that writes to stderr (a warning, say) 0 points, so `test` must fail it too."""
    for output in outputs:
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            first = next((line for line in output.get("text", "").splitlines() if line.strip()), "")
            return f"wrote to stderr, which nbgrader scores 0: {first.strip()}"
    return None


def _notebook_for(project: Project, module: Module):
    """The notebook to run: a workspace's own `.ipynb` (the student's work), or the
    notebook generated in memory from the repository's `.py` source."""
    import nbformat

    if project.is_workspace:
        return nbformat.read(module.notebook, as_version=4)
    from .build import module_notebook

    return module_notebook(module)


def run_module(
    project: Project, module: Module, cell_timeout: float | None = None
) -> NotebookResult:
    """Execute `module`'s notebook top to bottom and collect each graded cell's result."""
    from nbclient import NotebookClient

    notebook = _notebook_for(project, module)
    timeout = cell_timeout or project.setting("grading", "cell_timeout", 120)
    client = NotebookClient(
        notebook,
        timeout=int(timeout),
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(module.folder)}},
        # the kernel talks to this process over loopback only: not its TCP warning each run
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
    )
    result = NotebookResult(module.key)
    start = time.perf_counter()
    try:
        client.execute(cwd=str(module.folder), env=kernel_env(project))
    except Exception as error:  # a timeout or a dead kernel ends the run; score what completed
        first = str(error).splitlines()[0] if str(error) else ""
        result.errors.append(f"notebook stopped: {type(error).__name__}: {first}")
    result.seconds = time.perf_counter() - start
    for index, cell in enumerate(notebook.cells):
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code":
            continue
        ran = cell.get("execution_count") is not None
        message = error_message(cell.get("outputs", []))
        if meta.get("grade"):
            message = message or stderr_message(cell.get("outputs", []))
            passed = ran and message is None
            why = message or ("" if ran else "did not run (the notebook stopped before this cell)")
            result.cells.append(
                CellResult(
                    meta.get("grade_id", f"cell {index}"), float(meta.get("points", 0)), passed, why
                )
            )
        elif message:
            result.errors.append(f"cell {index} (not a test cell): {message}")
    return result


def format_result(result: NotebookResult) -> str:
    """One line per graded test cell, then the score."""
    lines = []
    for cell in result.cells:
        status = "pass" if cell.passed else "FAIL"
        detail = f"  {cell.message.splitlines()[0]}" if cell.message else ""
        lines.append(f"  {status}  {cell.grade_id:<32} {cell.score:g}/{cell.points:g}{detail}")
    lines += [f"  ERROR {error}" for error in result.errors]
    lines.append(
        f"  {result.module}: {result.score:g}/{result.max_score:g} points ({result.seconds:.1f}s)"
    )
    return "\n".join(lines)


def pytest_files(project: Project, module: Module) -> list[Path]:
    """The pytest files of `module`: `tests/test_NAME.py` and `tests/test_NAME_*.py`."""
    tests = project.root / "tests"
    return sorted({*tests.glob(f"test_{module.name}.py"), *tests.glob(f"test_{module.name}_*.py")})
