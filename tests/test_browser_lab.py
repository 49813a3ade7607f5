"""The student's Jupyter journey, in a real browser.

`tinytorch-course lab` runs (as a student starts it) on a private copy of the course and
on a student workspace made by `release` + `workspace`; headless Chromium (Debian's
`chromium`, driven by Playwright) opens module 01 by its URL, runs it the way a student
does, and the tests assert on what the page shows: cells, outputs, errors, and where the
box-drawing characters of every diagram land on screen.

Screenshots go to `test-artifacts/browser/` (gitignored). Every server is stopped at the
end of its fixture, also when a test fails: terminate, wait, kill by process id.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT, copy_course
from screen import CHROMIUM, CHROMIUM_FLAGS, assert_boxes_aligned_on_screen, glyphs_js

from tinytorch_course.boxes import BOX_CHARS

ARTIFACTS = ROOT / "test-artifacts" / "browser"
MODULE = "01_autograd"
SOURCE = f"modules/{MODULE}/autograd.py"
NOTEBOOK = f"modules/{MODULE}/autograd.ipynb"
TIMEOUT_MS = 60_000

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(sync_playwright is None, reason="the playwright package is not installed"),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium fonts-dejavu-core)",
    ),
]


# --- the server, started the way a student starts it ----------------------------------


@dataclass
class Lab:
    """`tinytorch-course lab` running in `root`; `stop()` ends it and its server."""

    root: Path
    process: subprocess.Popen
    log: Path
    port: int = 0
    token: str = ""
    server_pid: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/lab/tree/{path}?token={self.token}"

    def api(self, path: str, method: str = "GET"):
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/{path}?token={self.token}", method=method
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shut_down_kernels(self) -> None:
        for session in self.api("sessions"):
            self.api(f"sessions/{session['id']}", method="DELETE")

    def stop(self) -> None:
        """Terminate the command (which stops its server), wait, then kill what is left."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.server_pid and _alive(self.server_pid):
            os.kill(self.server_pid, signal.SIGKILL)
            raise AssertionError(f"the JupyterLab server (pid {self.server_pid}) outlived `lab`")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_lab(root: Path, name: str) -> Lab:
    """Run `tinytorch-course lab --no-browser --port N` in `root`; return once it printed
    the address (the command prints it after the server answered). A port found free can
    be taken by another process before the server binds it: then try another port."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / f"{name}-server.log"
    for _attempt in range(3):
        lab = _try_lab(root, log, _free_port())
        text = log.read_text(encoding="utf-8", errors="replace")
        if lab.token or "is not available" not in text:
            break
    if lab.token:
        return lab
    tail = "\n".join(text.splitlines()[-25:])
    raise AssertionError(f"`tinytorch-course lab` in {root} did not print its address:\n{tail}")


def _try_lab(root: Path, log: Path, port: int) -> Lab:
    """The started lab (with its token), or a stopped one (empty token) if it never served."""
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tinytorch_course", "lab", "--no-browser", f"--port={port}"],
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    lab = Lab(root, process, log, port)
    deadline = time.monotonic() + 120
    pattern = re.compile(rf"http://127\.0\.0\.1:{port}/lab\?token=(\w+)")
    while time.monotonic() < deadline:
        text = log.read_text(encoding="utf-8", errors="replace")
        found, pid = pattern.search(text), re.search(r"server pid (\d+)", text)
        if found and pid:
            lab.token, lab.server_pid = found[1], int(pid[1])
            return lab
        if process.poll() is not None:
            break
        time.sleep(0.2)
    lab.stop()
    return lab


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A private copy of the course: these tests edit and save module sources."""
    return copy_course(tmp_path_factory.mktemp("lab") / "course")


@pytest.fixture(scope="module")
def course_lab(course, workspace_in_background):
    lab = start_lab(course, "course")
    try:
        yield lab
    finally:
        lab.stop()


