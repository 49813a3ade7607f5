"""The mistake catalogues: every typical mistake, applied to the reference solution, fails
the graded cells it names; and the tooling behind it (regions, exact matching, mutants)."""

from __future__ import annotations

import pytest

from tinytorch_course.mistakes import apply, check_mistakes, load_catalogue, solution_regions
from tinytorch_course.project import CourseError, Project

PROJECT = Project.find()
CATALOGUED = [m.key for m in PROJECT.modules if load_catalogue(m)]

SOURCE = """\
# %% nbgrader={"grade": false, "grade_id": "part", "locked": false, "solution": true}
def f(x):
    ### BEGIN SOLUTION
    return x + 1
    ### END SOLUTION


def g(x):
    return x + 1
"""


def test_a_mistake_is_applied_inside_its_solution_region_only():
    changed = apply(SOURCE, "part", "x + 1", "x - 1")
    assert "return x - 1\n    ### END SOLUTION" in changed
    assert changed.endswith("def g(x):\n    return x + 1\n")
    assert [(r.cell, r.end - r.start) for r in solution_regions(SOURCE)] == [("part", 1)]


@pytest.mark.parametrize("find", ["x * 2", "return"])
def test_a_mistake_whose_text_is_not_found_exactly_once_is_refused(find):
    text = (
        SOURCE if find != "return" else SOURCE.replace("x + 1\n    ###", "x\n    return 1\n    ###")
    )
    with pytest.raises(CourseError, match="not once"):
        apply(text, "part", find, "y")


def test_every_catalogue_names_real_cells_and_unique_text():
    for key in CATALOGUED:
        module = PROJECT.module(key)
        graded = {cell.grade_id for cell in module.graded_cells}
        for mistake in load_catalogue(module):
            assert set(mistake.caught_by) <= graded, (key, mistake.name)
            apply(module.text, mistake.cell, mistake.find, mistake.replace)  # raises if not once
        text = (module.folder / "mistakes.toml").read_text(encoding="utf-8")
        assert max(map(len, text.splitlines())) <= 100, key


@pytest.mark.slow
@pytest.mark.catalogue
@pytest.mark.parametrize("key", CATALOGUED)
def test_every_catalogued_mistake_fails_the_cells_it_names(key):
    verdicts = check_mistakes(PROJECT, PROJECT.module(key), log=lambda line: None, fast=True)
    missed = [v.line.strip() for v in verdicts if not v.ok]
    assert verdicts and not missed, "\n".join(missed)


@pytest.mark.slow
@pytest.mark.catalogue
def test_mutation_smoke_two_mutants_run_and_are_judged():
    pytest.importorskip("mutmut")
    from tinytorch_course.mutants import mutants, run_module

    module = PROJECT.module("03")
    found = mutants(module.text, solution_regions(module.text))
    assert found and all(m.original != m.mutated for m in found)
    report = run_module(PROJECT, module, limit=2, log=lambda line: None)
    assert report.total == 2 and report.killed + report.equivalent + len(report.survivors) == 2


TWO_PARTS = """\
# %% nbgrader={"grade": false, "grade_id": "one", "locked": false, "solution": true}
### BEGIN SOLUTION
a = 1
### END SOLUTION
# %% nbgrader={"grade": false, "grade_id": "two", "locked": false, "solution": true}
### BEGIN SOLUTION
b = 2
### END SOLUTION
# %% nbgrader={"grade": true, "grade_id": "test_two", "locked": true, "points": 5}
assert b == 2
# %% nbgrader={"grade": true, "grade_id": "test_two_more", "locked": true, "points": 5}
assert a + b == 3
# %% nbgrader={"grade": false, "grade_id": "three", "locked": false, "solution": true}
### BEGIN SOLUTION
c = 3
### END SOLUTION
# %% nbgrader={"grade": true, "grade_id": "test_three", "locked": true, "points": 5}
assert c == 3
"""


def test_each_solution_cell_is_tested_first_by_the_graded_cells_that_follow_it():
    from tinytorch_course.mutants import own_tests

    tests = own_tests(TWO_PARTS, solution_regions(TWO_PARTS))
    assert tests == {
        "one": ("test_two", "test_two_more"),  # no test of its own: the next group
        "two": ("test_two", "test_two_more"),
        "three": ("test_three",),
    }


def test_two_stages_rerun_only_the_survivors_of_the_first_on_the_whole_notebook():
    from tinytorch_course.mistakes import Run
    from tinytorch_course.mutants import judge

    first = [
        Run({"t": (False, "AssertionError")}),  # killed by its own test
        Run({"t": (True, "")}),  # survives: runs the whole notebook
        Run({"t": (True, "")}, ["cell at line 3: NameError: x"]),  # an error kills it
        Run({"t": (True, "")}),
    ]
    asked = []

    def whole(indexes):
        asked.extend(indexes)
        return [Run({"t": (True, ""), "later": (i == 1, "")}) for i in indexes]

    final, early = judge(first, whole)
    assert asked == [1, 3] and early == 2
    assert final[0] is first[0] and final[2] is first[2]
    assert [bool(run.failed() or run.errors) for run in final] == [True, False, True, True]


def test_a_run_that_hangs_crashes_or_leaves_processes_is_reported_and_cleaned_up(tmp_path):
    """Each run is a child forked from one warmed-up runner: a child that hangs is killed at
    the time limit, one that dies is reported with its last words, what a child started is
    killed with it, and the same runner goes on to the next job."""
    from tinytorch_course.mistakes import CellRunner

    module = PROJECT.module("03")
    graded = {cell.grade_id for cell in module.graded_cells}
    grade_id = module.graded_cells[0].grade_id
    passing = (
        f'# %% nbgrader={{"grade": true, "grade_id": "{grade_id}", "locked": true, "points": 1}}\n'
        "assert 1 + 1 == 2\n"
    )
    pid_file = tmp_path / "pid"
    starter = (
        "import subprocess\n"
        "child = subprocess.Popen(['sleep', '600'])\n"
        f"open({str(pid_file)!r}, 'w', encoding='utf-8').write(str(child.pid))\n"
    )
    with CellRunner(PROJECT, module) as runner:
        hung = runner.run("# %%\nwhile True:\n    pass\n", timeout=2)
        died = runner.run("# %%\nimport os\nos.write(2, b'bye\\n')\nos._exit(3)\n")
        exited = runner.run("# %%\nimport sys\nsys.exit()\n")
        left = runner.run(f"# %%\n{starter}{passing}")
        fine = runner.run(passing)
    assert hung.failed() == graded and "timed out after 2s" in hung.cells[grade_id][1]
    assert died.failed() == graded and died.cells[grade_id][1] == "crashed: bye"
    assert exited.failed() == graded and "SystemExit" in exited.cells[grade_id][1]
    assert left.cells[grade_id] == (True, "") and fine.cells[grade_id] == (True, "")
    pid = int(pid_file.read_text(encoding="utf-8"))
    try:
        state = open(f"/proc/{pid}/stat", encoding="utf-8").read().split(") ")[1][0]
    except FileNotFoundError:
        state = "gone"
    assert state in ("gone", "Z"), f"the run's background process {pid} is still running"
