"""`docs`: the course website, a static site built with Sphinx and myst-nb.

What it holds, all generated from the repository (nothing to keep in sync by hand):

- a landing page: the README's introduction and quick start, and the module map built
  from `settings.ini` and each module's title, exports and points;
- one page per module, with the outputs of running the reference (live graph
  drawings, traces, learning curves), in the *student* view by default: each solution
  region replaced by the release's stub, hidden tests removed. `--instructor` builds the
  instructor's edition (solutions shown) into its own folder and says so on every page;
- an API reference of every name in each `tinytorch` submodule's `__all__` (signature
  and docstring, never the source);
- the student and instructor guides, taken from the README's sections.

Steps: execute each module's reference notebook (cached in `.tinytorch/docs/executed/`,
keyed by the module source and the package it imports; `quick` reuses any cached run and
never executes), write the Sphinx sources to `.tinytorch/docs/src/`, run Sphinx, then
search every built file for every solution and hidden-test line, as `release` does for
the release: a hit fails the build (student view only) and names the file and the line.
"""

from __future__ import annotations

import hashlib
import html.parser
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .project import (
    HIDDEN_MARKERS,
    SOLUTION_MARKERS,
    CourseError,
    Module,
    Project,
    strip_regions,
)

WORK_DIR = Path(".tinytorch") / "docs"
SITE_DIRS = {False: Path("_site"), True: Path("_site-instructor")}
# What nbgrader writes when `nbgrader_config.py` does not set `ClearSolutions.code_stub`.
DEFAULT_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
TEXT_STUB = "YOUR ANSWER HERE"
# The README sections each guide page is made of (by heading, case-insensitive prefix).
GUIDES = {
    "students": ("Student guide", ("For students",)),
    "instructors": (
        "Instructor guide",
        ("For instructors", "Grading", "Threat model", "Architecture"),
    ),
}
# Sphinx warnings that say nothing about the site a reader gets.
_HARMLESS_WARNINGS = ("Non-consecutive header level increase",)


@dataclass(frozen=True)
class SiteResult:
    folder: Path
    pages: int
    executed: list[str]
    cached: list[str]
    unexecuted: list[str]
    seconds: float


# --- executing the reference ------------------------------------------------------------


def _fingerprint(project: Project, module: Module) -> str:
    """What a module's outputs depend on: its source, the package it imports, the checks."""
    digest = hashlib.sha256(module.text.encode("utf-8"))
    inputs = sorted(project.package_dir.rglob("*.py"))
    inputs += sorted(Path(__file__).parent.glob("checks*.py"))  # what the kernel imports
    for path in inputs:
        digest.update(path.name.encode("utf-8"))
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _cache_path(project: Project, module: Module) -> Path:
    return project.root / WORK_DIR / "executed" / f"{module.key}.ipynb"


def _cached(project: Project, module: Module):
    """(notebook, is it up to date) from the cache, or (None, False)."""
    import nbformat

    path = _cache_path(project, module)
    if not path.is_file():
        return None, False
    # Written by nbformat from an executed notebook: skip the slow schema validation.
    notebook = nbformat.v4.reads(path.read_text(encoding="utf-8"))
    fresh = notebook.metadata.get("tinytorch_docs", {}).get("inputs") == _fingerprint(
        project, module
    )
    return notebook, fresh


def execute_reference(project: Project, module: Module):
    """Run the module's reference notebook top to bottom, as `test` does, and cache it.
    An error in any cell fails: the site must not show a reference that does not run."""
    import nbformat
    from nbclient import NotebookClient

    from .build import module_notebook
    from .runner import error_message, kernel_env

    notebook = module_notebook(module)
    client = NotebookClient(
        notebook,
        timeout=int(project.setting("grading", "cell_timeout", 120)),
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(module.folder)}},
    )
    client.execute(cwd=str(module.folder), env=kernel_env(project))
    errors = [
        f"cell {index}: {error_message(cell.outputs)}"
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and error_message(cell.get("outputs", []))
    ]
    if errors:
        raise CourseError(
            f"{module.source.relative_to(project.root)}: the reference raised errors, so its "
            "page would show them: " + "; ".join(errors)
        )
    notebook.metadata["tinytorch_docs"] = {"inputs": _fingerprint(project, module)}
    path = _cache_path(project, module)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return notebook


# --- the student view -------------------------------------------------------------------