class Background(threading.Thread):
    """Make a student workspace of module 01 with the course's own commands (`release`,
    `workspace`) and start `lab` in it, while the course's tests run."""

    def __init__(self, folder: Path):
        super().__init__(daemon=True)
        self.folder, self.lab, self.error = folder, None, None

    def run(self) -> None:
        try:
            course = copy_course(self.folder / "course")
            _keep_only_module(course, MODULE)  # releasing one module is all this needs
            target = self.folder / "workspace"
            for command in (["release", MODULE], ["workspace", str(target)]):
                result = subprocess.run(
                    [sys.executable, "-m", "tinytorch_course", *command],
                    cwd=course,
                    capture_output=True,
                    text=True,
                    encoding="utf-8",
                    timeout=300,
                )
                if result.returncode:
                    raise AssertionError(f"{command} failed:\n{result.stdout}{result.stderr}")
            self.lab = start_lab(target, "workspace")
        except BaseException as error:  # reported by the fixture that waits for it
            self.error = error


@pytest.fixture(scope="module")
def workspace_in_background(tmp_path_factory):
    job = Background(tmp_path_factory.mktemp("release"))
    job.start()
    try:
        yield job
    finally:
        job.join(300)
        if job.lab:
            job.lab.stop()


@pytest.fixture(scope="module")
def workspace_lab(workspace_in_background) -> Lab:
    workspace_in_background.join(300)
    if workspace_in_background.error:
        raise workspace_in_background.error
    assert workspace_in_background.lab, "making the workspace did not finish in 300 s"
    return workspace_in_background.lab


def _keep_only_module(course: Path, key: str) -> None:
    for folder in (course / "modules").iterdir():
        if folder.name != key:
            shutil.rmtree(folder)
    settings = course / "settings.ini"
    text = settings.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^modules\s*=\s*\n(?:[ \t]+\S+\n)+", f"modules =\n    {key}\n", text)
    settings.write_text(text, encoding="utf-8")


