"""`workspace DIR`: a student's own copy of the course, made from the verified release.

    DIR/
      settings.ini                    [course] workspace = true, the module list
      pyproject.toml                  [tool.nbdev]: `nbdev-export` here builds DIR/tinytorch/
      modules/NN_name/name.ipynb      the stubbed notebooks: the student's work
      modules/NN_name/tinytorch       -> ../../tinytorch (so a kernel started by Jupyter in
                                      the notebook's folder imports the student's package)
      tinytorch/                      the student's own package (exported once at creation,
                                      so later modules can already import its names)

Later modules import `tinytorch`, which in a workspace is the student's own export: the
runner (`tinytorch-course test`) puts DIR first on PYTHONPATH, and the symlink in each
module folder does the same for a notebook opened in Jupyter, where an installed
`tinytorch` (the reference) would otherwise win. No existing file is overwritten without
`force`, and then each overwritten notebook is first copied to `.tinytorch/backups/`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .project import PACKAGE_DIR, SETTINGS_FILE, CourseError, Module, Project
from .release import find_leaks, release_dir, released_notebook

# Folders beside the package that notebooks read at run time (data, not solutions).
DATA_FOLDERS = ("tinytorch_datasets",)
PYPROJECT = """\
# A TinyTorch workspace: your notebooks are in modules/, and `nbdev-export` (run in this
# folder) writes your own package to tinytorch/ from them. Later modules import it.
[tool.nbdev]
lib_path = "tinytorch"
nbs_path = "modules"
# nbdev-clean would otherwise strip the nbgrader metadata that grading depends on.
allowed_cell_metadata_keys = ["nbgrader"]
jupyter_hooks = false
clean_ids = false
put_version_in_init = false
black_formatting = false
# Extra export targets start afresh; solution markers are dropped (see CourseExport).
export_procs = ["tinytorch_course.build:CourseExport"]
"""

README = """\
# {title}: your workspace

- Work through `modules/NN_name/name.ipynb` in order; replace each
  `raise NotImplementedError(...)` with your code and run the test cell below it.
- `nbdev-export` (in this folder) writes your code to `tinytorch/`; later modules
  import it, so export after finishing each module.
- `tinytorch-course test NN` runs a module's test cells against your code and shows the
  points per test.
- `tinytorch-course demo` (autograd), `demo cnn` (module 06) and `demo gpt` (module 07)
  show your package at work; they export your changed notebooks first.
"""


def settings_text(project: Project, modules: list[Module]) -> str:
    """The workspace's settings.ini: the modules it holds and the time limits."""
    modules = "".join(f"\n    {m.key}" for m in modules)
    notebook_timeout = project.setting("grading", "notebook_timeout", 300)
    cell_timeout = project.setting("grading", "cell_timeout", 120)
    return (
        "# A TinyTorch student workspace, made by `tinytorch-course workspace`.\n"
        "[course]\n"
        f"course_id = {project.course_id}\n"
        f"title = {project.settings.get('course', 'title', fallback='TinyTorch')}\n"
        "workspace = true\n"
        f"modules ={modules}\n\n"
        "[grading]\n"
        f"notebook_timeout = {notebook_timeout:g}\n"
        f"cell_timeout = {cell_timeout:g}\n"
    )


def _planned_files(project: Project, target: Path, modules: list[Module]) -> dict[Path, Path | str]:
    """Each file of the new workspace and where its content comes from."""
    files: dict[Path, Path | str] = {
        target / SETTINGS_FILE: settings_text(project, modules),
        target / "pyproject.toml": PYPROJECT,
        target / "README.md": README.format(
            title=project.settings.get("course", "title", fallback="TinyTorch")
        ),
    }
    for name in DATA_FOLDERS:
        folder = project.root / name
        for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
            if path.is_file() and "__pycache__" not in path.parts:
                files[target / path.relative_to(project.root)] = path
    for module in modules:
        source = release_dir(project, module)
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            files[target / "modules" / module.key / path.relative_to(source)] = path
    return files


def _backup(target: Path, paths: list[Path]) -> Path:
    folder = target / ".tinytorch" / "backups" / time.strftime("%Y%m%d-%H%M%S")
    for path in paths:
        copy = folder / path.relative_to(target)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, copy)
    return folder


def export_workspace(target: Path) -> None:
    """Export the workspace's notebooks to its own `tinytorch/` with the course's exporter
    (`build.export`: nbdev-export, with files that several modules export to started
    afresh, and a check that every target was written)."""
    from .build import export

    export(Project(target))


