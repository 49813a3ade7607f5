"""The course website (`tinytorch-course docs`): built from a copy of the course, read as
files, then opened page by page in headless Chromium.

The build runs once per session in a private copy; executed notebooks of the repository's
own cache (`.tinytorch/docs/executed/`) are copied in first, and the build re-executes
any whose inputs changed. Screenshots go to `test-artifacts/docs/` (gitignored). The tests of
that build are marked `py311_leg` (CI makes it on Python 3.11 only, where the browser tests
run); `docs --quick` without cached runs, which executes nothing, stands in on 3.10.
"""

from __future__ import annotations

import functools
import http.server
import importlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest
from conftest import ROOT, copy_course
from screen import CHROMIUM, CHROMIUM_FLAGS, assert_boxes_aligned_on_screen, glyphs_js

from tinytorch_course.docs import WORK_DIR, find_site_leaks, package_modules, page_text
from tinytorch_course.project import Project
from tinytorch_course.release import secrets

pytest.importorskip("myst_nb", reason="the docs extra is not installed")

ARTIFACTS = ROOT / "test-artifacts" / "docs"
# A diagram or a graph drawn into a code cell's output on a module page.
OUTPUT_PRE = "div.cell_output pre"


def run_docs(course: Path, *flags: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "tinytorch_course", "docs", *flags],
        cwd=course,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=600,
    )
    assert result.returncode == 0, f"docs {flags} failed:\n{result.stdout}{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    course = copy_course(tmp_path_factory.mktemp("docs") / "course")
    shutil.copy2(ROOT / "README.md", course / "README.md")
    cache = ROOT / WORK_DIR / "executed"
    if cache.is_dir():
        shutil.copytree(cache, course / WORK_DIR / "executed")
    return course


@pytest.fixture(scope="module")
def site(course) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    printed = run_docs(course)
    seconds = time.perf_counter() - start
    (ARTIFACTS / "build.txt").write_text(f"{printed}wall {seconds:.1f}s\n", encoding="utf-8")
    cache = ROOT / WORK_DIR / "executed"
    for path in (course / WORK_DIR / "executed").glob("*.ipynb"):  # warm the next run
        cache.mkdir(parents=True, exist_ok=True)
        partial = cache / f".{path.name}.{os.getpid()}"  # a run reading meanwhile sees whole files
        shutil.copy2(path, partial)
        os.replace(partial, cache / path.name)
    return course / "_site"


def html_pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


def text_of(path: Path) -> str:
    return page_text(path.read_text(encoding="utf-8"))


# --- the built files ------------------------------------------------------------------------


@pytest.mark.py311_leg
def test_every_module_has_a_page_with_its_outputs_listed_on_the_landing_page(course, site):
    project = Project(course)
    landing = text_of(site / "index.html")
    for module in project.modules:
        page = site / "modules" / f"{module.key}.html"
        assert page.is_file(), f"no page for {module.key}"
        assert module.title in landing, f"the module map does not list {module.title!r}"
        assert f'href="modules/{module.key}.html"' in (site / "index.html").read_text(
            encoding="utf-8"
        )
        passed = re.findall(r"(?m)^\s*✓ (\w+) passed", text_of(page))  # output lines
        graded = [cell.grade_id for cell in module.graded_cells]
        assert sorted(passed) == sorted(graded), (
            f"{module.key}: the page shows pass lines for {passed}, the module grades {graded}: "
            "are the reference's outputs missing?"
        )
    assert "tinytorch-course demo" in landing, "the quick-start commands are not on the landing"


@pytest.mark.py311_leg
def test_api_reference_documents_every_public_name(course, site):
    sys.path.insert(0, str(course))
    try:
        missing = []
        for name in package_modules(Project(course)):
            module = importlib.import_module(f"tinytorch.{name}")
            html = (site / "api" / f"{name}.html").read_text(encoding="utf-8")
            missing += [
                f"tinytorch.{name}.{public}"
                for public in module.__all__
                if f'id="tinytorch.{name}.{public}"' not in html
            ]
    finally:
        sys.path.remove(str(course))
    assert missing == [], f"public names without an entry in the API reference: {missing}"


