"""Module 07's student release runs top to bottom: with every solution region stubbed,
only graded test cells fail, and each fails because of its own unfinished part
(NotImplementedError), not because an earlier cell left a name undefined."""

from __future__ import annotations

import os

import nbformat
import pytest
from conftest import ROOT
from fixtures.grading.released import released_course
from nbclient import NotebookClient

from tinytorch_course.runner import error_message

pytestmark = pytest.mark.slow


def test_released_notebook_fails_only_in_graded_cells_and_only_for_missing_work(tmp_path_factory):
    root, result = released_course(tmp_path_factory)
    assert result.returncode == 0, f"release failed:\n{result.stdout}\n{result.stderr}"
    path = root / "release" / "07_attention" / "attention.ipynb"
    notebook = nbformat.read(path, as_version=4)
    # The finished modules 01-05 (the reference package) and the data, as a student has them.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}
    client = NotebookClient(notebook, timeout=300, kernel_name="python3", allow_errors=True)
    client.execute(cwd=str(path.parent), env=env)
    plain_errors, graded = [], {}
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        message = error_message(cell.get("outputs", []))
        if meta.get("grade"):
            graded[meta["grade_id"]] = message
        elif message:
            plain_errors.append(f"cell {index}: {message}")
    assert not plain_errors, "cells outside the graded tests failed:\n" + "\n".join(plain_errors)
    assert len(graded) == 8
    not_stub = {k: v for k, v in graded.items() if "raised NotImplementedError" not in (v or "")}
    assert not not_stub, f"graded cells that did not fail on the stub of their own part: {not_stub}"
