"""Shared fixtures: the repository root and throwaway copies of the course."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COURSE_FILES = ("pyproject.toml", "settings.ini", "nbgrader_config.py")


def copy_course(target: Path, with_package: bool = True) -> Path:
    """Copy what defines the course (settings, module sources, and optionally the
    exported package) into `target`, leaving generated notebooks behind."""
    target.mkdir(parents=True, exist_ok=True)
    for name in COURSE_FILES:
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, target / name)
    ignore = shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints", "__pycache__", "llms.txt")
    shutil.copytree(ROOT / "modules", target / "modules", ignore=ignore)
    if with_package:
        shutil.copytree(ROOT / "tinytorch", target / "tinytorch", ignore=ignore)
    if (ROOT / "tinytorch_datasets").is_dir():  # module 04's data, found beside the package
        shutil.copytree(ROOT / "tinytorch_datasets", target / "tinytorch_datasets", ignore=ignore)
    return target


@pytest.fixture
def course_copy(tmp_path: Path) -> Path:
    """A private copy of the course that a test may build, break and edit."""
    return copy_course(tmp_path / "course")
