"""The conv and CNN benchmarks run in their quick sizes and report what they measured
(timings and accuracies are printed, never asserted)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(script: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}
    command = [sys.executable, str(ROOT / "benchmarks" / script), *args]
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, encoding="utf-8", timeout=300
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.torch
def test_bench_conv_reports_agreement_and_both_ratios():
    pytest.importorskip("torch")
    output = run("bench_conv.py", "--quick", "--threads", "1")
    assert re.search(r"^threads: 1 ", output, re.M), output
    runs = output.count("=== malloc:")  # glibc's defaults, then keep_freed_memory() if any
    assert runs in (1, 2) and "the C library's defaults" in output, output
    assert output.count("(ok)") == 2 * runs, "the implementations disagree:\n" + output
    assert len(re.findall(r"page faults/step\s+\d+\.\d", output)) == 6 * runs, output
    assert len(re.findall(r"tinytorch / numpy by hand\s+\d+\.\d+x", output)) == 2 * runs
    assert len(re.findall(r"tinytorch / PyTorch\s+\d+\.\d+x", output)) == 2 * runs


def test_bench_cnn_reports_both_models_on_the_same_split():
    output = run("bench_cnn.py", "--quick")
    assert re.search(r"^split seed 0: MLP \d+\.\d+% .* CNN \d+\.\d+%", output, re.M), output
    assert re.search(r"^mean test accuracy\s+\d+\.\d+%\s+\d+\.\d+%", output, re.M), output
    assert re.search(r"the CNN wins on \d of 1 splits", output), output
