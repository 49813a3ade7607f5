"""`build`: module sources → notebooks → the exported `tinytorch` package.

Three steps, each checked:

1. `convert`: every `modules/NN_name/name.py` becomes `name.ipynb` (jupytext, in one
   process). Cell ids are derived from the cell's content, so a fresh clone generates
   the same notebook, and nbdev's exported file (which names each cell by id) is
   byte-identical run to run. A notebook is written only when its content changes, and
   one that a user edited after it was generated is never overwritten without `force`.
2. `export`: `nbdev-export` writes `tinytorch/` from the notebooks.
3. `verify`: every module declared `#| default_exp`, and the file it names was written
   by this export (nbdev exits 0 having written nothing when it finds no notebooks).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .project import CourseError, Module, Project

MANIFEST = Path(".tinytorch") / "build-manifest.json"
BACKUPS = Path(".tinytorch") / "backups"
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
_SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


def strip_solution_markers(cell) -> None:
    """nbdev export processor: drop nbgrader's solution-marker comments from exported code,
    so `tinytorch/` reads as a plain library."""
    if cell.cell_type == "code" and "### " in cell.source:
        lines = cell.source.splitlines()
        cell.source = "\n".join(line for line in lines if line.strip() not in _SOLUTION_MARKERS)


def _cell_ids(cells: list) -> None:
    """Give each cell an id derived from its type and source; repeats get a suffix."""
    seen: dict[str, int] = {}
    for cell in cells:
        digest = hashlib.sha1(f"{cell.cell_type}\n{cell.source}".encode()).hexdigest()[:8]
        seen[digest] = seen.get(digest, 0) + 1
        cell["id"] = digest if seen[digest] == 1 else f"{digest}-{seen[digest]}"


def module_notebook(module: Module):
    """The notebook generated from `module.source` (an `nbformat.NotebookNode`)."""
    import jupytext

    try:
        notebook = jupytext.reads(module.text, fmt="py:percent")
    except Exception as error:  # jupytext raises several types for malformed input
        raise CourseError(
            f"{module.source}: not a valid percent-format notebook: {error}"
        ) from None
    notebook.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    for cell in notebook.cells:
        cell.metadata = {k: v for k, v in cell.metadata.items() if k == "nbgrader"}
    _cell_ids(notebook.cells)
    return notebook


def _notebook_bytes(notebook) -> bytes:
    import nbformat

    return nbformat.writes(notebook, version=4).encode("utf-8") + b"\n"


def _sources(data: bytes) -> list | None:
    """What a user can edit in a notebook: each cell's type, source and nbgrader metadata."""
    try:
        cells = json.loads(data.decode("utf-8"))["cells"]
    except (ValueError, KeyError, TypeError):
        return None
    return [
        (c.get("cell_type"), "".join(c.get("source", "")), c.get("metadata", {}).get("nbgrader"))
        for c in cells
    ]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _load_manifest(project: Project) -> dict[str, str]:
    path = project.root / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}


def _save_manifest(project: Project, manifest: dict[str, str]) -> None:
    path = project.root / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    path.write_text(text, encoding="utf-8")


def _manifest_key(module: Module) -> str:
    return f"{module.key}/{module.notebook.name}"


def _edited_since_build(module: Module, old: bytes, manifest: dict[str, str]) -> bool:
    """Was the existing notebook changed by someone after `build` wrote it?"""
    recorded = manifest.get(_manifest_key(module))
    if recorded is not None:
        return recorded != _sha(old)
    return module.notebook.stat().st_mtime > module.source.stat().st_mtime


def _backup(project: Project, path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = project.root / BACKUPS / f"{path.stem}.{stamp}{path.suffix}"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, target)
    return target


def convert(project: Project, force: bool = False, log=print) -> list[Module]:
    """Write each module's notebook; return the modules whose notebook changed."""
    manifest = _load_manifest(project)
    plans = []
    for module in project.modules:
        new = _notebook_bytes(module_notebook(module))
        old = module.notebook.read_bytes() if module.notebook.exists() else None
        plans.append((module, new, old))
    edited = [
        m
        for m, new, old in plans
        if old is not None
        and _sources(old) != _sources(new)
        and _edited_since_build(m, old, manifest)
    ]
    if edited and not force:
        names = ", ".join(str(m.notebook.relative_to(project.root)) for m in edited)
        raise CourseError(
            f"{names}: edited after build generated it, and the edits are not in the .py source. "
            "Copy them into the .py (the source of truth), or run `build --force` to regenerate "
            f"(a copy of each edited notebook is kept in {BACKUPS}/)"
        )
    changed = []
    for module, new, old in plans:
        key = _manifest_key(module)
        if old is not None and _sources(old) == _sources(new):
            manifest.setdefault(key, _sha(old))  # same cells; keep the user's outputs
            continue
        if module in edited:
            log(f"kept a copy of the edited notebook: {_backup(project, module.notebook)}")
        module.notebook.write_bytes(new)
        manifest[key] = _sha(new)
        changed.append(module)
    _save_manifest(project, manifest)
    return changed


