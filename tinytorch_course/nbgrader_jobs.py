"""Run nbgrader jobs in a worker process with a wall-clock limit per job.

nbgrader runs in `tinytorch_course.nbgrader_worker` (a separate process, started in the
course root with the grading kernel's environment), never in the CLI's own process: a
submission that hangs its kernel beyond every interrupt, or kills the process, costs that
one job; the worker is killed (with its kernels) and a new one continues with the rest.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .project import CourseError, Project
from .runner import kernel_env

MARK = "@@tinytorch "
NBGRADER_CONFIG = "nbgrader_config.py"
WORKER_START_SECONDS = 300.0


def require_nbgrader_config(project: Project) -> Path:
    path = project.root / NBGRADER_CONFIG
    if not path.is_file():
        raise CourseError(
            f"no {NBGRADER_CONFIG} in {project.root}: release and grade need the course's nbgrader "
            "configuration (copy it from the course repository)"
        )
    return path


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="utf-8").rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(process: subprocess.Popen) -> None:
    """Kill the worker, its process group, and every kernel it started."""
    for pid in [*_descendants(process.pid), process.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass
    process.wait()


def _read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _tail(path: Path, count: int = 8) -> str:
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    return "\n".join(text.strip().splitlines()[-count:])


def run_jobs(
    project: Project,
    command: str,
    jobs: list[str],
    job_seconds: float,
    workers: int = 1,
    env: dict[str, str] | None = None,
) -> dict[str, dict]:
    """Run `jobs` (`generate` keys or `grade` MODULE/STUDENT/NOTEBOOK) in `workers` parallel
    worker processes and return each job's result. A job that runs past `job_seconds` is
    killed and reported as such; a worker that cannot start at all raises CourseError (the
    grading itself could not run). A job that met a locked gradebook (two workers writing
    at once) is run again, alone. `env` is the workers' and kernels' environment
    (default: `kernel_env(project)`)."""
    env = env or kernel_env(project)
    require_nbgrader_config(project)
    count = max(1, min(workers, len(jobs)))
    shares = [jobs[i::count] for i in range(count)]
    results: dict[str, dict] = {}
    failures: list[BaseException] = []

    def work(share: list[str]) -> None:
        try:
            results.update(_run_all(project, command, share, job_seconds, env))
        except BaseException as error:  # re-raised below, in the caller's thread
            failures.append(error)

    threads = [threading.Thread(target=work, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    locked = [
        job for job, result in results.items() if "database is locked" in str(result.get("error"))
    ]
    if locked:
        results.update(_run_all(project, command, locked, job_seconds, env))
    return results


def _run_all(
    project: Project, command: str, jobs: list[str], job_seconds: float, env: dict[str, str]
) -> dict[str, dict]:
    """Run `jobs` one after another, starting a new worker after one had to be killed."""
    results: dict[str, dict] = {}
    pending = list(jobs)
    while pending:
        results.update(_run_worker(project, command, pending, job_seconds, env))
        pending = [job for job in pending if job not in results]
    return results


def _run_worker(
    project: Project, command: str, jobs: list[str], job_seconds: float, env: dict[str, str]
) -> dict[str, dict]:
    results: dict[str, dict] = {}
    with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False, encoding="utf-8") as errors:
        error_log = Path(errors.name)
    try:
        with error_log.open("w", encoding="utf-8") as stderr:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tinytorch_course.nbgrader_worker",
                    str(project.root),
                    command,
                    *jobs,
                ],
                cwd=project.root,
                env=env,
                stdout=subprocess.PIPE,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                text=True,
                encoding="utf-8",
                errors="replace",
                start_new_session=True,
            )
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
        ready, current = False, None
        deadline = time.monotonic() + WORKER_START_SECONDS
        while True:
            try:
                line = lines.get(timeout=max(0.05, deadline - time.monotonic()))
            except queue.Empty:
                if time.monotonic() < deadline:
                    continue
                kill_tree(process)
                if not ready:
                    raise CourseError(
                        f"the nbgrader worker did not start in {WORKER_START_SECONDS:g} s"
                    ) from None
                job = current or next(j for j in jobs if j not in results)
                results[job] = {
                    "ok": False,
                    "killed": True,
                    "error": f"stopped: still running after {job_seconds:g} s, killed",
                }
                return results
            if line is None:  # the worker exited
                process.wait()
                if not ready:
                    raise CourseError(f"the nbgrader worker failed to start:\n{_tail(error_log)}")
                if current is not None:
                    results[current] = {
                        "ok": False,
                        "error": f"the grading process died:\n{_tail(error_log, 3)}",
                    }
                elif len(results) < len(jobs):
                    job = next(j for j in jobs if j not in results)
                    results[job] = {
                        "ok": False,
                        "error": f"the grading process died:\n{_tail(error_log, 3)}",
                    }
                return results
            if not line.startswith(MARK):
                continue
            event = json.loads(line[len(MARK) :])
            deadline = time.monotonic() + job_seconds
            if event["event"] == "ready":
                ready = True
            elif event["event"] == "start":
                current = event["job"]
            elif event["event"] == "done":
                results[event["job"]] = event
                current = None
    finally:
        error_log.unlink(missing_ok=True)
