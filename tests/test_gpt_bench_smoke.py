"""`bench gpt` runs in its quick size and reports its ratios (timings are printed, never
asserted): the step against PyTorch from the same weights, the KV-cache speed-up at two
contexts, and where tinytorch's step spends its time."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_gpt.py"
HAVE_TORCH = importlib.util.find_spec("torch") is not None


def run(command: list[str]) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, encoding="utf-8", timeout=300
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.skipif(not HAVE_TORCH, reason="compares with PyTorch")
def test_quick_bench_reports_the_step_ratio_the_cache_speedup_and_the_profile():
    out = run([sys.executable, str(SCRIPT), "--quick"])
    losses = [line for line in out.splitlines() if line.startswith("first-step loss")]
    assert losses, out
    ours, theirs = (float(part.split()[-1]) for part in losses[0].split(":", 1)[1].split(","))
    assert abs(ours - theirs) < 1e-4 * abs(theirs)  # the same model from the same weights
    ratios = [line for line in out.splitlines() if line.startswith("ratio tinytorch / PyTorch")]
    assert len(ratios) == 2 and all("goal <= 1.5" in line for line in ratios)  # both mallocs
    faults = [line for line in out.splitlines() if line.startswith("page faults per step")]
    assert len(faults) == 2
    cache_lines = [line for line in out.splitlines() if "ratio speed-up" in line]
    assert len(cache_lines) == 4 and "goal >= 5" in cache_lines[1] and "goal >= 5" in cache_lines[3]
    for group in ("matrix products (Linear)", "softmax", "layer norm", "Python overhead"):
        assert group in out


@pytest.mark.slow
def test_quick_bench_runs_without_torch():
    code = (
        "import runpy, sys; sys.modules['torch'] = None; "
        f"sys.argv = [{str(SCRIPT)!r}, '--quick']; "
        f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')"
    )
    out = run([sys.executable, "-c", code])
    assert "PyTorch not installed" in out and "ratio speed-up" in out
