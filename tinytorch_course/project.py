"""Where things are: the project root, its course settings, and its modules.

A *project* is any folder with a `settings.ini` that has a `[course]` section and a
`modules/` folder beside it: the course repository itself, or a student workspace.
Every command finds it by walking up from the current directory, the way git does.
"""

from __future__ import annotations

import configparser
import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

SETTINGS_FILE = "settings.ini"
MODULES_DIR = "modules"
PACKAGE_DIR = "tinytorch"

_CELL_MARKER = re.compile(r"^# %%(?P<rest>.*)$")
_NBGRADER_META = re.compile(r"\bnbgrader=(?P<json>\{.*\})\s*$")
_DEFAULT_EXP = re.compile(r"^#\|\s*default_exp\s+(?P<name>[\w.]+)\s*$", re.MULTILINE)
_EXPORT_TO = re.compile(r"^#\|\s*export\s+(?P<name>[\w.]+)\s*$", re.MULTILINE)


class CourseError(Exception):
    """A mistake the user can fix; the CLI prints it as one line, without a traceback."""


@dataclass(frozen=True)
class GradedCell:
    """One nbgrader test cell of a module: its grade id and the points it is worth."""

    grade_id: str
    points: float


@dataclass(frozen=True)
class Module:
    """One course module: `modules/NN_name/name.py` and what is derived from it."""

    folder: Path

    @property
    def key(self) -> str:
        """The folder name, e.g. `01_autograd`; what users type on the command line."""
        return self.folder.name

    @property
    def name(self) -> str:
        """The name without its number, e.g. `autograd`."""
        return self.key.split("_", 1)[1] if "_" in self.key else self.key

    @property
    def source(self) -> Path:
        """The percent-format `.py` file: the source of truth."""
        return self.folder / f"{self.name}.py"

    @property
    def notebook(self) -> Path:
        """The `.ipynb` generated from `source` by `build` (a build product)."""
        return self.folder / f"{self.name}.ipynb"

    @cached_property
    def text(self) -> str:
        """The module as percent-format text: the `.py` source, or, in a student workspace
        that holds only notebooks, the notebook rendered in that format."""
        if self.source.is_file() or not self.notebook.is_file():
            return self.source.read_text(encoding="utf-8")
        import jupytext

        notebook = jupytext.reads(self.notebook.read_text(encoding="utf-8"), fmt="ipynb")
        return jupytext.writes(notebook, fmt="py:percent")

    @property
    def companions(self) -> list[Path]:
        """Other percent-format notebooks in the module's folder (e.g. `viz.py`): built,
        exported and released beside the module, never graded."""
        return sorted(p for p in self.folder.glob("*.py") if p != self.source)

    @property
    def exists(self) -> bool:
        return self.source.is_file() or self.notebook.is_file()

    @property
    def title(self) -> str:
        """The text of the first markdown `# Title` line, or the module key."""
        for line in self.text.splitlines():
            if line.startswith("# # "):
                return line[4:].strip()
        return self.key

    @property
    def export_target(self) -> str | None:
        """The module named by `#| default_exp`, e.g. `autograd`, or None if undeclared."""
        match = _DEFAULT_EXP.search(self.text)
        return match["name"] if match else None

    @property
    def extra_targets(self) -> list[str]:
        """Other modules that cells export to with `#| export NAME`, e.g. `data`."""
        return sorted({m["name"] for m in _EXPORT_TO.finditer(self.text)} - {self.export_target})

    @property
    def graded_cells(self) -> list[GradedCell]:
        """The graded test cells, in order (malformed metadata is the linter's job)."""
        cells = []
        if not self.source.is_file() and self.notebook.is_file():  # a workspace: the notebook
            notebook = json.loads(self.notebook.read_text(encoding="utf-8"))
            metas = [c.get("metadata", {}).get("nbgrader") for c in notebook.get("cells", [])]
        else:
            metas = list(nbgrader_metadata(self.text).values())
        for meta in metas:
            if isinstance(meta, dict) and meta.get("grade"):
                cells.append(GradedCell(str(meta.get("grade_id")), float(meta.get("points", 0))))
        return cells

    @property
    def points(self) -> float:
        return sum(cell.points for cell in self.graded_cells)


