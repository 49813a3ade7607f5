"""`demo`: the exported package at work.

Run by `tinytorch-course demo` in a fresh process whose `PYTHONPATH` starts with the
project root, so what it shows is the `tinytorch/` of this project, just exported.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path


def show_autograd() -> None:
    """The seed's worked example, f(x) = (x + 2) * 3 at x = 5, traced by the live engine:
    each line of code beside what autograd does for it, then the graph both ways."""
    from tinytorch.autograd import Variable
    from tinytorch.viz import draw_graph, explain

    print("f(x) = (x + 2) * 3 at x = 5, computed by tinytorch.autograd\n")
    print(explain("y = x + 2\nz = y * 3\nz.backward()", x=5.0))
    x = Variable(5.0, requires_grad=True, name="x")
    z = (x + 2) * 3
    z.backward(retain_graph=True)
    print("\nForward pass (the graph autograd recorded):\n")
    print(draw_graph(z, names={"z": z}))
    print("\nBackward pass (gradients flowing back):\n")
    print(draw_graph(z, backward=True, names={"z": z}))
    print(f"\nx.grad = {x.grad.item():g}")


def unfinished(error: NotImplementedError) -> str:
    """One line for a demo that reached a part of the package still to be written: the
    file and function that raised, and what to do."""
    frame = traceback.extract_tb(error.__traceback__)[-1]
    where = Path(frame.filename)
    place = f"{where.parent.name}/{where.name}" if where.parent.name == "tinytorch" else where
    return (
        f"the demo needs a part of your package that is not written yet: {frame.name} in "
        f"{place} raised NotImplementedError ({error}). Finish that module's notebook, "
        "then run the demo again (it exports your notebooks first)"
    )


def main(argv: list[str] | None = None) -> int:
    try:
        return run(argv)
    except NotImplementedError as error:
        print(f"tinytorch-course demo: {unfinished(error)}", file=sys.stderr)
        return 1


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tinytorch-course demo")
    parser.add_argument("--no-training", action="store_true", help="only the autograd trace")
    parser.add_argument("--cnn", action="store_true", help="only the module 06 CNN on digits")
    parser.add_argument("--fashion", action="store_true", help="with --cnn: on Fashion-MNIST")
    parser.add_argument("--epochs", type=int, default=4, help="with --fashion: epochs")
    parser.add_argument("--limit", type=int, default=None, help="with --fashion: train images")
    args = parser.parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(encoding="utf-8")
    if args.cnn and args.fashion:
        from .demo_cnn import show_fashion

        show_fashion(epochs=args.epochs, limit=args.limit)
        return 0
    if args.cnn:
        from .demo_cnn import show_cnn

        show_cnn()
        return 0
    show_autograd()
    if not args.no_training:
        try:
            from .demo_training import show_training
        except ModuleNotFoundError:
            return 0
        print()
        show_training()
    return 0


if __name__ == "__main__":
    sys.exit(main())