# --- the browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, request):
    """A fresh browser page; what it last showed is saved as `<test name>-last.png`."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        yield page
    finally:
        try:
            page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-last.png"))
        finally:
            context.close()


# What the page shows for each cell, in order. An error output is the stderr block that
# holds a traceback; its last line is "Name: message".
CELLS_JS = """() => Array.from(document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .jp-Cell'))
  .map(cell => ({
    kind: cell.classList.contains('jp-CodeCell') ? 'code'
        : cell.classList.contains('jp-MarkdownCell') ? 'markdown' : 'raw',
    prompt: ((cell.querySelector('.jp-InputArea-prompt') || {}).textContent || '').trim(),
    preformatted: Array.from(cell.querySelectorAll('.jp-RenderedMarkdown pre'))
      .map(pre => pre.textContent).join('\\n'),
    outputs: Array.from(cell.querySelectorAll('.jp-OutputArea-output')).map(o => ({
      mime: o.dataset.mimeType || '', text: o.textContent })),
  }))"""

# Every diagram drawn in a <pre> of the notebook (rendered markdown or output), not the editor's.
GLYPHS_JS = glyphs_js(".jp-NotebookPanel .jp-Notebook pre", exclude=".jp-InputArea-editor")

DONE_JS = """(before) => {
  const prompts = Array.from(document.querySelectorAll(
      '.jp-NotebookPanel .jp-Notebook .jp-CodeCell .jp-InputArea-prompt'))
    .map(p => p.textContent.trim());
  const counts = prompts.map(p => parseInt((p.match(/\\[(\\d+)\\]/) || [])[1] || '0'));
  const status = document.querySelector('#jp-main-statusbar').textContent;
  return Math.max(0, ...counts) > before && !prompts.some(p => p.startsWith('[*]'))
      && /\\| Idle/.test(status);
}"""


def open_notebook(page, lab: Lab, path: str) -> None:
    """Open `path` by its URL as a student would and wait for its kernel to be ready,
    accepting the kernel if JupyterLab asks which one to start."""
    page.goto(lab.url(path))
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell")
    _wait_for_one_steady_kernel(page, lab, path)
    page.wait_for_function(
        "() => /\\| Idle/.test(document.querySelector('#jp-main-statusbar').textContent)"
    )


def _wait_for_one_steady_kernel(page, lab: Lab, path: str, steady: float = 1.5) -> None:
    """JupyterLab sometimes starts a second kernel and drops the first just after opening
    a file; run nothing until one kernel has served the file, idle, for `steady` seconds."""
    deadline, last, since = time.monotonic() + TIMEOUT_MS / 1000, None, 0.0
    while time.monotonic() < deadline:
        accept = page.locator(".jp-Dialog .jp-Dialog-footer .jp-mod-accept")
        if accept.count() == 1 and "Select Kernel" in page.locator(".jp-Dialog").inner_text():
            accept.click()
        sessions = [s for s in lab.api("sessions") if s["path"] == path and s.get("kernel")]
        state = tuple((s["kernel"]["id"], s["kernel"]["execution_state"]) for s in sessions)
        if len(sessions) == 1 and state[0][1] == "idle" and len(lab.api("kernels")) == 1:
            if state != last:
                last, since = state, time.monotonic()
            elif time.monotonic() - since >= steady:
                return
        else:
            last = None
        time.sleep(0.2)
    raise AssertionError(f"no steady kernel for {path}; sessions: {lab.api('sessions')}")


def highest_execution_count(page) -> int:
    return max((_count(c["prompt"]) for c in page.evaluate(CELLS_JS)), default=0)


def _count(prompt: str) -> int:
    found = re.match(r"\[(\d+)\]", prompt)
    return int(found[1]) if found else 0


def run_from_menu(page, item: str) -> None:
    """Choose Run → `item` in the menu bar and wait until every queued cell finished."""
    before = highest_execution_count(page)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name=item, exact=True).click()
    deadline = time.monotonic() + 3 * TIMEOUT_MS / 1000
    while True:
        page.wait_for_function(DONE_JS, arg=before, timeout=3 * TIMEOUT_MS)
        # The kernel reports "idle" for an instant between two queued cells: done means
        # the count stopped rising and the notebook stayed idle for a while.
        reached = highest_execution_count(page)
        page.wait_for_timeout(2000)
        steady = page.evaluate(DONE_JS, before) and highest_execution_count(page) == reached
        if steady or time.monotonic() > deadline:
            return


def error_of(cell: dict) -> str | None:
    """The "Name: message" line of the traceback a cell shows, or None."""
    for output in cell["outputs"]:
        if output["mime"] == "application/vnd.jupyter.stderr" and "Traceback" in output["text"]:
            lines = [line for line in output["text"].splitlines() if line.strip()]
            return lines[-1].strip()
    return None


def notebook_cells(path: Path) -> list:
    """The cells as jupytext (for a .py) or nbformat (for an .ipynb) reads them."""
    if path.suffix == ".py":
        import jupytext

        return jupytext.read(path, fmt="py:percent").cells
    import nbformat

    return nbformat.read(path, as_version=4).cells


def is_graded(cell) -> bool:
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("grade"))


# --- what a student must see ---------------------------------------------------------------


def assert_same_cells(shown: list[dict], cells: list) -> None:
    """The file opened as a notebook: one cell on the page per cell in the file."""
    kinds = [cell.cell_type for cell in cells]
    assert [c["kind"] for c in shown] == kinds, (
        f"the page shows {len(shown)} cells, the file has {len(kinds)}: it did not open as "
        "the same notebook (is jupytext the default viewer for .py files?)"
    )


def assert_diagrams_intact(shown: list[dict], cells: list) -> int:
    """Every line of a markdown cell that draws with box characters is shown exactly as
    written, in a preformatted block (anywhere else, markdown would reflow it);
    returns how many such lines there are."""
    checked = 0
    for index, (cell, seen) in enumerate(zip(cells, shown, strict=True)):
        if cell.cell_type != "markdown":
            continue
        page_lines = set(seen["preformatted"].splitlines())
        for line in cell.source.splitlines():
            if BOX_CHARS & set(line):
                assert line in page_lines, (
                    f"cell {index}: diagram line not shown as written: {line!r}"
                )
                checked += 1
    return checked


def test_reference_module_opens_as_notebook_and_runs_without_errors(course_lab, page):
    cells = notebook_cells(course_lab.root / SOURCE)
    try:
        open_notebook(page, course_lab, SOURCE)
        page.screenshot(path=str(ARTIFACTS / "module01-opened.png"))
        run_from_menu(page, "Run All Cells")
        shown = page.evaluate(CELLS_JS)
        page.screenshot(path=str(ARTIFACTS / "module01-after-run-all.png"))
        first_diagram = page.locator(".jp-RenderedMarkdown pre", has_text="┌").first
        if first_diagram.count():
            first_diagram.screenshot(path=str(ARTIFACTS / "module01-first-diagram.png"))
        demo = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").nth(
            cell_using(cells, "trace(", "draw_graph(", "backward=True")
        )
        for _ in range(3):  # cells above it get laid out as they come into view
            demo.scroll_into_view_if_needed()
            page.wait_for_timeout(300)
        demo.locator(".jp-OutputArea").screenshot(path=str(ARTIFACTS / "module01-live-graph.png"))
        glyphs = page.evaluate(GLYPHS_JS)
    finally:
        course_lab.shut_down_kernels()

    assert_same_cells(shown, cells)
    errors = [(i, error_of(c)) for i, c in enumerate(shown) if error_of(c)]
    assert errors == [], f"the reference notebook shows errors: {errors}"
    stderr = [
        (i, o["text"][:200])
        for i, c in enumerate(shown)
        for o in c["outputs"]
        if o["mime"] == "application/vnd.jupyter.stderr"
    ]
    assert stderr == [], f"the reference notebook prints to stderr (a student sees red): {stderr}"
    code = [i for i, cell in enumerate(cells) if cell.cell_type == "code"]
    not_run = [i for i in code if not _count(shown[i]["prompt"])]
    assert not_run == [], f"cells {not_run} did not run"
    graded = [i for i, cell in enumerate(cells) if is_graded(cell)]
    assert graded, "module 01 has no graded test cell"
    no_pass_line = [
        cells[i].metadata["nbgrader"]["grade_id"]
        for i in graded
        if not any(
            f"✓ {cells[i].metadata['nbgrader']['grade_id']} passed" in output["text"]
            for output in shown[i]["outputs"]
        )
    ]
    assert no_pass_line == [], f"graded cells that show no pass line: {no_pass_line}"
    assert sorted(_count(shown[i]["prompt"]) for i in code) == list(range(1, len(code) + 1))
    lines = assert_diagrams_intact(shown, cells)
    measured = assert_boxes_aligned_on_screen(glyphs)
    assert measured >= lines, f"only {measured} box characters measured for {lines} diagram lines"
    summary = {"cells": len(cells), "diagram_lines": lines, "box_characters_measured": measured}
    (ARTIFACTS / "module01-summary.json").write_text(json.dumps(summary), encoding="utf-8")
    assert_module01_live_tools_work(cells, shown)


def cell_using(cells: list, *names: str) -> int:
    """The index of the first code cell whose source uses every one of `names`."""
    for index, cell in enumerate(cells):
        if cell.cell_type == "code" and all(name in cell.source for name in names):
            return index
    raise AssertionError(f"module 01 has no code cell using {names}")


def assert_module01_live_tools_work(cells: list, shown: list[dict]) -> None:
    """What module 01 shows a student once the engine works: the live demo draws the
    student's own graph of d = a*2 + a*3 with its gradient 2 + 3 = 5, and the
    integration test's training runs pass."""
    demo = cell_using(cells, "trace(", "draw_graph(", "backward=True")
    text = "".join(o["text"] for o in shown[demo]["outputs"])
    for node in ("[×]", "[+]", "∂d/∂a = 5", "a.grad = 5"):
        assert node in text, f"cell {demo} (the live graph demo) does not show {node!r}:\n{text}"
    training = cell_using(cells, "check_training")
    text = "".join(o["text"] for o in shown[training]["outputs"])
    assert "✓ test_integration passed" in text, f"cell {training}: training failed: {text!r}"


def select_cell(page, index: int) -> None:
    """Click cell `index`'s prompt area (command mode), checking that it became the
    active cell: the notebook's lazy layout can move a cell while it is clicked."""
    cell = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").nth(index)
    for _ in range(5):
        cell.scroll_into_view_if_needed()
        cell.locator(".jp-InputPrompt").click()
        if "jp-mod-active" in (cell.get_attribute("class") or ""):
            return
        time.sleep(0.3)
    raise AssertionError(f"could not select cell {index}")


def test_saving_in_the_browser_writes_exactly_the_typed_edit_to_the_py(course_lab, page):
    source = course_lab.root / SOURCE
    original = source.read_text(encoding="utf-8")
    appended = " Edited in the browser."
    typed = ["import tinytorch", "print(tinytorch.__file__)"]
    try:
        open_notebook(page, course_lab, SOURCE)
        select_cell(page, 0)  # the title cell (markdown)
        page.keyboard.press("Enter")  # edit its source
        page.keyboard.press("Control+End")
        page.keyboard.type(appended)
        page.keyboard.press("Control+Enter")  # render it; back to command mode
        page.keyboard.press("b")  # a new code cell below it
        page.keyboard.press("Enter")
        for number, line in enumerate(typed):
            if number:
                page.keyboard.press("Enter")
            page.keyboard.type(line)
        before = highest_execution_count(page)
        page.keyboard.press("Control+Enter")  # run it (Shift+Enter would move on)
        page.wait_for_function(DONE_JS, arg=before)
        page.keyboard.press("Control+s")
        deadline = time.monotonic() + 20
        while source.read_text(encoding="utf-8") == original and time.monotonic() < deadline:
            time.sleep(0.2)
        saved = source.read_text(encoding="utf-8")
        shown = page.evaluate(CELLS_JS)
    finally:
        course_lab.shut_down_kernels()
        source.write_text(original, encoding="utf-8")

    second_cell = original.index("\n# %%", 1) + 1
    title = original[:second_cell].rstrip("\n")
    expected = f"{title}{appended}\n\n# %%\n" + "\n".join(typed) + "\n\n" + original[second_cell:]
    assert saved == expected, (
        "the saved .py differs from the original by more than what was typed:\n"
        + "".join(_diff(expected, saved))
    )
    printed = "".join(o["text"] for o in shown[1]["outputs"]).strip()
    assert Path(printed).is_relative_to(course_lab.root), (
        f"the kernel imported tinytorch from {printed}, not from this course copy"
    )
    stray = [
        p.relative_to(course_lab.root).as_posix()
        for p in (course_lab.root / "modules").rglob("*")
        if p.suffix == ".ipynb" or p.name == ".ipynb_checkpoints"
    ]
    assert stray == [], f"JupyterLab left files beside the modules: {stray}"


def _diff(old: str, new: str):
    import difflib

    return difflib.unified_diff(old.splitlines(True), new.splitlines(True), "before", "after")


def test_released_notebook_fails_only_in_test_cells_each_with_a_hint(workspace_lab, page):
    path = workspace_lab.root / NOTEBOOK
    cells = notebook_cells(path)
    failures: list[tuple[int, str]] = []
    try:
        open_notebook(page, workspace_lab, NOTEBOOK)
        page.screenshot(path=str(ARTIFACTS / "workspace-module01-opened.png"))
        # One "Run All", as a student does: the release tags every graded cell
        # `raises-exception`, so a failing test does not stop the cells below it.
        run_from_menu(page, "Run All Cells")
        shown = page.evaluate(CELLS_JS)
        failures = [(i, error_of(cell)) for i, cell in enumerate(shown) if error_of(cell)]
        page.screenshot(path=str(ARTIFACTS / "workspace-module01-after-run.png"))
    finally:
        workspace_lab.shut_down_kernels()

    report = [{"cell": i, "graded": is_graded(cells[i]), "error": m} for i, m in failures]
    (ARTIFACTS / "workspace-failures.json").write_text(
        json.dumps(report, indent=1), encoding="utf-8"
    )
    assert_same_cells(shown, cells)
    assert failures, "nothing failed in the released notebook: are its solutions stubbed?"
    outside = [(i, message) for i, message in failures if not is_graded(cells[i])]
    assert outside == [], f"errors outside graded test cells (the student is stuck): {outside}"
    bare = [(i, m) for i, m in failures if not re.match(r"^\w+: \S", m)]
    assert bare == [], f"failures without a hint (an exception with no message): {bare}"
    code = [i for i, cell in enumerate(cells) if cell.cell_type == "code"]
    not_run = [i for i in code if not _count(shown[i]["prompt"])]
    assert not_run == [], f"cells {not_run} never ran"
