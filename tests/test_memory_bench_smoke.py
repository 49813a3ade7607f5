"""The memory benchmark runs end to end in its quick size and reports what it measured
(ratios are printed, not asserted: timing belongs to the full-size run)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tinytorch_course.boxes import misaligned_boxes

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_memory.py"


def test_quick_benchmark_reports_ratios_identical_gradients_and_ledgers():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--repeats", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    output = result.stdout
    assert result.returncode == 0, f"exit {result.returncode}\n{output}\n{result.stderr}"
    assert "segments = round(sqrt(8)) = round(2.83) = 3, segment sizes [3, 3, 2]" in output
    ratios = re.findall(
        r"^  ratio\s+(\d+\.\d+)\s+(?:\(of the peaks\) )?target <= ", output, flags=re.M
    )
    assert len(ratios) == 2, output  # memory, then time
    assert 0 < float(ratios[0]) < 1, f"checkpointing should lower the peak:\n{output}"
    assert "gradients identical (np.array_equal, 16 parameters): yes" in output
    assert "parameters identical after 3 steps: yes" in output
    lines = output.splitlines()
    # one row of the side-by-side boxes, one box of the layout
    assert sum("Saved for backward" in line for line in lines) == 2
    assert "End of forward: plain vs checkpoint_sequential (3 segments)" in output
    assert not misaligned_boxes(lines)
