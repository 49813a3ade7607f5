"""`tinytorch-course test`: run a module's notebook locally and score it as `grade` does.

The notebook runs top to bottom (`execute.py`) with the check framework recording every
probed value (`TINYTORCH_CHECK_RECORD`, seed 0); then the graded cells are replayed in
this process by `checks.judge` (`scoring.py`), the same judge, messages and "did not
run" rule as `grade`. In the course repository the graded cells are the module source's
(with hidden tests); in a workspace, the student's own notebook's. The local run is not
sandboxed: it is the student's own code on the student's own machine.

The kernel starts in the notebook's folder with the project root first on `PYTHONPATH`,
so `import tinytorch` finds the package of *this* project: the reference in the course
repository, the student's own in a workspace.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .execute import execute, kernel_env
from .project import Module, Project
from .scoring import CellVerdict, graded_cells, run_errors, verdicts

CellResult = CellVerdict  # the outcome of one graded cell
LOCAL_SEED = 0

__all__ = ["CellResult", "NotebookResult", "format_result", "kernel_env", "run_module"]


@dataclass
class NotebookResult:
    module: str
    cells: list[CellVerdict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # errors outside graded cells
    stopped: str = ""  # why the notebook stopped early
    seconds: float = 0.0

    @property
    def score(self) -> float:
        return sum(cell.score for cell in self.cells)

    @property
    def max_score(self) -> float:
        return sum(cell.points for cell in self.cells)

    @property
    def passed(self) -> bool:
        return not self.errors and not self.stopped and all(cell.passed for cell in self.cells)


def error_message(outputs: list) -> str | None:
    """`Name: message` of the first error among a cell's outputs, or None."""
    for output in outputs:
        if output.get("output_type") == "error":
            return f"{output.get('ename')}: {output.get('evalue')}".strip()
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
    project: Project, module: Module, cell_timeout: float | None = None, seed: int = LOCAL_SEED
) -> NotebookResult:
    """Execute `module`'s notebook, then judge its graded cells from what it recorded, with
    the checks' inputs drawn from `seed`."""
    notebook = _notebook_for(project, module)
    judged = graded_cells(notebook)
    with tempfile.TemporaryDirectory(prefix="tinytorch-test-") as folder:
        record = Path(folder) / "observations"
        env = kernel_env(project)
        env |= {"TINYTORCH_CHECK_RECORD": str(record), "TINYTORCH_CHECK_SEED": str(seed)}
        ran = execute(
            notebook,
            str(module.folder),
            env,
            notebook_timeout=project.setting("grading", "notebook_timeout", 300),
            cell_timeout=cell_timeout or project.setting("grading", "cell_timeout", 120),
        )
        observations = record.read_bytes() if record.is_file() else b""
    result = NotebookResult(module.key, stopped=ran.stopped, seconds=ran.seconds)
    result.cells = verdicts(judged, observations, seed, notebook, ran.stopped)
    result.errors = [f"{e} (not a test cell)" for e in run_errors(notebook)]
    return result


def format_result(result: NotebookResult) -> str:
    """One line per graded test cell (as `grade` prints them), then the score."""
    lines = [cell.line() for cell in result.cells]
    lines += [f"  ERROR {error}" for error in result.errors]
    if result.stopped:
        lines.append(f"  STOPPED {result.stopped}")
    lines.append(
        f"  {result.module}: {result.score:g}/{result.max_score:g} points ({result.seconds:.1f}s)"
    )
    return "\n".join(lines)


def pytest_files(project: Project, module: Module) -> list[Path]:
    """The pytest files of `module`: `tests/test_NAME.py` and `tests/test_NAME_*.py`."""
    tests = project.root / "tests"
    return sorted({*tests.glob(f"test_{module.name}.py"), *tests.glob(f"test_{module.name}_*.py")})
