"""nbgrader's `generate_assignment` for `release`, run in a process of its own.

`python -m tinytorch_course.nbgrader_release ROOT KEY...` generates each module's release
with the course's `nbgrader_config.py` and reports each one as a line
`@@tinytorch {json}` on stdout. The process starts in the course root with this
interpreter's folder first on PATH: nbgrader runs `alembic` (gradebook migrations) as a
command, which must be found when `tinytorch-course` is started by its full path
without an activated venv.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import traceback
from pathlib import Path

from .project import CourseError, Project

MARK = "@@tinytorch "
NBGRADER_CONFIG = "nbgrader_config.py"


def require_nbgrader_config(project: Project) -> Path:
    path = project.root / NBGRADER_CONFIG
    if not path.is_file():
        raise CourseError(
            f"no {NBGRADER_CONFIG} in {project.root}: release and grade need the course's "
            "nbgrader configuration (copy it from the course repository)"
        )
    return path


def generate(project: Project, keys: list[str], seconds: float = 900) -> dict[str, dict]:
    """Run nbgrader generate_assignment for `keys`; each key's result (ok, log, error)."""
    from .execute import kernel_env

    require_nbgrader_config(project)
    command = [sys.executable, "-m", "tinytorch_course.nbgrader_release", str(project.root)]
    try:
        done = subprocess.run(
            [*command, *keys],
            cwd=project.root,
            env=kernel_env(project),
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=seconds,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise CourseError(f"nbgrader generate_assignment ran longer than {seconds:g} s") from None
    results = {}
    for line in done.stdout.splitlines():
        if line.startswith(MARK):
            event = json.loads(line[len(MARK) :])
            results[event["job"]] = event
    for key in keys:
        if key not in results:
            tail = "\n".join(done.stderr.strip().splitlines()[-8:])
            results[key] = {"ok": False, "error": f"nbgrader did not report {key}:\n{tail}"}
    return results


def _make_api(root: Path):
    from nbgrader.apps.api import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader(NBGRADER_CONFIG, path=str(root)).load_config()
    config.CourseDirectory.root = str(root)
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def main(argv: list[str]) -> int:
    root, *keys = argv
    api = _make_api(Path(root))
    for key in keys:
        start = time.time()
        try:
            result = api.generate_assignment(key, force=True, create=True)
            fields = {
                "ok": bool(result.get("success")),
                "log": result.get("log", ""),
                "error": result.get("error", ""),
            }
        except Exception:
            fields = {"ok": False, "error": traceback.format_exc(limit=3)}
        fields |= {"job": key, "seconds": time.time() - start}
        print(MARK + json.dumps(fields), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
