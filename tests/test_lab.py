"""`tinytorch-course lab` without a browser: its configuration, and a real JupyterLab
server saving every module through the same contents API the browser uses."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT, copy_course

from tinytorch_course.lab import (
    JUPYTEXT_OPTIONS,
    SETTING_OVERRIDES,
    first_module_file,
    kernel_mismatch,
    lab_command,
    lab_env,
    start_lab,
)
from tinytorch_course.project import Project


def test_config_lives_in_the_project_and_makes_py_files_open_as_notebooks(course_copy):
    project = Project(course_copy)
    env = lab_env(project)
    config = Path(env["JUPYTER_CONFIG_DIR"])
    assert config.is_relative_to(course_copy / ".tinytorch"), "must not touch ~/.jupyter"
    overrides = json.loads(
        (config / "labconfig" / "default_setting_overrides.json").read_text(encoding="utf-8")
    )
    viewers = overrides["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers == {"python": "Jupytext Notebook"}
    assert overrides == SETTING_OVERRIDES
    css = (config / "custom" / "custom.css").read_text(encoding="utf-8")
    assert "white-space: pre !important" in css, "diagrams must scroll, not wrap"
    assert "--LabApp.custom_css=True" in lab_command(project, 8123, "secret")
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(course_copy), (
        "the kernel must import this project's tinytorch first"
    )


def test_command_serves_loopback_with_the_token_and_no_port_hopping(course_copy):
    command = lab_command(Project(course_copy), 8123, "secret")
    assert f"--ServerApp.root_dir={course_copy}" in command
    assert "--ServerApp.ip=127.0.0.1" in command
    assert "--ServerApp.port=8123" in command
    assert "--ServerApp.port_retries=0" in command, "the printed address must be the real one"
    assert "--IdentityProvider.token=secret" in command
    assert ("--allow-root" in command) == (hasattr(os, "geteuid") and os.geteuid() == 0)


def test_first_module_file_is_the_source_or_a_workspace_notebook(course_copy):
    project = Project(course_copy)
    first = project.modules[0]
    assert first_module_file(project) == first.source.relative_to(course_copy).as_posix()
    first.source.unlink()  # a workspace holds the notebook only
    first.notebook.write_text("{}", encoding="utf-8")
    assert first_module_file(project) == first.notebook.relative_to(course_copy).as_posix()


def _contents(server, path: str, model: dict | None = None) -> dict:
    url = f"{server.base_url}/api/contents/{path}?token={server.token}"
    data = None if model is None else json.dumps(model).encode("utf-8")
    request = urllib.request.Request(
        url,
        data=data,
        method="GET" if model is None else "PUT",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read().decode("utf-8"))


def _as_jupyterlab_saves_it(notebook: dict) -> dict:
    """The notebook as JupyterLab sends it back: kernel metadata and per-cell UI state
    added (all of which must stay out of the .py)."""
    notebook["metadata"]["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    notebook["metadata"]["language_info"] = {"name": "python", "version": "3.11.0"}
    for number, cell in enumerate(notebook["cells"]):
        cell["id"] = f"cell-{number}"
        cell["metadata"].update({"trusted": True, "editable": True, "collapsed": False})
        # a student folds a cell's input, or has "record timing" on
        cell["metadata"]["jupyter"] = {"source_hidden": True}
        cell["metadata"]["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00.000Z"}
    return notebook


def test_server_jupytext_options_are_the_projects():
    """Where no project config applies (a student's folder) jupytext uses the options
    the server was given: they must be the ones in pyproject.toml [tool.jupytext]."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = text.split("[tool.jupytext]", 1)[1].split("\n[", 1)[0]
    configured = dict(re.findall(r'(?m)^(\w+)\s*=\s*"([^"]*)"', section))
    assert configured == JUPYTEXT_OPTIONS
    command = lab_command(Project(ROOT), 8123, "secret")
    for key, value in JUPYTEXT_OPTIONS.items():
        assert f"--JupytextConfiguration.{key}={value}" in command


@pytest.mark.slow
def test_saving_every_module_from_jupyterlab_changes_no_byte(tmp_path, monkeypatch):
    """Open each module as a notebook through a real server and save it back the way
    JupyterLab does: each .py must stay byte-identical (no jupytext header, no UI
    metadata), nothing may be written beside it, and checkpoints go to .tinytorch/."""
    course = copy_course(tmp_path / "course", with_package=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("JUPYTER_CONFIG_DIR", raising=False)
    project = Project(course)
    paths = [m.source for m in project.modules]
    before = {p: p.read_bytes() for p in paths}
    written = {p: p.stat().st_mtime_ns for p in paths}
    with start_lab(project, log=(tmp_path / "server.log").open("w", encoding="utf-8")) as server:
        for path in paths:
            relative = path.relative_to(course).as_posix()
            model = _contents(server, relative)
            assert model["type"] == "notebook", f"{relative} did not open as a notebook"
            _contents(
                server,
                relative,
                {
                    "type": "notebook",
                    "format": "json",
                    "content": _as_jupyterlab_saves_it(model["content"]),
                },
            )
            checkpoint = (
                f"{server.base_url}/api/contents/{relative}/checkpoints?token={server.token}"
            )
            urllib.request.urlopen(urllib.request.Request(checkpoint, method="POST"), timeout=30)
    changed = [p.relative_to(course).as_posix() for p in paths if p.read_bytes() != before[p]]
    unsaved = [p.name for p in paths if p.stat().st_mtime_ns == written[p]]
    assert unsaved == [], f"the server did not write {unsaved}: the test proves nothing"
    assert changed == [], f"saving from JupyterLab changed {changed}"
    stray = [
        p.relative_to(course).as_posix()
        for p in (course / "modules").rglob("*")
        if p.suffix == ".ipynb" or p.name == ".ipynb_checkpoints"
    ]
    assert stray == [], f"written beside the modules: {stray}"
    kept = course / ".tinytorch" / "jupyter" / "checkpoints" / "modules"
    for module in project.modules:
        assert (kept / module.key / f"{module.name}-checkpoint.py").is_file()
    assert server.process.poll() is not None, "the server is still running after stop()"
    assert not (home / ".jupyter").exists(), "the server wrote into the user's ~/.jupyter"


def test_a_python3_kernel_of_another_python_is_named(tmp_path, monkeypatch):
    spec = tmp_path / "kernels" / "python3"
    spec.mkdir(parents=True)
    other = str(tmp_path / "elsewhere" / "bin" / "python")
    kernel = {
        "argv": [other, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3",
        "language": "python",
    }
    (spec / "kernel.json").write_text(json.dumps(kernel), encoding="utf-8")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    warning = kernel_mismatch()
    assert warning and other in warning and sys.executable in warning
    monkeypatch.delenv("JUPYTER_PATH")
    assert kernel_mismatch() is None


def test_a_busy_port_is_refused_before_starting(course_copy):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "tinytorch_course", "lab", "--no-browser", f"--port={port}"],
            cwd=course_copy,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=60,
        )
    assert result.returncode == 2
    assert f"port {port} is in use" in result.stderr
