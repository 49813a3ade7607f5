"""`lab`: open the course in JupyterLab, each `modules/NN_name/name.py` as a notebook.

What the student gets, and how it is set up without touching their own Jupyter:

- Percent-format `.py` files open as notebooks: jupytext's "Jupytext Notebook" is made
  the default viewer for Python files by a settings-override file generated in
  `.tinytorch/jupyter/config/labconfig/`, and `JUPYTER_CONFIG_DIR` points there for
  this server only. Nothing under `~/.jupyter` is read or written by it, which also
  hides the user's own Jupyter config there from this server: `jupyter_server_config.*`
  and `jupyter_lab_config.*` (a password, extra options), per-user server extensions,
  and JupyterLab's settings (theme, shortcuts) and saved layouts; settings changed in
  the course's JupyterLab are kept in `.tinytorch/jupyter/` instead. Still used as
  usual: kernel specs and lab extensions (Jupyter's data dirs), the environment's own
  Jupyter config (which enables jupytext's server extension), a global jupytext config
  (only where the project has none), and the user's IPython profile in the kernel.
- Saving writes back to the `.py` and nothing else: jupytext's options come from the
  project's `pyproject.toml` `[tool.jupytext]` (no version header, only nbgrader cell
  metadata), and the same options are given to the server for folders without one.
  Checkpoints go to `.tinytorch/jupyter/checkpoints/`, not to `.ipynb_checkpoints/`
  folders beside the modules.
- Diagrams stay rectangles: a custom CSS file (in the same folder, loaded with
  `--LabApp.custom_css`) makes code blocks and outputs scroll sideways instead of
  wrapping a line that is wider than the window.
- The kernel imports *this* project's `tinytorch`: it inherits `execute.kernel_env`,
  which puts the project root first on `PYTHONPATH`. The kernel starts on opening a
  module (JupyterLab sometimes still asks which one: "Python 3" is preselected).
- In a workspace the same command opens the student's `.ipynb` notebooks. "Run All
  Cells" stops at the first failing test cell (JupyterLab's rule); after reading its
  hint, "Run Selected Cell and All Below" from the next cell goes on.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .project import CourseError, Project

LAB_DIR = Path(".tinytorch") / "jupyter"
DEFAULT_PORT = 8888
# The jupytext options that keep a saved module identical to what `build` reads.
JUPYTEXT_OPTIONS = {
    "formats": "py:percent",
    "notebook_metadata_filter": "-all",
    "cell_metadata_filter": "nbgrader,-all",
}
# Lab settings for this server: .py files open as notebooks; no news or update checks
# (they need the network and put a notification over the notebook).
SETTING_OVERRIDES = {
    "@jupyterlab/docmanager-extension:plugin": {"defaultViewers": {"python": "Jupytext Notebook"}},
    "@jupyterlab/apputils-extension:notification": {"checkForUpdates": False, "fetchNews": "false"},
    # Start the Python kernel on opening a module instead of asking which kernel to use.
    "@jupyterlab/notebook-extension:tracker": {"autoStartDefaultKernel": True},
}

# JupyterLab wraps long lines of code blocks and outputs at the window's edge, which
# breaks a diagram drawn in columns; preformatted text scrolls sideways instead.
CUSTOM_CSS = """\
/* Written by `tinytorch-course lab`: diagrams are drawn in columns, never wrap them. */
.jp-Notebook .jp-RenderedMarkdown pre,
.jp-Notebook .jp-RenderedMarkdown pre code,
.jp-Notebook .jp-RenderedText pre {
  white-space: pre !important;
}
.jp-Notebook .jp-RenderedMarkdown pre,
.jp-Notebook .jp-RenderedText pre {
  overflow-x: auto;
}
"""


@dataclass
class LabServer:
    """A running JupyterLab server of a project; `stop()` ends it."""

    process: subprocess.Popen
    port: int
    token: str
    root: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "") -> str:
        """The address of `path` (relative to the project root) in JupyterLab, with the token."""
        where = f"/lab/tree/{path.strip('/')}" if path else "/lab"
        return f"{self.base_url}{where}?token={self.token}"

    def stop(self, grace: float = 10.0) -> None:
        """Terminate the server, wait for it, and kill it if it does not exit in `grace` s."""
        stop_process(self.process, grace)

    def __enter__(self) -> LabServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def stop_process(process: subprocess.Popen, grace: float = 10.0) -> None:
    """Terminate `process`, wait up to `grace` seconds, then kill it by its pid."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(grace)


def lab_dir(project: Project) -> Path:
    return project.root / LAB_DIR


def write_lab_config(project: Project) -> Path:
    """Write this project's Jupyter config folder (used as `JUPYTER_CONFIG_DIR`): the
    lab settings overrides and the page's custom CSS. Returns the folder."""
    config = lab_dir(project) / "config"
    _write_if_changed(
        config / "labconfig" / "default_setting_overrides.json",
        json.dumps(SETTING_OVERRIDES, indent=2) + "\n",
    )
    _write_if_changed(config / "custom" / "custom.css", CUSTOM_CSS)
    return config