@pytest.mark.py311_leg
def test_guides_come_from_the_readme(site):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    instructors = text_of(site / "instructors.html")
    for command in re.findall(r"(?m)^tinytorch-course (release|grade)\b", readme):
        assert f"tinytorch-course {command}" in instructors


@pytest.mark.py311_leg
def test_default_build_shows_stubs_and_no_solution_or_hidden_test_line(course, site):
    hidden = secrets(Project(course).modules)
    assert hidden, "the modules have no solution lines: nothing was checked"
    found = []
    for path in html_pages(site):
        module_page = path.parent.name == "modules"  # the guides name the markers in prose
        for line in text_of(path).splitlines():
            marker = "BEGIN SOLUTION" in line or "HIDDEN TESTS" in line
            if line.strip() in hidden or (module_page and marker):
                found.append(f"{path.relative_to(site)}: {line.strip()!r}")
    assert found == [], f"the student site shows solution or hidden-test lines: {found[:10]}"
    stubs = sum(
        text_of(page).count("raise NotImplementedError") for page in site.glob("modules/*.html")
    )
    regions = sum(module.text.count("### BEGIN SOLUTION") for module in Project(course).modules)
    assert stubs >= regions, f"{stubs} stubs shown for {regions} solution regions"


@pytest.mark.py310_leg
def test_quick_build_without_cached_runs_shows_every_module_without_outputs(tmp_path):
    """`docs --quick` in a course that has never executed its notebooks executes none: every
    module still gets its page, listed on the landing page, with no output lines, and the
    student edition passes the leak check (a leak fails the build)."""
    course = copy_course(tmp_path / "course")
    shutil.copy2(ROOT / "README.md", course / "README.md")
    printed = run_docs(course, "--quick")
    modules = Project(course).modules
    assert f"executed 0, reused 0, without outputs {len(modules)} modules" in printed, printed
    site = course / "_site"
    landing = text_of(site / "index.html")
    for module in modules:
        page = text_of(site / "modules" / f"{module.key}.html")
        assert module.title in landing, f"the module map does not list {module.title!r}"
        assert re.findall(r"(?m)^\s*✓ (\w+) passed", page) == [], f"{module.key} has outputs"
        assert "raise NotImplementedError" in page, f"{module.key}'s page shows no stub"


def test_leak_check_finds_a_solution_line_split_by_highlighting(course, tmp_path):
    project = Project(course)
    secret = next(iter(secrets(project.modules).values()))
    first, _, rest = secret.text.partition(" ")
    page = tmp_path / "modules" / "x.html"
    page.parent.mkdir()
    page.write_text(
        f'<pre><span class="n">{first}</span> <span class="o">{rest}</span>\n</pre>',
        encoding="utf-8",
    )
    leaks = find_site_leaks(project, tmp_path)
    assert len(leaks) == 1 and secret.module in leaks[0], leaks


@pytest.mark.py311_leg
def test_instructor_edition_says_so_on_every_page(course, site):
    run_docs(course, "--quick", "--instructor")
    folder = course / "_site-instructor"
    pages = html_pages(folder)
    unmarked = [p.name for p in pages if "Instructor's edition" not in text_of(p)]
    assert pages and unmarked == [], f"pages that do not say they are the instructor's: {unmarked}"
    shown = "".join(text_of(p) for p in folder.glob("modules/*.html"))
    assert "BEGIN SOLUTION" in shown or any(
        line.strip() in secrets(Project(course).modules) for line in shown.splitlines()
    ), "the instructor's edition shows no solution"


# --- in the browser -----------------------------------------------------------------------

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None


