"""The autograd benchmark runs and reports its ratios (no timing is asserted)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_autograd.py"
HAVE_TORCH = importlib.util.find_spec("torch") is not None

# Runs the benchmark with `import torch` and `import threadpoolctl` failing, as on a
# machine with neither (the CI job on Python 3.10).
WITHOUT_TORCH = (
    "import runpy, sys; sys.modules['torch'] = None; sys.modules['threadpoolctl'] = None; "
    f"sys.argv = [{str(SCRIPT)!r}, '--quick']; "
    f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')"
)


def run(command: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, encoding="utf-8", timeout=300
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def ratio_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("ratio ")]


def assert_common_report(output: str) -> None:
    assert "numpy " in output and "BLAS:" in output and "OPENBLAS_CORETYPE=" in output
    assert "threads:" in output
    per_node = [line for line in ratio_lines(output) if "per-node backward" in line]
    assert len(per_node) == 1 and "100000 / 1000" in per_node[0], output
    assert "goal <= 1.5" in per_node[0]


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.skipif(not HAVE_TORCH, reason="torch not installed")
def test_quick_benchmark_reports_ratios_against_torch():
    # One thread: torch's fork/join on small ops would only slow the smoke run down.
    output = run([sys.executable, str(SCRIPT), "--quick", "--threads", "1"]).stdout
    assert_common_report(output)
    per_op = [line for line in ratio_lines(output) if "per op" in line]
    assert len(per_op) == 6, output  # 3 ops x 2 shapes
    assert all("goal <= 1.0" in line for line in per_op)


def test_quick_benchmark_runs_without_torch_and_threadpoolctl():
    output = run([sys.executable, "-c", WITHOUT_TORCH]).stdout
    assert "torch not installed: skipping the PyTorch columns" in output
    assert "threadpoolctl not installed: numpy's BLAS and torch both set to 1" in output
    assert_common_report(output)
    assert not [line for line in ratio_lines(output) if "per op" in line]