def borrowed_modules(target: Path, names: list[str]) -> dict[str, str]:
    """Which of `names` the workspace's own package lacks but its kernel would still import
    as `tinytorch.<name>`, and from which file. An editable install of the course
    (`pip install -e`) adds setuptools' import finder, which serves any `tinytorch.<name>`
    that the first `tinytorch` on the path lacks from the course's copy: the reference."""
    from .execute import kernel_env

    missing = [n for n in names if not (target / PACKAGE_DIR / f"{n}.py").exists()]
    if not missing:
        return {}
    probe = (
        "import importlib.util, json, sys\n"
        "specs = {n: importlib.util.find_spec('tinytorch.' + n) for n in sys.argv[1:]}\n"
        "print(json.dumps({n: s.origin for n, s in specs.items() if s is not None}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *missing],
        cwd=target,
        env=kernel_env(Project(target)),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    if done.returncode != 0:
        raise CourseError(f"could not check the workspace's imports: {done.stderr.strip()}")
    return json.loads(done.stdout)


def _warn_if_borrowed(project: Project, target: Path, log) -> None:
    names = sorted(p.stem for p in (project.root / PACKAGE_DIR).glob("*.py"))
    borrowed = borrowed_modules(target, [n for n in names if n != "__init__"])
    if borrowed:
        log(
            f"warning: your package lacks tinytorch.{', tinytorch.'.join(borrowed)}, but this "
            "Python would import them from the course (the course is installed with "
            "`pip install -e`, whose import finder serves them). Reinstall it without -e: "
            '`pip install ".[student]"` in the course folder'
        )


def _is_workspace(target: Path) -> bool:
    return (target / SETTINGS_FILE).is_file() and Project(target).is_workspace


def _link_package(target: Path, module_folder: Path) -> None:
    link = module_folder / PACKAGE_DIR
    if link.is_symlink() or link.exists():
        return
    try:
        link.symlink_to(Path("..") / ".." / PACKAGE_DIR, target_is_directory=True)
    except OSError:  # no symlinks (Windows without developer mode): the runner still works
        pass


def create_workspace(project: Project, target: Path, force: bool = False, log=print) -> Path:
    """Create (or, with `force`, refresh) a student workspace at `target` from the release."""
    if project.is_workspace:
        raise CourseError("this is already a workspace: run `workspace` in the course repository")
    target = target.resolve()
    if target == project.root.resolve():
        raise CourseError("the workspace cannot be the course repository itself")
    modules = [m for m in project.modules if released_notebook(project, m).exists()]
    missing = [m.key for m in project.modules if m not in modules]
    if not modules:
        raise CourseError("nothing released yet: run `tinytorch-course release` first")
    leaks = find_leaks(project)
    if leaks:
        raise CourseError(
            "the release is not safe to give to a student:\n" + "\n".join(f"  {x}" for x in leaks)
        )
    files = _planned_files(project, target, modules)
    new = [m for m in modules if not (target / "modules" / m.key).exists()]
    if not force and _is_workspace(target) and new:  # newly released modules: add only them
        folders = [target / "modules" / m.key for m in new]
        files = {
            path: source
            for path, source in files.items()
            if path.name == SETTINGS_FILE or any(f in path.parents for f in folders)
        }
    existing = [path for path in files if path.exists() and path.name != SETTINGS_FILE]
    if existing and not force:
        names = ", ".join(str(p.relative_to(target)) for p in existing[:6])
        more = f" and {len(existing) - 6} more" if len(existing) > 6 else ""
        raise CourseError(
            f"{target} already has {names}{more}: not overwritten. Use --force to replace them "
            "(each replaced notebook is first copied to .tinytorch/backups/)"
        )
    notebooks = [p for p in existing if p.suffix == ".ipynb"]
    if notebooks:
        log(f"backed up {len(notebooks)} notebooks to {_backup(target, notebooks)}")
    for path, source in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, Path):
            shutil.copyfile(source, path)
        else:
            path.write_text(source, encoding="utf-8")
    for module in modules:
        _link_package(target, target / "modules" / module.key)
    export_workspace(target)
    log(f"workspace ready: {target} ({len(modules)} modules; your package: {target / PACKAGE_DIR})")
    _warn_if_borrowed(project, target, log)
    if missing:
        log(
            f"not released yet: {', '.join(missing)}; once they are, run this command again: "
            "it adds them and leaves your notebooks as they are"
        )
    log(
        f"next: cd {target}, open modules/{modules[0].key}/{modules[0].notebook.name}; "
        "after each module run `nbdev-export`, then `tinytorch-course test NN`"
    )
    return target