def release_stub(project: Project) -> str:
    """The stub nbgrader puts in place of a solution region, from `nbgrader_config.py`."""
    config = project.root / "nbgrader_config.py"
    if not config.is_file():
        return DEFAULT_STUB
    from traitlets.config import Config

    settings = Config()
    code = compile(config.read_text(encoding="utf-8"), str(config), "exec")
    exec(code, {"get_config": lambda: settings, "__file__": str(config)})
    stub = settings.ClearSolutions.get("code_stub", {})
    return stub.get("python", DEFAULT_STUB) if isinstance(stub, dict) else DEFAULT_STUB


def student_view(notebook, stub: str):
    """The released notebook's cells with the reference's outputs: solution regions
    stubbed, hidden tests removed, in place. Returns `notebook`."""
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        source = cell.source
        if HIDDEN_MARKERS[0] in source:
            source = strip_regions(source, None, HIDDEN_MARKERS)
        if meta.get("solution") or SOLUTION_MARKERS[0] in source:
            if SOLUTION_MARKERS[0] in source:
                source = strip_regions(source, stub, SOLUTION_MARKERS)
            else:
                source = stub if cell.cell_type == "code" else TEXT_STUB
        cell.source = source
    return notebook


# --- the pages ----------------------------------------------------------------------------


def readme_sections(project: Project) -> tuple[str, dict[str, str]]:
    """The README's introduction (before its first `## `) and each `## ` section's body."""
    text = (project.root / "README.md").read_text(encoding="utf-8")
    parts = re.split(r"(?m)^## (.+)\n", text)
    intro = re.sub(r"(?m)\A# .+\n", "", parts[0]).strip()
    sections = {parts[i].strip(): parts[i + 1].strip() for i in range(1, len(parts), 2)}
    return intro, sections


def _demote(body: str) -> str:
    """`### X` → `## X`, so that a README section's subsections sit under the page title."""
    return re.sub(r"(?m)^#(#+) ", r"\1 ", body)


def _module_map(project: Project) -> str:
    rows = ["| module | title | exports | points |", "|---|---|---|---|"]
    documented = package_modules(project)
    for module in project.modules:
        targets = [t for t in (module.export_target, *module.extra_targets) if t in documented]
        exports = ", ".join(f"[`tinytorch.{t}`](api/{t}.md)" for t in targets)
        link = f"[{module.title}](modules/{module.key}.ipynb)"
        rows.append(f"| `{module.key}` | {link} | {exports} | {module.points:g} |")
    return "\n".join(rows)


def _landing(project: Project, instructor: bool) -> str:
    intro, sections = readme_sections(project)
    title = project.settings.get("course", "title", fallback="TinyTorch")
    guides = "\n".join(f"{key}" for key in GUIDES)
    quick = sections.get("Quick start", "")
    return f"""# {title}

{intro}

## Quick start

{_demote(quick)}

## The modules

Each page below shows a module as a student sees it after running the reference
solution: the diagrams, the live graph drawings, traces and learning curves.
{_edition_sentence(instructor)}

{_module_map(project)}

```{{toctree}}
:hidden:
:caption: Modules
:glob:

modules/*
```

```{{toctree}}
:hidden:
:caption: Reference

api/index
{guides}
```
"""


def _edition_sentence(instructor: bool) -> str:
    if instructor:
        return (
            "This is the **instructor's edition**: every solution region and hidden test is "
            "shown. Do not publish it to students."
        )
    return (
        "This is the student edition: each solution region shows the stub a student "
        "fills in, and hidden tests are left out."
    )


def package_modules(project: Project) -> list[str]:
    """The `tinytorch` submodules with public names (a non-empty `__all__`), those the
    course modules declare in teaching order, then any other file of the package."""
    order = [t for m in project.modules for t in (m.export_target, *m.extra_targets) if t]
    files = [p.stem for p in project.package_dir.glob("*.py") if p.stem not in ("_modidx",)]
    files.sort(key=lambda name: (order.index(name) if name in order else len(order), name))
    return [name for name in files if _public(project, name)[0]]


def _public(project: Project, name: str) -> tuple[list[str], dict[str, bool]]:
    """A submodule's `__all__`, and (assigned on one line?) for each top-level name it
    assigns, read from its source without importing it."""
    import ast

    path = project.package_dir / f"{name.replace('.', '/')}.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    public: list[str] = []
    assigned: dict[str, bool] = {}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Name) and target.id == "__all__":
                public = list(ast.literal_eval(node.value))
            elif isinstance(target, ast.Name):
                assigned[target.id] = node.lineno == node.end_lineno
    return public, assigned