def _write_if_changed(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def lab_env(project: Project) -> dict[str, str]:
    """The server's environment: the kernel environment (this project's `tinytorch`
    first on `PYTHONPATH`) with Jupyter's user config folder inside the project."""
    from .execute import kernel_env

    env = kernel_env(project)
    env["JUPYTER_CONFIG_DIR"] = str(write_lab_config(project))
    for variable in ("JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR"):
        env.pop(variable, None)  # derived from JUPYTER_CONFIG_DIR when unset
    return env


def lab_command(project: Project, port: int, token: str, open_browser: bool = False) -> list[str]:
    """The `jupyter lab` command line for `project` (options here beat any config file)."""
    checkpoints = lab_dir(project) / "checkpoints"
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        f"--ServerApp.root_dir={project.root}",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.open_browser={open_browser}",
        "--LabApp.custom_css=True",
        f"--ContentsManager.checkpoints_class={__name__}.CourseCheckpoints",
        f"--CourseCheckpoints.checkpoint_dir={checkpoints}",
        *(f"--JupytextConfiguration.{key}={value}" for key, value in JUPYTEXT_OPTIONS.items()),
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    return command


def port_is_free(port: int) -> bool:
    """Can a server listen on `port` at 127.0.0.1 right now?"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(start: int = DEFAULT_PORT, tries: int = 50) -> int:
    """The first port from `start` on that nobody listens on at 127.0.0.1."""
    for port in range(start, start + tries):
        if port_is_free(port):
            return port
    raise CourseError(f"no free port in {start}-{start + tries - 1}; choose one with --port")


def kernel_mismatch() -> str | None:
    """A warning when Jupyter's `python3` kernel would run another Python than this one
    (a user-installed kernel spec shadows the built-in one): that kernel may not have
    numpy or this project's tools. None when it runs this Python."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        return "no `python3` Jupyter kernel: install ipykernel in this environment"
    program = spec.argv[0] if spec.argv else ""
    if not os.path.isabs(program) or os.path.realpath(program) == os.path.realpath(sys.executable):
        return None
    return (
        f"the `python3` kernel ({spec.resource_dir}) runs {program}, not this Python "
        f"({sys.executable}); notebooks may not find numpy or tinytorch there"
    )


def start_lab(
    project: Project,
    port: int | None = None,
    token: str | None = None,
    open_browser: bool = False,
    timeout: float = 90.0,
    log=None,
) -> LabServer:
    """Start JupyterLab on `project` and return once it answers; stop it on failure.

    `log` is a file the server's output goes to (default: inherited)."""
    port = port or free_port()
    token = token or secrets.token_hex(24)
    process = subprocess.Popen(
        lab_command(project, port, token, open_browser),
        cwd=project.root,
        env=lab_env(project),
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
    )
    server = LabServer(process, port, token, project.root)
    try:
        _wait_until_ready(server, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_until_ready(server: LabServer, timeout: float) -> None:
    status = f"{server.base_url}/api/status?token={server.token}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise CourseError(
                f"JupyterLab exited with code {server.process.returncode} before it served "
                f"port {server.port} (is the port in use? see the messages above)"
            )
        try:
            with urllib.request.urlopen(status, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    raise CourseError(f"JupyterLab did not answer on port {server.port} within {timeout:g}s")


def cmd_lab(project: Project, args) -> int:
    """Start JupyterLab on the course, print its address, and stop it on Ctrl-C."""
    from .build import is_stale

    if not project.is_workspace and is_stale(project):
        print(
            "note: modules changed since the last build; run `tinytorch-course build` so that "
            "`import tinytorch` sees them"
        )
    if args.port and not port_is_free(args.port):
        raise CourseError(f"port {args.port} is in use on 127.0.0.1; choose another with --port")
    warning = kernel_mismatch()
    if warning:
        print(f"warning: {warning}")
    server = start_lab(project, port=args.port, open_browser=not args.no_browser)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        print(f"TinyTorch in JupyterLab (server pid {server.process.pid}); open:")
        print(f"    {server.url()}")
        first = first_module_file(project)
        if first:
            print(f"    {server.url(first)}")
        if project.is_workspace:
            advice = (
                "Your notebooks are modules/NN_name/name.ipynb. Run All stops at the first "
                "failing test: read its hint, then Run > Run Selected Cell and All Below."
            )
        else:
            advice = "Each modules/NN_name/name.py opens as a notebook; saving writes the .py."
        print(f"{advice}\nCtrl-C stops the server.", flush=True)
        return server.process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


def first_module_file(project: Project) -> str | None:
    """The path (from the root) of the first module's source, or of its notebook in a
    workspace, which holds notebooks only; None if neither exists."""
    from .project import MODULES_DIR, Module

    keys = project.settings.get("course", "modules", fallback="").split()
    if not keys:
        return None
    module = Module(project.root / MODULES_DIR / keys[0])
    for path in (module.source, module.notebook):
        if path.is_file():
            return path.relative_to(project.root).as_posix()
    return None


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


def register(add) -> None:
    parser = add(
        "lab", cmd_lab, "open the course in JupyterLab; each module .py opens as a notebook"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"port on 127.0.0.1 (default: the first free one from {DEFAULT_PORT})",
    )
    parser.add_argument("--no-browser", action="store_true", help="do not open a web browser")


@functools.cache
def _course_checkpoints_class():
    """`CourseCheckpoints`, built on first use so that the CLI does not import jupyter_server."""
    from jupyter_core.utils import ensure_dir_exists
    from jupyter_server.services.contents.filecheckpoints import AsyncFileCheckpoints

    class CourseCheckpoints(AsyncFileCheckpoints):
        """Checkpoints kept under one folder (`checkpoint_dir`, absolute), mirroring each
        file's folder, instead of an `.ipynb_checkpoints/` folder beside every file."""

        def checkpoint_path(self, checkpoint_id: str, path: str) -> str:
            folder, _, name = path.strip("/").rpartition("/")
            stem, ext = os.path.splitext(name)
            target = os.path.join(self.checkpoint_dir, *filter(None, folder.split("/")))
            with self.perm_to_403():
                ensure_dir_exists(target)
            return os.path.join(target, f"{stem}-{checkpoint_id}{ext}")

    return CourseCheckpoints


def __getattr__(name: str):
    if name == "CourseCheckpoints":
        return _course_checkpoints_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
