"""Each authoring rule catches a deliberately broken module, and the real course is clean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinytorch_course.boxes import display_width, misaligned_boxes
from tinytorch_course.lint import MOJIBAKE, lint, mis_decoded
from tinytorch_course.project import Project

ROOT = Path(__file__).resolve().parents[1]


def meta(**fields) -> str:
    base = {
        "grade": False,
        "grade_id": "f",
        "locked": False,
        "schema_version": 3,
        "solution": False,
        "task": False,
    }
    return "nbgrader=" + json.dumps({**base, **fields})


GOOD = f"""\
# %% [markdown]
# # Good module
#
# > It follows every rule.

# %% [markdown]
# ```
# ┌──────┐ ┌────┐
# │ box  │ │ ok │
# └──────┘ └────┘
# ```

# %%
#| default_exp good

# %% {meta(solution=True, grade_id="double")}
#| export
def double(a):
    ### BEGIN SOLUTION
    return 2 * a
    ### END SOLUTION

# %% {meta(grade=True, locked=True, points=100, grade_id="test_double")}
import numpy as np
from tinytorch_course.checks import Check

check = Check("test_double", points=100)
check.equal(check.probe(lambda: double(2), "double(2)"), 4, "double(2)")
### BEGIN HIDDEN TESTS
check.equal(check.probe(lambda: double(0), "double(0)"), 0, "double(0)")
### END HIDDEN TESTS
check.done()
"""


def make_course(tmp_path: Path, *sources: str) -> Project:
    keys = []
    for number, source in enumerate(sources, start=1):
        key = f"{number:02d}_m{number}"
        (tmp_path / "modules" / key).mkdir(parents=True)
        (tmp_path / "modules" / key / f"m{number}.py").write_text(source, encoding="utf-8")
        keys.append(key)
    settings = "[course]\ncourse_id = t\nmodules = " + " ".join(keys) + "\n"
    (tmp_path / "settings.ini").write_text(settings, encoding="utf-8")
    return Project(tmp_path)


def problems_for(tmp_path: Path, source: str) -> str:
    return "\n".join(lint(make_course(tmp_path, source)))


def test_good_module_is_clean(tmp_path):
    assert lint(make_course(tmp_path, GOOD)) == []


def test_the_course_itself_is_clean():
    assert lint(Project(ROOT)) == []


BROKEN = {
    "not percent format": (lambda s: "import numpy\n" + s, "not percent format"),
    "unknown marker": (
        lambda s: s.replace("# %%\n#| default_exp", "# %% [raw]\n#| default_exp"),
        "unrecognised cell marker",
    ),
    "malformed metadata": (
        lambda s: s.replace('"grade_id": "double",', '"grade_id": "double"'),
        "m1.py:16: malformed nbgrader metadata",
    ),
    "missing key": (
        lambda s: s.replace('"schema_version": 3, "solution": true', '"solution": true'),
        "needs 'schema_version'",
    ),
    "unlocked graded cell": (
        lambda s: s.replace('"test_double", "locked": true', '"test_double", "locked": false'),
        "graded cell 'test_double' must be locked",
    ),
    "graded cell without points": (
        lambda s: s.replace('"points": 100', '"points": 0'),
        "needs points > 0",
    ),
    "locked solution cell": (
        lambda s: s.replace(
            '"locked": false, "schema_version": 3, "solution": true',
            '"locked": true, "schema_version": 3, "solution": true',
        ),
        "solution cell 'double' must not be locked",
    ),
    "solution outside solution cell": (
        lambda s: s.replace('"solution": true', '"solution": false'),
        'BEGIN SOLUTION in a cell without "solution": true',
    ),
    "hidden tests outside graded cell": (
        lambda s: s.replace(
            "    return 2 * a\n", "    return 2 * a\n### BEGIN HIDDEN TESTS\n### END HIDDEN TESTS\n"
        ),
        'BEGIN HIDDEN TESTS in a cell without "grade": true',
    ),
    "unclosed region": (lambda s: s.replace("    ### END SOLUTION\n", ""), "never closed"),
    "misaligned box": (
        lambda s: s.replace("# │ box  │ │ ok │", "# │ box   │ │ ok │"),
        "diagram box at column 0: right side",
    ),
    "mojibake": (lambda s: s.replace("It follows", f"It{mis_decoded('─')} follows"), "mojibake"),
    "no export target": (lambda s: s.replace("#| default_exp good", "x = 1"), "no `#| default_exp"),
    "points not 100": (
        lambda s: s.replace('"points": 100', '"points": 60'),
        "add up to 60 points, not 100",
    ),
    "graded cell without check.done() last": (
        lambda s: s.replace("check.done()\n", ""),
        "graded cell 'test_double' must end with check.done()",
    ),
    "graded cell that does not open with its Check": (
        lambda s: s.replace('check = Check("test_double", points=100)', "check = None"),
        'must start (after its imports) with check = Check("test_double", points=100)',
    ),
    "graded cell whose Check disagrees with its metadata": (
        lambda s: s.replace('Check("test_double", points=100)', 'Check("test_double", points=10)'),
        'must start (after its imports) with check = Check("test_double", points=100)',
    ),
    "title cell not first": (
        lambda s: s.replace("# # Good module", "# Good module"),
        "first cell must be markdown",
    ),
    "more than a title in the title cell": (
        lambda s: s.replace(
            "# > It follows every rule.", "# > It follows every rule.\n# Some prose."
        ),
        "keep the title cell to",
    ),
    "line wider than 100 columns": (
        lambda s: s.replace("# > It follows every rule.", "# > It follows every rule." + "─" * 80),
        "line is 106 columns wide; the limit is 100",
    ),
    "uncommented markdown": (
        lambda s: s.replace("# > It follows every rule.", "> It follows every rule."),
        "markdown line not commented",
    ),
}


@pytest.mark.parametrize("rule", sorted(BROKEN))
def test_each_rule_catches_a_broken_module(tmp_path, rule):
    breaks, expected = BROKEN[rule]
    broken = breaks(GOOD)
    assert broken != GOOD, f"the {rule!r} example did not change the module"
    assert expected in problems_for(tmp_path, broken)


def test_duplicate_grade_ids_across_modules(tmp_path):
    problems = "\n".join(lint(make_course(tmp_path, GOOD, GOOD)))
    assert "grade_id 'double' already used at modules/01_m1/m1.py:16" in problems


def test_wide_characters_take_two_columns():
    assert display_width("🎯 ab") == 5
    assert display_width("─│┌") == 3
    aligned = ["┌────┐", "│🎯ab│", "└────┘"]  # emoji is 2 columns: the box is 6 wide everywhere
    counted_by_len = ["┌────┐", "│🎯abc│", "└────┘"]  # equal len() per row, but one column too wide
    assert misaligned_boxes(aligned) == []
    assert misaligned_boxes(counted_by_len) != []


def test_the_seeds_training_memory_box_is_caught():
    # The right border of the seed's "Training Memory Layout" box wanders between columns.
    seed = [
        "┌──────────────────────┐",
        "│   Training Memory     │",
        "├──────────────────────┤",
        "│  ┌────┐ ┌────┐       │",
        "│  │ W  │ │ x  │     │",
        "│  └────┘ └────┘       │",
        "└──────────────────────┘",
    ]
    problems = misaligned_boxes(seed)
    assert problems and "right side" in problems[0][1]


def test_mojibake_patterns_include_what_the_seed_showed():
    # The seed arrived with `─` mis-decoded by cp1252 and `🎯` by cp1254.
    assert mis_decoded("─") == "\u00e2\u201d\u20ac"
    assert {"\u00e2\u201d", "\u011f\u0178"} <= set(MOJIBAKE)
