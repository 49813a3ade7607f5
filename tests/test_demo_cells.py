"""A module whose part is written but wrong (not merely unfinished) must still run top to
bottom, as "Run All" does: only graded cells fail, and every demo cell that calls the
student's code prints one line saying what went wrong instead of stopping the run."""

from __future__ import annotations

import pytest
from conftest import ROOT

from tinytorch_course.mistakes import run_text
from tinytorch_course.project import Project

PROJECT = Project(ROOT)

# A mistake in a part that later demo cells use, each raising an error that is not
# NotImplementedError: positions one longer than the tokens (07, Part 6), the output's
# batch and channel axes left swapped (06, Part 2).
MISTAKES = {
    "07_attention/attention.py": (
        "self.wpe(np.arange(start, start + T))",
        "self.wpe(np.arange(start, start + T + 1))",
    ),
    "06_conv/conv.py": (
        "return out.reshape(n, out_channels, oh, ow)",
        "return out.reshape(out_channels, n, oh, ow)",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("source", sorted(MISTAKES))
def test_a_mistaken_part_fails_only_graded_cells(source):
    module = PROJECT.module(source.split("/")[0])
    old, new = MISTAKES[source]
    assert module.text.count(old) == 1, f"{source}: the mistake's text is not in the module"
    run = run_text(PROJECT, module, module.text.replace(old, new), timeout=600)
    assert run.failed(), f"{source}: the mistake failed no graded cell, so it tests nothing"
    assert run.errors == [], f"{source}: cells outside the graded tests stopped the run"
