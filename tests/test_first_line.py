"""The first line of a failing graded test is the same everywhere a student or an
instructor reads it: in the notebook (the live kernel's error), in `tinytorch-course test`,
in `grade`'s table and in the feedback page. Shown on module 02 with typical mistakes from
its catalogue applied to the reference solution."""

from __future__ import annotations

import html

import pytest

from tinytorch_course import runner
from tinytorch_course.execute import execute
from tinytorch_course.feedback import render
from tinytorch_course.grade import GradeRow, print_table
from tinytorch_course.mistakes import apply, load_catalogue
from tinytorch_course.project import Project
from tinytorch_course.runner import error_message, format_result, run_module

pytestmark = pytest.mark.slow

# One mistake per graded cell, each from module 02's catalogue.
MISTAKES = (
    "train() toggles the flag instead of setting it to mode",
    "sizes compared instead of shapes",
    "mean over the first axis only",
    "backward ignores grad_output",
)


def test_a_failure_shows_one_first_line_in_notebook_test_grade_and_feedback(
    course_copy, monkeypatch
):
    project = Project.find(course_copy)
    module = project.module("02")
    catalogue = {m.name: m for m in load_catalogue(module)}
    text = module.source.read_text(encoding="utf-8")
    for name in MISTAKES:
        mistake = catalogue[name]
        text = apply(text, mistake.cell, mistake.find, mistake.replace)
    module.source.write_text(text, encoding="utf-8")

    executed = []

    def execute_and_keep(notebook, *args, **kwargs):
        executed.append(notebook)  # executed in place: its outputs are what the student sees
        return execute(notebook, *args, **kwargs)

    monkeypatch.setattr(runner, "execute", execute_and_keep)
    result = run_module(project, module)
    failed = [cell for cell in result.cells if not cell.passed]
    wanted = {catalogue[name].caught_by[0] for name in MISTAKES}
    assert wanted <= {cell.grade_id for cell in failed}, format_result(result)
    [notebook] = executed
    live: dict[str, str] = {}
    for cell in notebook.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        message = error_message(cell.get("outputs", [])) if cell.cell_type == "code" else None
        if grade_id and message:
            live[grade_id] = message.splitlines()[0]

    printed = format_result(result).splitlines()
    table: list[str] = []
    row = GradeRow("ada", module.key, result.score, result.max_score, verdicts=result.cells)
    print_table([row], out=table.append)
    page = render(notebook, module.key, result.cells, "0/100", [])
    for cell in failed:
        first = cell.message
        assert "\n" not in first and first, cell
        assert live[cell.grade_id] == f"CheckFailed: {first}", (live[cell.grade_id], first)
        assert any(line.endswith(f"  {first}") for line in printed), (first, printed)
        assert any(line.endswith(f"  {first}") for line in table), (first, table)
        assert f"<td>{html.escape(first)}</td>" in page
    hinted = [c.message for c in failed if c.grade_id == "test_nn_module"]
    assert hinted and "hint:" in hinted[0]  # the hint is on the line that everyone sees
