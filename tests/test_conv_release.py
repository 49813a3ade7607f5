"""Module 06's student release runs top to bottom: with every solution region stubbed,
only graded test cells fail, and each fails because of its own unfinished part
(NotImplementedError), not because an earlier cell left a name undefined; the demo cells
between them print what to finish instead of stopping "Run All"."""

from __future__ import annotations

import pytest
from conftest import ROOT
from fixtures.grading.run_release import not_failing_on_own_stub, run_released_notebook

from tinytorch_course.project import Module, nbgrader_metadata

pytestmark = pytest.mark.slow

MODULE = Module(ROOT / "modules" / "06_conv")


def test_released_notebook_fails_only_in_graded_cells_and_only_for_missing_work(tmp_path_factory):
    # The finished modules 01-05 (the reference package) and the data, as a student has them.
    plain_errors, graded = run_released_notebook(
        tmp_path_factory, "06_conv", "conv.ipynb", timeout=300
    )
    assert not plain_errors, "cells outside the graded tests failed:\n" + "\n".join(plain_errors)
    expected = sorted(m["grade_id"] for m in nbgrader_metadata(MODULE.text).values() if m["grade"])
    assert sorted(graded) == expected
    not_stub = not_failing_on_own_stub(graded)
    assert not not_stub, f"graded cells that did not fail on the stub of their own part: {not_stub}"
