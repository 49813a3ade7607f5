"""`release`: nbgrader's student version of every module, and the check that nothing leaks.

The leak checks are exercised on releases that really leak: a module that repeats a
solution line in a markdown cell, an nbgrader configuration that keeps the solutions in,
and a `.py` file left in the release folder. Each must fail loudly, naming file and text.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT, copy_course
from fixtures.grading.released import HIDDEN_CHECK, cli, private_released_copy, released_course

from tinytorch_course.project import Module, Project

pytestmark = pytest.mark.slow

MODULE_KEYS = [m.key for m in Project(ROOT).modules]
LEAKY_CONFIG = """
# A broken configuration: nbgrader keeps solutions and hidden tests in the release.
from nbgrader.converters import GenerateAssignment as _GenerateAssignment
c.GenerateAssignment.preprocessors = [
    p for p in _GenerateAssignment.class_traits()["preprocessors"].make_dynamic_default()
    if p.__name__ not in ("ClearSolutions", "ClearHiddenTests")
]
"""


def regions(module: Module, begin: str, end: str) -> list[list[str]]:
    """The stripped lines of each region of the module source between `begin` and `end`."""
    found, current = [], None
    for line in module.text.splitlines():
        if line.strip() == begin:
            current = []
        elif line.strip() == end:
            found.append(current)
            current = None
        elif current is not None and line.strip():
            current.append(line.strip())
    return found


def longest_solution_line(module: Module) -> str:
    return max(
        (
            line
            for region in regions(module, "### BEGIN SOLUTION", "### END SOLUTION")
            for line in region
        ),
        key=len,
    )


def code_sources(notebook: Path) -> list[str]:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells]


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    _, result = released_course(tmp_path_factory)
    root = private_released_copy(tmp_path_factory, "release")
    return {"root": root, "project": Project(root), "result": result}


def test_release_of_every_module_succeeds_and_says_it_verified(released):
    """Released by `tinytorch-course` started by its full path, the venv not on PATH."""
    result = released["result"]
    assert result.returncode == 0, result.stderr
    assert "verified release/" in result.stdout
    assert not list((released["root"] / "release").rglob("*.py"))


def test_an_instructors_hidden_test_is_kept_back_from_students(released):
    module = released["project"].module("01_autograd")
    assert regions(module, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS") == [[HIDDEN_CHECK]]
    notebook = released["root"] / "release" / module.key / module.notebook.name
    assert HIDDEN_CHECK not in "\n".join(code_sources(notebook))
    source = released["root"] / "source" / module.key / module.notebook.name
    assert HIDDEN_CHECK in "\n".join(code_sources(source))  # `grade` runs it


@pytest.mark.parametrize("key", MODULE_KEYS)
def test_released_notebook_is_stubbed_without_solutions_hidden_tests_or_outputs(released, key):
    module = released["project"].module(key)
    notebook = released["root"] / "release" / key / module.notebook.name
    text = "\n".join(code_sources(notebook))
    solutions = regions(module, "### BEGIN SOLUTION", "### END SOLUTION")
    stubs = text.count("# YOUR CODE HERE") - module.text.count("# YOUR CODE HERE")
    assert stubs == len(solutions) > 0
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    released_lines = {line.strip() for line in text.splitlines()}
    for region in regions(module, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"):
        assert not set(region) - {""} <= released_lines, f"hidden test of {key} released: {region}"
    for region in solutions:
        body = "\n".join(region)
        assert body not in text or body.startswith("raise NotImplementedError"), (
            f"solution of {key} released"
        )
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    assert all(
        not c.get("outputs") and c.get("execution_count") is None
        for c in cells
        if c["cell_type"] == "code"
    )


def test_a_py_file_in_the_release_fails_the_release(released):
    root, first = released["root"], released["project"].modules[0]
    stray = root / "release" / first.key / first.source.name
    stray.write_text(first.text, encoding="utf-8")
    try:
        result = cli("release", cwd=root)
        assert result.returncode != 0
        assert f"release/{first.key}/{first.source.name}: a .py file" in result.stderr
        assert "NOT safe" in result.stderr
    finally:
        stray.unlink()


def test_existing_release_is_kept_without_force_and_a_leaky_module_fails_when_forced(released):
    """The module now repeats a solution line in a markdown cell: `release` keeps the old
    (clean) release and says so; `release --force` regenerates it and fails on the leak."""
    root, first = released["root"], released["project"].modules[0]
    notebook = root / "release" / first.key / first.notebook.name
    before = notebook.read_bytes()
    secret = longest_solution_line(first)
    leaky = first.text + f"\n# %% [markdown]\n# The answer, for the impatient:\n#\n#     {secret}\n"
    first.source.write_text(leaky, encoding="utf-8")
    kept = cli("release", first.key, cwd=root)
    assert kept.returncode == 0, kept.stderr
    assert f"release/{first.key}: exists" in kept.stdout and "kept" in kept.stdout
    assert notebook.read_bytes() == before
    forced = cli("release", first.key, "--force", cwd=root)
    assert forced.returncode != 0
    assert notebook.read_bytes() != before, "--force did not regenerate the release"
    assert f"release/{first.key}/{first.notebook.name} cell" in forced.stderr
    assert repr(secret) in forced.stderr and "NOT safe" in forced.stderr


def test_an_nbgrader_config_that_keeps_solutions_fails_the_release(tmp_path):
    root = copy_course(tmp_path / "course")
    with (root / "nbgrader_config.py").open("a", encoding="utf-8") as config:
        config.write(LEAKY_CONFIG)
    first = Project(root).modules[0]
    result = cli("release", first.key, cwd=root)
    assert result.returncode != 0
    assert repr(longest_solution_line(first)) in result.stderr
    assert "solution line" in result.stderr and "NOT safe" in result.stderr