def _api_pages(project: Project) -> dict[str, str]:
    names = package_modules(project)
    pages = {
        "api/index.md": "# API reference\n\nEvery public name (each submodule's `__all__`) of "
        "the `tinytorch` package, with its signature and docstring.\n\n"
        "```{toctree}\n:maxdepth: 1\n\n" + "\n".join(names) + "\n```\n"
    }
    for name in names:
        constants = _constants(project, name)
        directives = [
            f".. automodule:: tinytorch.{name}",
            "   :members:\n   :undoc-members:\n   :show-inheritance:",
        ]
        if constants:  # older Sphinx documents them here too: no duplicate entries
            directives.append(f"   :exclude-members: {', '.join(c for c, _ in constants)}")
        for constant, one_line in constants:
            directives.append(f"\n.. autodata:: tinytorch.{name}.{constant}")
            if not one_line:
                directives.append("   :no-value:")
        body = "\n".join(directives)
        pages[f"api/{name}.md"] = f"# `tinytorch.{name}`\n\n```{{eval-rst}}\n{body}\n```\n"
    return pages


def _constants(project: Project, name: str) -> list[tuple[str, bool]]:
    """(name, assigned on one line) for each constant of a submodule's `__all__`: autodoc
    documents a module's classes and functions, and its constants only when named."""
    public, assigned = _public(project, name)
    return [(constant, assigned[constant]) for constant in public if constant in assigned]


def _guide_page(project: Project, title: str, headings: tuple[str, ...]) -> str:
    _, sections = readme_sections(project)
    parts = [f"# {title}"]
    for heading, body in sections.items():
        if any(heading.lower().startswith(h.lower()) for h in headings):
            parts.append(f"## {heading}\n\n{_demote(body)}")
    return "\n\n".join(parts) + "\n"


_INLINE_CODE = re.compile(r"(``.+?``|`[^`]+`)")
_RST_SPECIAL = re.compile(r"([\\*|_])")


def markdown_docstring(lines: list[str]) -> list[str]:
    """The docstrings are written in Markdown (backticks for code, indented examples);
    make them reST that says the same: examples after a blank line become literal
    blocks, and `*`, `|`, `_` outside code are escaped (else `e**-a`, `|a|`, `name_`
    would be reST markup). In place, for autodoc's `autodoc-process-docstring`."""
    out: list[str] = []
    in_example = False
    for index, line in enumerate(lines):
        indented = line.startswith((" ", "\t"))
        previous_blank = index == 0 or not lines[index - 1].strip()
        if in_example and line.strip() and not indented:
            in_example = False
            if not previous_blank:
                out.append("")
        elif not in_example and indented and previous_blank and line.strip():
            in_example = True
            out += ["::", ""]
        if in_example or not line.strip():
            out.append(line)
            continue
        pieces = _INLINE_CODE.split(line)
        out.append(
            "".join(
                piece if number % 2 else _RST_SPECIAL.sub(r"\\\1", piece)
                for number, piece in enumerate(pieces)
            )
        )
    lines[:] = out
    return lines


CONF = """# Generated by `tinytorch-course docs`; edits are overwritten.
import sys

sys.path.insert(0, {root!r})
project = {title!r}
extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]
nb_execution_mode = "off"
nb_merge_streams = True
# No widgets here: without this, every page loads require.js and a widget manager from CDNs.
nb_ipywidgets_js = {{}}
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
html_theme = "furo"
html_title = {title!r} + {suffix!r}
html_static_path = ["_static"]
pygments_dark_style = "native"
html_copy_source = False
html_show_copyright = False
html_favicon = "_static/favicon.svg"
html_show_sourcelink = False
html_theme_options = {{"announcement": {announcement!r}}}
autodoc_default_options = {{"member-order": "bysource"}}
autodoc_typehints = "signature"
suppress_warnings = ["myst.header"]
exclude_patterns = []
default_role = "code"


def setup(app):
    # Not html_css_files: furo edits that list, and a changed config re-reads every page.
    app.add_css_file("tinytorch.css")
    app.connect("autodoc-process-docstring", docstring)


def docstring(app, what, name, obj, options, lines):
    from tinytorch_course.docs import markdown_docstring

    # A constant has no docstring of its own: autodoc would show its type's (tuple's...).
    if what == "data" and "\\n".join(lines).strip() == (type(obj).__doc__ or "").strip():
        lines[:] = []
    markdown_docstring(lines)
"""