def nbgrader_metadata(text: str) -> dict[int, dict | None]:
    """Map each 1-based line number of a `# %% nbgrader={...}` marker to its parsed
    metadata, or to None when the JSON on that line does not parse."""
    found: dict[int, dict | None] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        marker = _CELL_MARKER.match(line)
        if not marker or "nbgrader=" not in marker["rest"]:
            continue
        meta = _NBGRADER_META.search(marker["rest"])
        try:
            found[number] = json.loads(meta["json"]) if meta else None
        except json.JSONDecodeError:
            found[number] = None
    return found


@dataclass(frozen=True)
class Project:
    """A course repository or a student workspace, rooted where `settings.ini` is."""

    root: Path

    @classmethod
    def find(cls, start: Path | None = None) -> Project:
        """The nearest enclosing project of `start` (default: the current directory)."""
        here = (start or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            if (folder / SETTINGS_FILE).is_file() and (folder / MODULES_DIR).is_dir():
                return cls(folder)
        raise CourseError(
            f"no TinyTorch course here: no {SETTINGS_FILE} with a {MODULES_DIR}/ folder in "
            f"{here} or any folder above it; run this inside the course repository or a workspace"
        )

    @cached_property
    def settings(self) -> configparser.ConfigParser:
        parser = configparser.ConfigParser()
        path = self.root / SETTINGS_FILE
        parser.read(path, encoding="utf-8")
        if not parser.has_section("course"):
            raise CourseError(f"{path}: missing the [course] section")
        return parser

    @property
    def course_id(self) -> str:
        return self.settings.get("course", "course_id", fallback="tinytorch")

    @property
    def is_workspace(self) -> bool:
        """True in a student workspace (made by `workspace`), False in the course repository."""
        return self.settings.getboolean("course", "workspace", fallback=False)

    @property
    def package_dir(self) -> Path:
        return self.root / PACKAGE_DIR

    def setting(self, section: str, key: str, fallback: float) -> float:
        """A numeric course setting, e.g. `setting("grading", "notebook_timeout", 300)`."""
        try:
            return self.settings.getfloat(section, key, fallback=fallback)
        except ValueError as error:
            raise CourseError(f"{self.root / SETTINGS_FILE}: [{section}] {key}: {error}") from None

    @cached_property
    def modules(self) -> list[Module]:
        """The modules in the order `settings.ini` lists them; each must exist."""
        keys = self.settings.get("course", "modules", fallback="").split()
        folder = self.root / MODULES_DIR
        modules = [Module(folder / key) for key in keys]
        for module in modules:
            if not (module.exists if self.is_workspace else module.source.is_file()):
                raise CourseError(
                    f"{self.root / SETTINGS_FILE} lists module {module.key}, but "
                    f"{module.source.relative_to(self.root)} does not exist"
                )
        unlisted = sorted(
            path.parent.name
            for path in folder.glob("*/*.py")
            if path.parent.name not in keys and path.stem == Module(path.parent).name
        )
        if unlisted:
            raise CourseError(
                f"modules/{', modules/'.join(unlisted)} not listed in {SETTINGS_FILE} "
                "[course] modules; add them in teaching order"
            )
        return modules

    def module(self, key: str) -> Module:
        """The module whose key (`01_autograd`), name (`autograd`) or number (`01`, `1`) is
        `key`."""
        for module in self.modules:
            number = module.key.split("_", 1)[0]
            if key in (module.key, module.name, number) or (
                key.isdigit() and int(key) == int(number)
            ):
                return module
        known = ", ".join(module.key for module in self.modules)
        raise CourseError(f"unknown module {key!r}; the modules are: {known}")

    def select(self, key: str | None) -> list[Module]:
        """One module by `key`, or all of them when `key` is None."""
        return self.modules if key is None else [self.module(key)]


SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")
HIDDEN_MARKERS = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")


def strip_regions(source: str, stub: str | None, markers: tuple[str, str]) -> str:
    """Replace each `markers` region of `source` with `stub` (indented like the marker),
    or drop it when `stub` is None, the way nbgrader's ClearSolutions/ClearHiddenTests do."""
    lines, kept, inside = source.splitlines(), [], False
    for line in lines:
        stripped = line.strip()
        if stripped == markers[0]:
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            if stub is not None:
                kept += [indent + part for part in stub.splitlines()]
        elif stripped == markers[1]:
            inside = False
        elif not inside:
            kept.append(line)
    return "\n".join(kept)
