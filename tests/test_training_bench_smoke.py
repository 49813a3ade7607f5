"""The training benchmark runs in its quick size and reports what it measured: thread
settings, the BLAS library and kernel, agreement of the three implementations, and the
two ratios with their goals (timings are printed, never asserted)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_training.py"
HAVE_TORCH = importlib.util.find_spec("torch") is not None
# Runs the benchmark with `import torch` failing, as on a machine without torch.
WITHOUT_TORCH = (
    "import runpy, sys; sys.modules['torch'] = None; "
    f"sys.argv = [{str(SCRIPT)!r}, '--quick', '--repeats', '1']; "
    f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')"
)


def run(command: list[str]) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, encoding="utf-8", timeout=300
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def assert_environment_reported(output: str) -> None:
    assert re.search(r"^BLAS: ", output, re.M), output
    assert "OPENBLAS_CORETYPE=" in output and "OPENBLAS_L2_SIZE=" in output
    assert re.search(r"^threads: 1 \(", output, re.M), output
    assert re.search(r"max rel diff \S+: ok\)", output), "the implementations disagree:\n" + output
    assert re.search(
        r"^ratio tinytorch/numpy-by-hand: \d+\.\d+ \(goal <= 1\.15: (PASS|MISS)\) "
        r"\[fastest blocks; medians give \d+\.\d+\]$",
        output,
        re.M,
    )


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.skipif(not HAVE_TORCH, reason="torch not installed")
def test_quick_benchmark_with_profile_reports_both_ratios():
    output = run([sys.executable, str(SCRIPT), "--quick", "--repeats", "1", "--profile"])
    assert_environment_reported(output)
    assert re.search(
        r"^ratio tinytorch/PyTorch: \d+\.\d+ \(goal <= 1\.5: (PASS|MISS)\) "
        r"\[fastest blocks; medians give \d+\.\d+\]$",
        output,
        re.M,
    )
    assert "cProfile of 20 tinytorch steps" in output and "tottime" in output


@pytest.mark.slow
def test_quick_benchmark_runs_without_torch():
    output = run([sys.executable, "-c", WITHOUT_TORCH])
    assert "torch not installed: skipping the PyTorch columns" in output
    assert_environment_reported(output)
    assert "ratio tinytorch/PyTorch" not in output