# Diagrams are true rectangles only in a monospace font whose box-drawing glyphs are one
# column wide, and only if a line is never wrapped: scroll sideways instead.
CSS = """pre, code, kbd, samp, .highlight pre, div.cell_output pre, .output pre {
  font-family: "DejaVu Sans Mono", "Menlo", "Consolas", monospace;
  font-variant-ligatures: none;
}
/* Highlighted keywords are bold; a bold face the system lacks is synthesized wider. */
pre, pre * { font-synthesis: none; }
pre, .highlight pre, div.cell_output pre, div.cell_output .output pre {
  white-space: pre;
  overflow-x: auto;
  overflow-wrap: normal;
  word-break: normal;
  line-height: 1.25;
}
.announcement { font-weight: 600; }
"""


# A browser asks for /favicon.ico (a 404 in the console) unless the page names an icon.
FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    '<rect x="1" y="1" width="14" height="14" fill="none" stroke="#e65100" stroke-width="2"/>'
    '<path d="M5 5h6M8 5v7" stroke="#e65100" stroke-width="2"/></svg>\n'
)


def write_sources(project: Project, notebooks: dict[str, object], instructor: bool) -> Path:
    """Write the Sphinx project to `.tinytorch/docs/src/` (only files whose text changed, so
    Sphinx re-reads only those) and remove pages of modules that no longer exist."""
    import nbformat

    source = project.root / WORK_DIR / ("src-instructor" if instructor else "src")
    title = project.settings.get("course", "title", fallback="TinyTorch")
    announcement = (
        "Instructor's edition: solutions and hidden tests are shown. Not for students."
        if instructor
        else "Student edition: solution regions show the stub you fill in."
    )
    files = {
        "conf.py": CONF.format(
            root=str(project.root),
            title=title,
            suffix=" (instructor's edition)" if instructor else "",
            announcement=announcement,
        ),
        "_static/tinytorch.css": CSS,
        "_static/favicon.svg": FAVICON,
        "index.md": _landing(project, instructor),
        **_api_pages(project),
    }
    for key, (page_title, headings) in GUIDES.items():
        files[f"{key}.md"] = _guide_page(project, page_title, headings)
    for key, notebook in notebooks.items():
        files[f"modules/{key}.ipynb"] = nbformat.writes(notebook) + "\n"
    for name, text in files.items():
        path = source / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    for folder in ("modules", "api"):
        for path in (source / folder).iterdir():
            if f"{folder}/{path.name}" not in files:
                path.unlink()
    return source


def run_sphinx(project: Project, source: Path, site: Path) -> None:
    """Build the HTML; any Sphinx warning (a broken reference, a failed import) fails."""
    doctrees = source.parent / f"doctrees-{source.name}"
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-d", str(doctrees)]
    result = subprocess.run(
        [*command, str(source), str(site)],
        cwd=project.root,
        capture_output=True,
        text=True,
        encoding="utf-8",
    )
    warnings = [
        line
        for line in result.stderr.splitlines()
        if ("WARNING" in line or "ERROR" in line)
        and not any(harmless in line for harmless in _HARMLESS_WARNINGS)
    ]
    if result.returncode or warnings:
        raise CourseError(
            f"sphinx failed (exit {result.returncode}):\n"
            + "\n".join(warnings or result.stderr.strip().splitlines()[-20:])
        )


# --- the leak check -------------------------------------------------------------------


class _Text(html.parser.HTMLParser):
    """The text of an HTML page as a reader sees it: tags dropped, entities decoded,
    a line break at every block element, so a highlighted code line is one line again."""

    BLOCKS = {"p", "div", "br", "li", "tr", "pre", "h1", "h2", "h3", "h4", "td", "th", "dd"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data):
        self.parts.append(data)


def page_text(html_text: str) -> str:
    parser = _Text()
    parser.feed(html_text)
    parser.close()
    return "".join(parser.parts)


