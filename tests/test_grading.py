"""`grade`: a whole class of real submissions graded by real nbgrader in one run.

One class, built from the real release of every module: for every module a student who
submits the reference solution and one who submits the release untouched; for the first
module also a row of hostile and broken submissions. Expected scores are derived from the
module itself (which graded cells come before the cell a submission breaks), never typed in.
"""

from __future__ import annotations

import configparser
import copy
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from fixtures.grading.released import cli, private_released_copy

from tinytorch_course.grade import read_table
from tinytorch_course.project import Project
from tinytorch_course.release import released_notebook

pytestmark = pytest.mark.slow

NOTEBOOK_TIMEOUT = 20  # seconds: well above any reference notebook; the infinite loop costs this


def set_timeouts(root: Path, notebook: float, cell: float) -> None:
    settings = configparser.ConfigParser()
    settings.read(root / "settings.ini", encoding="utf-8")
    settings.set("grading", "notebook_timeout", str(notebook))
    settings.set("grading", "cell_timeout", str(cell))
    with (root / "settings.ini").open("w", encoding="utf-8") as handle:
        settings.write(handle)


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def meta(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def solved(project: Project, module) -> dict:
    """The released notebook with every solution cell filled in from the module source:
    what a student who solved everything submits."""
    from tinytorch_course.build import module_notebook

    reference = {meta(c).get("grade_id"): c.source for c in module_notebook(module).cells}
    notebook = load(released_notebook(project, module))
    for cell in notebook["cells"]:
        if meta(cell).get("solution"):
            cell["source"] = reference[meta(cell)["grade_id"]]
    return notebook


def solution_cells(notebook: dict) -> list[int]:
    return [
        i
        for i, c in enumerate(notebook["cells"])
        if c["cell_type"] == "code" and meta(c).get("solution")
    ]


def points_before(notebook: dict, index: int) -> float:
    return sum(float(meta(c)["points"]) for c in notebook["cells"][:index] if meta(c).get("grade"))


def stop_cell(notebook: dict) -> int:
    """The last solution cell with graded cells before it (else the first solution cell):
    where a submission that stops the notebook stops it."""
    cells = solution_cells(notebook)
    later = [i for i in cells if points_before(notebook, i) > 0]
    return later[-1] if later else cells[0]


def first_test(notebook: dict) -> int:
    return next(i for i, c in enumerate(notebook["cells"]) if meta(c).get("grade"))


def with_source(notebook: dict, index: int, source: str) -> dict:
    changed = copy.deepcopy(notebook)
    changed["cells"][index]["source"] = source
    return changed


def hostile_class(project: Project, module) -> dict[str, object]:
    """Student name -> submission (a notebook dict, or raw bytes), for `module`."""
    good = solved(project, module)
    first, stop = solution_cells(good)[0], stop_cell(good)
    first_source = good["cells"][first]["source"]
    stop_source = good["cells"][stop]["source"]
    deleted = copy.deepcopy(good)
    del deleted["cells"][first]
    tampered = load(released_notebook(project, module))
    for cell in tampered["cells"]:
        if meta(cell).get("grade"):
            cell["source"] = "pass  # the tests were here"
    no_test = copy.deepcopy(good)
    del no_test["cells"][first_test(good)]
    copier = copy.deepcopy(good)
    for index in solution_cells(copier):
        reference_import = (
            f"from tinytorch.{module.export_target} import *  # the reference answer\n"
        )
        copier["cells"][index]["source"] = reference_import
    loud = copy.deepcopy(good)
    loud["cells"][first]["source"] = first_source + '\nprint("x" * 50_000_000)\n'
    return {
        "h_loop": with_source(good, stop, stop_source + "\nwhile True:\n    pass\n"),
        "h_syntax": with_source(good, first, "def broken(:\n    pass\n" + first_source),
        "h_deleted": deleted,
        "h_tampered": tampered,
        "h_deleted_test": no_test,
        "h_sysexit": with_source(good, first, "import sys\nsys.exit()\n" + first_source),
        "h_osexit": with_source(good, stop, "import os\nos._exit(1)\n" + stop_source),
        "h_print50mb": loud,
        "h_copier": copier,
        "h_badjson": b'{"cells": [ this is not json',
        "h_empty": b"",
    }


def write_submission(root: Path, student: str, module, content) -> Path:
    path = root / "submitted" / student / module.key / module.notebook.name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(json.dumps(content, indent=1), encoding="utf-8")
    return path


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((root / "submitted").rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Release every module, submit the class, grade it once with the CLI."""
    root = private_released_copy(tmp_path_factory, "grading")
    set_timeouts(root, notebook=NOTEBOOK_TIMEOUT, cell=NOTEBOOK_TIMEOUT)
    project = Project(root)
    first = project.modules[0]
    for module in project.modules:
        write_submission(root, "ref", module, solved(project, module))
        write_submission(root, "zero", module, load(released_notebook(project, module)))
    submissions = hostile_class(project, first)
    for student, content in submissions.items():
        write_submission(root, student, first, content)
    nowhere = root / "submitted" / "h_nomodule" / "99_nowhere" / "nowhere.ipynb"
    nowhere.parent.mkdir(parents=True)
    nowhere.write_text(json.dumps(solved(project, first)), encoding="utf-8")
    before = digest(root)
    result = cli("grade", cwd=root)
    table = {(r["student"], r["module"]): r for r in read_table(root / "grades" / "grades.csv")}
    return {
        "root": root,
        "project": project,
        "result": result,
        "table": table,
        "before": before,
        "good": solved(project, first),
        "first": first,
    }


def row(graded, student: str, module=None) -> dict:
    return graded["table"][(student, (module or graded["first"]).key)]


def test_grading_a_class_succeeds_even_though_students_fail(graded):
    result = graded["result"]
    assert result.returncode == 0, result.stderr
    assert "h_loop" in result.stdout and "FAIL" in result.stdout


@pytest.mark.parametrize("index", range(len(Project(Path(__file__).resolve().parents[1]).modules)))
def test_reference_scores_full_marks_and_release_scores_zero(graded, index):
    module = graded["project"].modules[index]
    full, zero = row(graded, "ref", module), row(graded, "zero", module)
    assert float(full["score"]) == float(full["max_score"]) == module.points, full
    assert full["failed_tests"] == "" and full["problem"] == ""
    assert float(zero["score"]) == 0 and float(zero["max_score"]) == module.points, zero
    failed = [part.split(":")[0] for part in zero["failed_tests"].split(" | ")]
    assert failed == [cell.grade_id for cell in module.graded_cells if cell.points > 0]
    assert "NotImplementedError" in zero["failed_tests"]


def test_feedback_html_for_every_graded_submission(graded):
    root, first = graded["root"], graded["first"]
    for student in ("ref", "zero", "h_loop", "h_osexit", "h_print50mb"):
        page = root / "feedback" / student / first.key / f"{first.notebook.stem}.html"
        assert page.is_file(), page
        assert page.stat().st_size < 5_000_000, f"{page} is {page.stat().st_size} bytes"


def test_infinite_loop_and_os_exit_are_scored_on_what_completed(graded):
    good = graded["good"]
    expected = points_before(good, stop_cell(good))
    for student, why in (("h_loop", "time limit"), ("h_osexit", "kernel died")):
        entry = row(graded, student)
        assert float(entry["score"]) == expected, entry
        assert why in entry["problem"], entry


def test_breaking_a_solution_cell_costs_what_depends_on_it(graded):
    """A syntax error, sys.exit() or deleting the cell all lose exactly that cell's
    definitions, so the three score alike, and the test after the cell fails."""
    deleted = row(graded, "h_deleted")
    good = graded["good"]
    first = solution_cells(good)[0]
    next_test = next(meta(c)["grade_id"] for c in good["cells"][first:] if meta(c).get("grade"))
    assert float(deleted["score"]) < graded["first"].points
    assert next_test in deleted["failed_tests"]
    for student, error in (("h_syntax", "SyntaxError"), ("h_sysexit", "SystemExit")):
        entry = row(graded, student)
        assert entry["score"] == deleted["score"], (entry, deleted)
        assert next_test in entry["failed_tests"]
        assert f"cell {first}: {error}" in entry["problem"], entry


def test_importing_the_reference_answer_scores_like_no_answer(graded):
    """The grading kernel sees only the modules before the graded one, so solution cells
    that import the reference package instead of implementing it earn nothing."""
    entry = row(graded, "h_copier")
    assert float(entry["score"]) == float(row(graded, "zero")["score"]) == 0, entry
    assert "ModuleNotFoundError" in entry["problem"] or "ImportError" in entry["problem"], entry


def test_edited_locked_tests_are_restored_before_grading(graded):
    entry = row(graded, "h_tampered")
    assert float(entry["score"]) == 0, entry
    assert entry["failed_tests"] == row(graded, "zero")["failed_tests"]


def test_a_deleted_test_cell_costs_its_points(graded):
    good = graded["good"]
    cell = meta(good["cells"][first_test(good)])
    entry = row(graded, "h_deleted_test")
    assert float(entry["score"]) == graded["first"].points - float(cell["points"]), entry
    assert (
        entry["failed_tests"]
        == f"{cell['grade_id']}: this test cell is missing from the submission"
    )


def test_huge_output_does_not_cost_points(graded):
    entry = row(graded, "h_print50mb")
    assert float(entry["score"]) == graded["first"].points, entry
    graded_copy = (
        graded["root"]
        / "autograded"
        / "h_print50mb"
        / graded["first"].key
        / graded["first"].notebook.name
    )
    assert graded_copy.stat().st_size < 2_000_000


def test_files_that_are_not_notebooks_are_reported_not_graded(graded):
    assert "not valid JSON" in row(graded, "h_badjson")["problem"]
    assert "empty" in row(graded, "h_empty")["problem"]
    nowhere = graded["table"][("h_nomodule", "99_nowhere")]
    assert "no module '99_nowhere'" in nowhere["problem"] and nowhere["max_score"] == ""
    for student in ("h_badjson", "h_empty"):
        assert float(row(graded, student)["score"]) == 0


def test_regrading_gives_the_same_table_and_keeps_everything(graded):
    from nbgrader.api import Gradebook

    root, project = graded["root"], graded["project"]
    last = project.modules[-1]
    again = cli("grade", last.key, cwd=root)
    assert again.returncode == 0, again.stderr
    table = {(r["student"], r["module"]): r for r in read_table(root / "grades" / "grades.csv")}
    assert set(table) == {("ref", last.key), ("zero", last.key)}
    for key, entry in table.items():
        assert entry == graded["table"][key]
    assert digest(root) == graded["before"], "grading modified a submitted file"
    assert len(list((root / "grades" / "history").glob("*.csv"))) == 2
    db = f"sqlite:///{root / (project.course_id + '.db')}"
    with Gradebook(db, project.course_id) as gradebook:  # the first run's results are still there
        for student in ("ref", "h_loop"):
            submission = gradebook.find_submission(graded["first"].key, student)
            assert submission.score == float(row(graded, student)["score"])


@pytest.fixture
def broken_package_course(tmp_path_factory):
    """A released course with one submission per module, whose package we then break."""
    root = private_released_copy(tmp_path_factory, "broken-package")
    project = Project(root)
    for module in project.modules:
        write_submission(root, "ref", module, solved(project, module))
    return root, project


def test_grading_refuses_when_the_kernel_cannot_import_the_course_package(broken_package_course):
    root, project = broken_package_course
    first = project.modules[0]
    exported = root / "tinytorch" / f"{first.export_target}.py"
    exported.write_text(
        exported.read_text(encoding="utf-8") + "\nthis line is not python\n", encoding="utf-8"
    )
    result = cli("grade", cwd=root)
    assert result.returncode != 0
    assert "cannot import" in result.stderr and "SyntaxError" in result.stderr, result.stderr
    assert not (root / "grades" / "grades.csv").exists(), "a table of zeros was written"


def test_grading_refuses_a_kernel_that_imports_another_tinytorch(broken_package_course):
    root, _ = broken_package_course
    shutil.rmtree(root / "tinytorch")  # the environment may still hold an installed tinytorch
    result = cli("grade", cwd=root)
    assert result.returncode != 0
    assert "tinytorch" in result.stderr and (
        "cannot import" in result.stderr or "not from this course" in result.stderr
    )
    assert not (root / "grades" / "grades.csv").exists()
