"""A module whose part is written but wrong (not merely unfinished) must still run top to
bottom, as "Run All" does: only graded cells fail, and every demo cell that calls the
student's code prints one line saying what went wrong instead of stopping the run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A mistake in a part that later demo cells use, each raising an error that is not
# NotImplementedError: positions one longer than the tokens (07, Part 6), the output's
# batch and channel axes left swapped (06, Part 2).
MISTAKES = {
    "07_attention/attention.py": (
        "self.wpe(np.arange(start, start + T))",
        "self.wpe(np.arange(start, start + T + 1))",
    ),
    "06_conv/conv.py": (
        "out.reshape(out_channels, n, oh, ow).transpose(1, 0, 2, 3)",
        "out.reshape(out_channels, n, oh, ow)",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("source", sorted(MISTAKES))
def test_a_mistaken_part_fails_only_graded_cells(source):
    path = ROOT / "modules" / source
    old, new = MISTAKES[source]
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{source}: the mistake's text is not in the module"
    done = subprocess.run(
        [sys.executable, "-m", "tinytorch_course.cellrun", str(path.parent)],
        input=text.replace(old, new),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    failed = [grade_id for grade_id, (passed, _) in result["cells"].items() if not passed]
    assert failed, f"{source}: the mistake failed no graded cell, so it tests nothing"
    assert result["errors"] == [], f"{source}: cells outside the graded tests stopped the run"