def find_site_leaks(project: Project, site: Path) -> list[str]:
    """Every solution or hidden-test line in any file of the built site (HTML read as
    text), and any nbgrader marker on a module page; `file: what leaked` each."""
    from .release import leaks_in_text, secrets

    hidden = secrets(project.modules)
    leaks = []
    for path in sorted(p for p in site.rglob("*") if p.is_file()):
        if path.suffix in (".png", ".jpg", ".svg", ".woff", ".woff2", ".ico", ".gif"):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, ValueError):
            continue
        if path.suffix == ".html":
            text = page_text(text)
        markers = path.parent.name == "modules"
        leaks += leaks_in_text(str(path.relative_to(site)), text, hidden, markers=markers)
    return leaks


# --- the command ----------------------------------------------------------------------------


def reference_notebooks(project: Project, quick: bool, log=print):
    """key → executed reference notebook (or unexecuted, in `quick` mode without a cache),
    and what was executed, reused and left unexecuted."""
    from .build import module_notebook

    notebooks, executed, cached, unexecuted = {}, [], [], []
    for module in project.modules:
        notebook, fresh = _cached(project, module)
        if notebook is not None and (fresh or quick):
            cached.append(module.key)
            if not fresh:
                log(f"{module.key}: reusing outputs from an older run (--quick)")
        elif quick:
            notebook = module_notebook(module)
            unexecuted.append(module.key)
            log(f"{module.key}: no cached run; shown without outputs (--quick)")
        else:
            start = time.perf_counter()
            notebook = execute_reference(project, module)
            executed.append(module.key)
            log(f"{module.key}: executed the reference in {time.perf_counter() - start:.1f}s")
        notebooks[module.key] = notebook
    return notebooks, executed, cached, unexecuted


def build_site(
    project: Project, quick: bool = False, instructor: bool = False, log=print
) -> SiteResult:
    from .build import build, is_stale

    start = time.perf_counter()
    if not project.is_workspace and is_stale(project):
        build(project, log=log)
    notebooks, executed, cached, unexecuted = reference_notebooks(project, quick, log)
    if not instructor:
        stub = release_stub(project)
        notebooks = {key: student_view(nb, stub) for key, nb in notebooks.items()}
    source = write_sources(project, notebooks, instructor)
    site = project.root / SITE_DIRS[instructor]
    # Sphinx writes beside its output folder too (myst-nb's jupyter_execute/): build under
    # .tinytorch/docs/ and move the result into place.
    built = source.parent / f"html-{source.name}"
    for folder in (site, built):
        if folder.exists():
            shutil.rmtree(folder)
    run_sphinx(project, source, built)
    shutil.move(built, site)
    if not instructor:
        leaks = find_site_leaks(project, site)
        if leaks:
            shutil.rmtree(site)
            raise CourseError(
                f"the site would publish {len(leaks)} solution or hidden-test lines; "
                f"{SITE_DIRS[instructor]}/ removed:\n" + "\n".join(f"  {leak}" for leak in leaks)
            )
    pages = len(list(site.rglob("*.html")))
    return SiteResult(site, pages, executed, cached, unexecuted, time.perf_counter() - start)


def serve(folder: Path, port: int) -> None:
    import functools
    import http.server

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        print(f"serving {folder} at http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


def cmd_docs(project: Project, args) -> int:
    try:
        import furo  # noqa: F401
        import myst_nb  # noqa: F401
        import sphinx  # noqa: F401
    except ImportError as error:
        raise CourseError(
            f'the docs tools are not installed ({error.name}): pip install -e ".[docs]"'
        ) from None
    result = build_site(project, quick=args.quick, instructor=args.instructor)
    edition = "instructor's edition" if args.instructor else "student edition"
    checked = "" if args.instructor else "; no solution or hidden-test line in it"
    print(
        f"built {result.pages} pages ({edition}) in {result.seconds:.1f}s -> "
        f"{result.folder.relative_to(project.root)}/index.html: executed "
        f"{len(result.executed)}, reused {len(result.cached)}, without outputs "
        f"{len(result.unexecuted)} modules{checked}"
    )
    if args.serve:
        serve(result.folder, args.port)
    return 0


def register(add) -> None:
    parser = add("docs", cmd_docs, "build the course website (static HTML, offline search)")
    parser.add_argument("--serve", action="store_true", help="then serve it on 127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="port for --serve (default 8000)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="never execute: reuse cached runs, show modules without one unexecuted",
    )
    parser.add_argument(
        "--instructor",
        action="store_true",
        help="the instructor's edition (solutions shown) into _site-instructor/",
    )