def browser_only(test):
    marks = [
        pytest.mark.py311_leg,
        pytest.mark.browser,
        pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed"),
        pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}"),
    ]
    for mark in marks:
        test = mark(test)
    return test


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def served(site):
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser():
    if sync_playwright is None or not CHROMIUM.exists():
        pytest.skip("no playwright or no Chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        yield page
    finally:
        context.close()


LINKS_JS = """() => Array.from(document.querySelectorAll('a[href]'))
  .map(a => a.href).filter(h => h.startsWith(location.origin))"""
IDS_JS = "() => Array.from(document.querySelectorAll('[id]')).map(e => e.id)"
DIAGRAMS = "article pre"


def visit(page, url: str) -> list[str]:
    """Open `url`; return what went wrong on the way: console errors, uncaught
    exceptions, requests that failed or answered with an error status."""
    problems: list[str] = []
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"exception: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status}: {r.url}"))
    page.goto(url, wait_until="load")
    page.wait_for_timeout(200)
    return problems


@browser_only
def test_every_page_loads_cleanly_links_resolve_and_diagrams_are_rectangles(site, served, page):
    problems, ids, links, measured, diagrams = {}, {}, set(), 0, 0
    for path in html_pages(site):
        url = urljoin(served, path.relative_to(site).as_posix())
        problems[url] = visit(page, url)
        ids[url] = set(page.evaluate(IDS_JS))
        links |= {(url, link) for link in page.evaluate(LINKS_JS)}
        blocks = page.evaluate(glyphs_js(DIAGRAMS))
        diagrams += len(blocks)
        try:
            measured += assert_boxes_aligned_on_screen(blocks)
        except AssertionError as error:
            raise AssertionError(f"{path.relative_to(site)}: {error}") from None
    bad = {url: found for url, found in problems.items() if found}
    assert bad == {}, f"pages with errors: {bad}"
    broken = []
    for source, link in sorted(links):
        target, fragment = link.partition("#")[::2]
        target = target.split("?")[0]
        file = site / unquote(urlparse(target).path).lstrip("/")
        if file.is_dir():
            file = file / "index.html"
        if not file.is_file():
            broken.append(f"{source} -> {link}: no such page")
        elif fragment and file.suffix == ".html":
            key = urljoin(served, file.relative_to(site).as_posix())
            if key in ids and unquote(fragment) not in ids[key]:
                broken.append(f"{source} -> {link}: no element with that id")
    assert broken == [], f"broken internal links: {broken[:20]}"
    assert diagrams >= len(Project(site.parent).modules), f"only {diagrams} diagrams drawn"
    summary = f"pages {len(problems)} links {len(links)} diagrams {diagrams} chars {measured}\n"
    (ARTIFACTS / "browser-summary.txt").write_text(summary, encoding="utf-8")


@browser_only
def test_screenshots_of_the_landing_page_and_of_module_01s_graph_drawing(site, served, page):
    assert visit(page, served) == []
    page.screenshot(path=str(ARTIFACTS / "landing.png"), full_page=True)
    first = Project(site.parent).modules[0]
    assert visit(page, urljoin(served, f"modules/{first.key}.html")) == []
    # The graph drawing is found by what it is drawn with, not by the prose around it.
    drawings = page.locator(OUTPUT_PRE).filter(has_text=re.compile("[┌┐└┘│├┤]"))
    assert drawings.count(), f"{first.key}'s page shows no drawing in any cell output"
    drawings.first.scroll_into_view_if_needed()
    drawings.first.screenshot(path=str(ARTIFACTS / "module01-graph.png"))
    page.screenshot(path=str(ARTIFACTS / "module01-page.png"))
    box = drawings.first.bounding_box()
    assert box and box["width"] > 100 and box["height"] > 40, f"the drawing is tiny: {box}"


@browser_only
def test_search_works_offline(site, served, page):
    assert visit(page, urljoin(served, "search.html?q=backward")) == []
    results = page.locator("#search-results li")
    results.first.wait_for()
    titles = " ".join(results.all_inner_texts())
    assert "Variable" in titles or "autograd" in titles.lower(), titles[:500]
