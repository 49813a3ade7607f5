"""`tinytorch-course`: build, check, test and show the course.

Each command is a small function `cmd_NAME(project, args) -> int`; `COMMANDS` wires
them to argparse. Mistakes a user can make (an unknown module, a malformed source,
an edited notebook) raise `CourseError` and print as one line that says what to do.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable

from . import __version__
from .project import CourseError, Project


def cmd_build(project: Project, args) -> int:
    from .build import build

    build(project, force=args.force)
    return 0


def cmd_lint(project: Project, args) -> int:
    from .lint import lint

    problems = lint(project)
    for problem in problems:
        print(problem)
    print(
        f"{len(problems)} problems in {len(project.modules)} modules"
        if problems
        else f"lint: {len(project.modules)} modules clean"
    )
    return 1 if problems else 0


def cmd_modules(project: Project, args) -> int:
    from .build import out_of_sync

    for module in project.modules:
        print(f"{module.key:<14} {module.points:>5g} pts  {module.title}")
    if project.is_workspace:  # the notebooks are the sources; nbdev-export writes the package
        print("workspace: `nbdev-export` writes your notebooks' code to tinytorch/")
        return 0
    differences = out_of_sync(project)
    if differences:
        print("tinytorch/ is OUT OF SYNC with modules/:")
        print("\n".join(f"  {d}" for d in differences))
        return 1
    print("tinytorch/ is in sync with modules/")
    return 0


def cmd_test(project: Project, args) -> int:
    from .build import build, is_stale
    from .runner import LOCAL_SEED, format_result, pytest_files, run_module

    modules = project.select(args.module)
    if not project.is_workspace and is_stale(project):
        build(project)
    seed = LOCAL_SEED if args.seed is None else args.seed
    if seed != LOCAL_SEED:
        print(f"checks draw their inputs from seed {seed} (grade uses the course's secret)")
    failed = False
    for module in modules:
        print(f"{module.key}: running the notebook's test cells")
        result = run_module(project, module, seed=seed)
        print(format_result(result))
        failed |= not result.passed
        files = [] if args.notebook_only else pytest_files(project, module)
        if files:
            print(
                f"{module.key}: pytest {' '.join(str(f.relative_to(project.root)) for f in files)}"
            )
            command = [sys.executable, "-m", "pytest", "-q", *map(str, files)]
            failed |= subprocess.run(command, cwd=project.root).returncode != 0
    return 1 if failed else 0


def cmd_demo(project: Project, args) -> int:
    from .build import build, is_stale
    from .execute import kernel_env

    if is_stale(project):
        print(
            "your notebooks changed since the last export; exporting them to tinytorch/ first"
            if project.is_workspace
            else "modules changed since the last build; building first"
        )
        build(project)
    if args.what == "gpt":  # module 07: train a GPT on Shakespeare, print generated text
        command = [sys.executable, "-m", "tinytorch_course.demo_gpt", *args.rest]
    else:
        command = [
            sys.executable,
            "-m",
            "tinytorch_course.demo",
            *(["--no-training"] if args.no_training else []),
            *(["--cnn", *args.rest] if args.what == "cnn" else []),
        ]
    return subprocess.run(command, cwd=project.root, env=kernel_env(project)).returncode


def cmd_bench(project: Project, args) -> int:
    if project.is_workspace:
        raise CourseError(_bench_in_workspace(args.name))
    scripts = sorted((project.root / "benchmarks").glob("bench_*.py"))
    names = [s.stem.removeprefix("bench_") for s in scripts]
    if args.name not in names:
        raise CourseError(
            f"unknown benchmark {args.name!r}; the benchmarks are: {', '.join(names)}"
        )
    from .execute import kernel_env

    script = project.root / "benchmarks" / f"bench_{args.name}.py"
    return subprocess.run(
        [sys.executable, str(script), *args.rest], cwd=project.root, env=kernel_env(project)
    ).returncode


def _bench_in_workspace(name: str) -> str:
    """What to do instead: the benchmarks are scripts of the course repository."""
    from pathlib import Path

    course = Path(__file__).resolve().parents[1]
    where = f" ({course})" if (course / "benchmarks" / f"bench_{name}.py").is_file() else ""
    return (
        "the benchmarks are not part of a workspace: run "
        f"`tinytorch-course bench {name}` in the course repository{where}, where it "
        "measures the course's tinytorch package (your own code runs in "
        "`tinytorch-course demo`)"
    )


Command = Callable[[Project, argparse.Namespace], int]


def _parser() -> tuple[argparse.ArgumentParser, dict[str, Command]]:
    parser = argparse.ArgumentParser(prog="tinytorch-course", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands: dict[str, Command] = {}

    def add(name: str, func: Command, help: str) -> argparse.ArgumentParser:
        commands[name] = func
        return sub.add_parser(name, help=help, description=help)

    add("build", cmd_build, "modules/*/*.py -> notebooks -> tinytorch/ (lint first)").add_argument(
        "--force",
        action="store_true",
        help="regenerate notebooks even if edited (keeps a backup copy)",
    )
    add("lint", cmd_lint, "check every module source against the authoring rules")
    add("modules", cmd_modules, "list modules with titles and points; check tinytorch/ is in sync")
    test = add(
        "test",
        cmd_test,
        "run a module's notebook test cells (one line each), then its pytest files",
    )
    test.add_argument("module", nargs="?", help="module key, name or number (default: all)")
    test.add_argument("--notebook-only", action="store_true", help="skip the pytest files")
    test.add_argument(
        "--seed",
        type=int,
        help="draw the checks' inputs from this seed instead of 0, to try your solution on "
        "other inputs (grade draws from the course's secret seed)",
    )
    demo = add("demo", cmd_demo, "show the exported package at work (builds first if stale)")
    demo.add_argument(
        "--no-training",
        action="store_true",
        help="only the autograd trace, not the digits training run",
    )
    demo.add_argument(
        "what",
        nargs="?",
        choices=["cnn", "gpt"],
        help="cnn: module 06's CNN on the digits (cnn --fashion: on Fashion-MNIST); "
        "gpt: train module 07's GPT",
    )
    demo.add_argument("rest", nargs=argparse.REMAINDER, help="arguments passed to the demo")
    bench = add(
        "bench", cmd_bench, "run benchmarks/bench_NAME.py (prints ratios against baselines)"
    )
    bench.add_argument("name")
    bench.add_argument("rest", nargs=argparse.REMAINDER, help="arguments passed to the benchmark")
    for register in _extensions():
        register(add)
    return parser, commands


def _extensions():
    """`register(add)` functions of the command modules that exist in this install."""
    import importlib

    for name in ("assignments", "lab", "mistakes", "docs"):
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__package__}.{name}":
                raise
            continue
        yield module.register


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # never crash on a terminal that cannot show a box
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    parser, commands = _parser()
    args = parser.parse_args(argv)
    try:
        return commands[args.command](Project.find(), args)
    except CourseError as error:
        print(f"tinytorch-course {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
