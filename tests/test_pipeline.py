"""The build pipeline with the real tools: jupytext, nbdev-export, nbclient."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from tinytorch_course.build import BACKUPS, build, out_of_sync
from tinytorch_course.mistakes import apply, load_catalogue
from tinytorch_course.project import CourseError, Project
from tinytorch_course.runner import run_module


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under tinytorch/ and every generated notebook, by path."""
    files = [*root.glob("tinytorch/**/*.py"), *root.glob("modules/*/*.ipynb")]
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(files)}


def cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tinytorch_course", *args]
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, encoding="utf-8", env=env, timeout=600
    )


def test_exported_package_is_in_sync_with_modules():
    assert out_of_sync(Project(ROOT)) == []


def test_out_of_sync_package_is_detected(course_copy):
    target = course_copy / "tinytorch" / "autograd.py"
    target.write_text(target.read_text(encoding="utf-8") + "\n# edited by hand\n", encoding="utf-8")
    (course_copy / "tinytorch" / "stray.py").write_text("x = 1\n", encoding="utf-8")
    differences = out_of_sync(Project(course_copy))
    assert "tinytorch/autograd.py: differs from what modules/ exports (run build)" in differences
    assert "tinytorch/stray.py: not produced by any module (delete it or export it)" in differences


def test_build_twice_changes_no_byte(course_copy):
    project = Project(course_copy)
    build(project, log=lambda *_: None)
    first = snapshot(course_copy)
    mtimes = {p: p.stat().st_mtime_ns for p in course_copy.glob("modules/*/*.ipynb")}
    build(project, log=lambda *_: None)
    assert snapshot(course_copy) == first
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes, "unchanged notebooks were rewritten"
    assert all(name in first for name in ("tinytorch/autograd.py", "tinytorch/_modidx.py"))


def test_package_imports_from_a_clean_clone(tmp_path):
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(clone)
    project = Project(clone)
    names = " ".join(f"tinytorch.{m.export_target}" for m in project.modules)
    code = (
        f"import importlib, sys\nfor n in '{names}'.split(): m = importlib.import_module(n); "
        f"assert m.__file__.startswith({str(clone)!r}), m.__file__"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_edited_notebook_is_never_overwritten_silently(course_copy):
    project = Project(course_copy)
    build(project, log=lambda *_: None)
    notebook = project.modules[0].notebook
    data = json.loads(notebook.read_text(encoding="utf-8"))
    data["cells"].append(
        {"cell_type": "markdown", "id": "mine", "metadata": {}, "source": ["my notes"]}
    )
    edited = json.dumps(data)
    notebook.write_text(edited, encoding="utf-8")
    with pytest.raises(
        CourseError, match=r"autograd\.ipynb: edited after build generated it.*--force"
    ):
        build(project, log=lambda *_: None)
    assert notebook.read_text(encoding="utf-8") == edited, "build touched the edited notebook"
    build(project, force=True, log=lambda *_: None)
    backups = list((course_copy / BACKUPS).glob("autograd.*.ipynb"))
    assert [b.read_text(encoding="utf-8") for b in backups] == [edited]
    assert "my notes" not in notebook.read_text(encoding="utf-8")


def test_notebook_outputs_alone_are_kept(course_copy):
    project = Project(course_copy)
    build(project, log=lambda *_: None)
    notebook = project.modules[0].notebook
    data = json.loads(notebook.read_text(encoding="utf-8"))
    code = next(c for c in data["cells"] if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["ran\n"]}]
    with_outputs = json.dumps(data)
    notebook.write_text(with_outputs, encoding="utf-8")
    build(project, log=lambda *_: None)
    assert notebook.read_text(encoding="utf-8") == with_outputs


def test_export_that_writes_nothing_is_an_error(course_copy):
    pyproject = course_copy / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8").replace(
        'nbs_path = "modules"', 'nbs_path = "elsewhere"'
    )
    pyproject.write_text(text, encoding="utf-8")
    (course_copy / "elsewhere").mkdir()
    with pytest.raises(CourseError, match=r"nbdev-export did not write tinytorch/autograd\.py"):
        build(Project(course_copy), log=lambda *_: None)


def test_cli_unknown_module_lists_the_real_ones():
    result = cli("test", "nosuch", cwd=ROOT)
    assert result.returncode == 2
    assert "unknown module 'nosuch'; the modules are: 01_autograd" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_malformed_metadata_names_file_and_line(course_copy):
    source = course_copy / "modules" / "01_autograd" / "autograd.py"
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines) if line.startswith("# %% nbgrader="))
    lines[number] = lines[number].replace('"grade_id":', '"grade_id"')
    source.write_text("".join(lines), encoding="utf-8")
    result = cli("build", cwd=course_copy)
    assert result.returncode == 2
    assert (
        f"modules/01_autograd/autograd.py:{number + 1}: malformed nbgrader metadata"
        in result.stderr
    )


def test_cli_outside_a_course_says_where_to_run(tmp_path):
    result = cli("modules", cwd=tmp_path)
    assert result.returncode == 2 and "no TinyTorch course here" in result.stderr


def test_demo_traces_the_seed_example():
    result = cli("demo", "--no-training", cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "x.grad = 3" in result.stdout.replace("x.grad = 3.0", "x.grad = 3")


@pytest.mark.slow
@pytest.mark.parametrize("key", [m.key for m in Project(ROOT).modules])
def test_module_notebook_runs_with_every_test_passing(key):
    project = Project(ROOT)
    result = run_module(project, project.module(key))
    failures = [f"{c.grade_id}: {c.message}" for c in result.cells if not c.passed] + result.errors
    assert failures == []
    assert result.score == result.max_score == 100


def test_readme_learner_example_prints_what_it_says():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## For learners", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    for line in block.splitlines():
        code, _, shown = line.partition("#")
        if shown.strip() and code.strip():
            import numpy as np

            expected = eval(shown.strip(), {"array": np.array})
            np.testing.assert_array_equal(eval(code, namespace), expected)
        else:
            exec(code, namespace)


@pytest.mark.slow
def test_cli_test_seed_draws_other_inputs_for_the_same_verdicts(course_copy):
    """`test --seed N` checks a solution on other inputs, as `grade`'s secret seed does: a
    mistake is still caught, with other numbers in its message; seed 0 is the default."""
    module = Project(course_copy).module("02")
    [mistake] = [m for m in load_catalogue(module) if m.name == "mean over the first axis only"]
    text = module.source.read_text(encoding="utf-8")
    module.source.write_text(apply(text, mistake.cell, mistake.find, mistake.replace),
                             encoding="utf-8")  # fmt: skip

    def failure(*seed: str) -> str:
        result = cli("test", "02", "--notebook-only", *seed, cwd=course_copy)
        assert result.returncode == 1, result.stdout + result.stderr
        [line] = [ln for ln in result.stdout.splitlines() if ln.strip().startswith("FAIL")]
        return line

    assert failure() == failure("--seed", "0")
    assert failure("--seed", "1") != failure("--seed", "0")
