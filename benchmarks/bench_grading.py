"""How long `grade` takes per notebook with every submission sandboxed, and where it goes.

In a temporary copy of the course: release one module, submit N copies of its reference
solution (default 30), and time `grade MODULE` (sandbox on: bubblewrap, own uid, cgroup
limits; then the trusted judge, gradebook and feedback) with 1 and 2 workers. The
baseline, measured in the same run, is plain execution of the same notebook with nbclient
in this process (what `test` does, without recording or judging). Also printed: where a
notebook's time goes (sandbox start and Python start-up inside it, kernel start, cell
execution, judge, feedback page, gradebook), averaged over the class.

    python benchmarks/bench_grading.py [--students 30] [--workers 1 2] [--module 01]
"""

from __future__ import annotations

import argparse
import configparser
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tinytorch_course.build import module_notebook
from tinytorch_course.execute import execute, kernel_env
from tinytorch_course.grade import grade
from tinytorch_course.project import Project
from tinytorch_course.release import release, released_notebook

ROOT = Path(__file__).resolve().parents[1]
COURSE = ("settings.ini", "pyproject.toml", "nbgrader_config.py")
FOLDERS = ("modules", "tinytorch", "tinytorch_datasets")
STAGES = ("sandbox start", "kernel start", "execution", "judge", "feedback", "gradebook")


def copy_course(target: Path) -> Project:
    for name in COURSE:
        shutil.copy2(ROOT / name, target / name)
    ignore = shutil.ignore_patterns("*.ipynb", "__pycache__", ".ipynb_checkpoints")
    for name in FOLDERS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, target / name, ignore=ignore)
    return Project(target)


def set_workers(root: Path, workers: int) -> None:
    settings = configparser.ConfigParser()
    settings.read(root / "settings.ini", encoding="utf-8")
    settings.set("grading", "workers", str(workers))
    with (root / "settings.ini").open("w", encoding="utf-8") as handle:
        settings.write(handle)


def solved(project: Project, module) -> dict:
    """The release notebook with the reference solution cells: a student who solved it."""
    reference = {
        c.metadata.get("nbgrader", {}).get("grade_id"): c.source
        for c in module_notebook(module).cells
    }
    notebook = json.loads(released_notebook(project, module).read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution"):
            cell["source"] = reference[meta["grade_id"]]
    return notebook


def plain_execution_seconds(project: Project, module, notebook: dict) -> float:
    import nbformat

    nb = nbformat.reads(json.dumps(notebook), as_version=4)
    start = time.perf_counter()
    execute(nb, str(module.folder), kernel_env(project))
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare"
    )
    parser.add_argument(
        "--module", default=None, help="module key, name or number (default: the first)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tinytorch-bench-grading-") as tmp:
        project = copy_course(Path(tmp))
        module = project.module(args.module) if args.module else project.modules[0]
        start = time.perf_counter()
        release(project, module.key, log=lambda *_: None)
        released = time.perf_counter() - start
        notebook = solved(project, module)
        for index in range(args.students):
            path = project.root / "submitted" / f"s{index:03d}" / module.key / module.notebook.name
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps(notebook), encoding="utf-8")
        baseline = plain_execution_seconds(project, module, notebook)
        print(f"module {module.key}: release {released:.1f}s")
        print(f"plain nbclient execution (baseline): {baseline:.2f}s per notebook")
        full = True
        for workers in args.workers:
            set_workers(project.root, workers)
            project = Project(project.root)  # re-read settings.ini
            start = time.perf_counter()
            rows = grade(project, module.key, log=lambda *_: None)
            total = time.perf_counter() - start
            full &= all(row.score == module.points for row in rows) and len(rows) == args.students
            per = total / args.students
            print(
                f"grade {args.students} submissions, sandboxed, {workers} worker(s): "
                f"{total:.1f}s total, {per:.2f}s per notebook ({per / baseline:.1f}x the baseline)"
            )
            spent = {
                stage: sum(r.timings.get(stage, 0.0) for r in rows) / len(rows) for stage in STAGES
            }
            print("  per notebook: " + ", ".join(f"{k} {v:.2f}s" for k, v in spent.items()))
        print("every submission scored full marks" if full else "SOME SUBMISSIONS LOST POINTS")
    return 0 if full else 1


if __name__ == "__main__":
    sys.exit(main())
