"""The assignment loop's commands: `release`, `grade`, `workspace` (registered with the CLI).

- `release [MODULE] [--force]`: nbgrader's student version of one or all modules in
  `release/`, verified to hold no solution, hidden test or `.py` source (`release.py`).
- `grade [MODULE] [--no-sandbox]`: grade every `submitted/<student>/<module>/<notebook>.ipynb`
  in a sandbox, write and print the grade table, feedback HTML per submission (`grade.py`).
- `workspace DIR [--force]`: a student's own course folder built from the release, where
  their `nbdev-export` builds their own `tinytorch` (`workspace.py`).
"""

from __future__ import annotations

from pathlib import Path

from .project import Project


def cmd_release(project: Project, args) -> int:
    from .release import release

    made = release(project, args.module, force=args.force)
    if not made and not args.force:
        print("nothing generated: every selected release exists (use --force to regenerate)")
    return 0


def cmd_grade(project: Project, args) -> int:
    from .grade import grade, print_table

    table = grade(project, args.module, sandboxed=not args.no_sandbox, students=args.student)
    print_table(table)
    return 0


def cmd_workspace(project: Project, args) -> int:
    from .workspace import create_workspace

    create_workspace(project, Path(args.dir), force=args.force)
    return 0


def register(add) -> None:
    """Add this module's commands to the CLI (`add(name, func, help) -> subparser`)."""
    release = add(
        "release", cmd_release, "generate and verify the student release of modules (nbgrader)"
    )
    release.add_argument("module", nargs="?", help="module key, name or number (default: all)")
    release.add_argument("--force", action="store_true", help="regenerate an existing release")
    grade = add(
        "grade",
        cmd_grade,
        "grade submitted/<student>/<module>/*.ipynb in a sandbox; write grades/grades.csv",
    )
    grade.add_argument("module", nargs="?", help="module key, name or number (default: all)")
    grade.add_argument(
        "--student",
        action="append",
        metavar="NAME",
        help="grade only this student's submissions (repeat for more); the other rows of "
        "grades/grades.csv are kept",
    )
    grade.add_argument(
        "--no-sandbox",
        action="store_true",
        help="run submissions without bubblewrap, with your rights (they can then change "
        "the gradebook, grades and other files): only on a machine that holds nothing else",
    )
    workspace = add(
        "workspace", cmd_workspace, "create a student workspace (stubbed notebooks, own tinytorch)"
    )
    workspace.add_argument("dir", help="the folder to create")
    workspace.add_argument(
        "--force", action="store_true", help="overwrite existing notebooks (backed up)"
    )