def _target_path(project: Project, name: str) -> Path:
    return project.package_dir / f"{name.replace('.', '/')}.py"


def _start_extra_targets(project: Project) -> None:
    """nbdev appends `#| export NAME` cells to an existing `NAME.py` (and fails when it
    does not exist), so each build starts those files empty; then every build writes
    them from scratch, byte for byte the same."""
    for module in project.modules:
        for name in module.extra_targets:
            path = _target_path(project, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            source = f"../modules/{module.key}/{module.notebook.name}"
            header = f"# AUTOGENERATED! DO NOT EDIT! File to edit: {source}."
            path.write_text(f"{header}\n\n# %% auto #0\n__all__ = []\n", encoding="utf-8")


def export(project: Project) -> None:
    """Run nbdev-export in `project.root` and check it wrote every module's targets."""
    undeclared = [m.key for m in project.modules if m.export_target is None]
    if undeclared:
        raise CourseError(
            f"modules {', '.join(undeclared)} declare no export target: "
            "add a code cell `#| default_exp NAME` near the top"
        )
    _start_extra_targets(project)
    targets = [
        (module, _target_path(project, name))
        for module in project.modules
        for name in (module.export_target, *module.extra_targets)
    ]
    before = {
        target: target.stat().st_mtime_ns if target.exists() else None for _, target in targets
    }
    env = {k: v for k, v in os.environ.items() if k != "IN_TEST"}  # IN_TEST makes nbdev a no-op
    command = [sys.executable, "-c", "from nbdev.doclinks import nbdev_export; nbdev_export()"]
    result = subprocess.run(
        command, cwd=project.root, env=env, capture_output=True, text=True, encoding="utf-8"
    )
    if result.returncode != 0:
        raise CourseError(f"nbdev-export failed:\n{result.stderr.strip()}")
    for module, target in targets:
        source = f"../modules/{module.key}/{module.notebook.name}"
        text = target.read_text(encoding="utf-8") if target.exists() else ""
        written = target.exists() and target.stat().st_mtime_ns != before[target]
        if not written or f"File to edit: {source}" not in text or f"{source} #" not in text:
            raise CourseError(
                f"nbdev-export did not write {target.relative_to(project.root)} from "
                f"{module.notebook.relative_to(project.root)}; check [tool.nbdev] in pyproject.toml"
            )


@contextlib.contextmanager
def _build_lock(project: Project):
    """One build at a time per project: two interleaved builds would each take the other's
    freshly written notebook for a user's edit."""
    path = project.root / ".tinytorch" / "build.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; builds are not run concurrently there
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build(project: Project, force: bool = False, log=print) -> None:
    """convert + export + verify, with the wall time of each step."""
    from .lint import lint

    problems = lint(project)
    if problems:
        raise CourseError("lint failed; fix these first:\n" + "\n".join(problems))
    start = time.perf_counter()
    with _build_lock(project):
        changed = convert(project, force=force, log=log)
        converted = time.perf_counter()
        export(project)
    exported = time.perf_counter()
    log(
        f"built {len(project.modules)} modules ({len(changed)} notebooks rewritten) "
        f"in {exported - start:.1f}s: convert {converted - start:.1f}s, "
        f"export {exported - converted:.1f}s -> {project.package_dir.relative_to(project.root)}/"
    )


def is_stale(project: Project) -> bool:
    """Cheap check: a module source is newer than the file it exports to, or that file is missing."""
    for module in project.modules:
        target = _target_path(project, module.export_target or module.name)
        if not target.exists() or module.source.stat().st_mtime > target.stat().st_mtime:
            return True
    return False


SYNC_INPUTS = ("pyproject.toml", "settings.ini")


def out_of_sync(project: Project) -> list[str]:
    """Build a temporary copy of the project and list the files of `tinytorch/` that differ.

    Empty when the committed package is exactly what the modules export.
    """
    with tempfile.TemporaryDirectory(prefix="tinytorch-sync-") as tmp:
        copy = Path(tmp)
        for name in SYNC_INPUTS:
            shutil.copy2(project.root / name, copy / name)
        for module in project.modules:
            (copy / module.source.relative_to(project.root)).parent.mkdir(parents=True)
            shutil.copy2(module.source, copy / module.source.relative_to(project.root))
        built = Project(copy)
        build(built, log=lambda *_: None)
        return _diff_trees(project.package_dir, built.package_dir)


def _diff_trees(ours: Path, built: Path) -> list[str]:
    def files(root: Path) -> dict[str, bytes]:
        if not root.exists():
            return {}
        return {
            str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts
        }

    mine, theirs = files(ours), files(built)
    differences = []
    for name in sorted(set(mine) | set(theirs)):
        if name not in theirs:
            differences.append(
                f"tinytorch/{name}: not produced by any module (delete it or export it)"
            )
        elif name not in mine:
            differences.append(f"tinytorch/{name}: missing (run `tinytorch-course build`)")
        elif mine[name] != theirs[name]:
            differences.append(f"tinytorch/{name}: differs from what modules/ exports (run build)")
    return differences
