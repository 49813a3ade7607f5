"""`demo`: the exported package at work.

Run by `tinytorch-course demo` in a fresh process whose `PYTHONPATH` starts with the
project root, so what it shows is the `tinytorch/` of this project, just exported.
"""

from __future__ import annotations

import argparse
import sys


def show_autograd() -> None:
    """The seed's worked example, f(x) = (x + 2) * 3 at x = 5, traced by the live engine."""
    from tinytorch.autograd import Variable, draw_graph, trace

    print("f(x) = (x + 2) * 3 at x = 5, computed by tinytorch.autograd\n")
    with trace():
        x = Variable(5.0, requires_grad=True, name="x")
        y = x + 2
        y.name = "y"
        z = y * 3
        z.name = "z"
        z.backward()
    print()
    print(draw_graph(z))
    print(
        f"\nx.grad = {x.grad.item():g}   (dz/dx = 3: the chain rule, computed, not derived by hand)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tinytorch-course demo")
    parser.add_argument("--no-training", action="store_true", help="only the autograd trace")
    args = parser.parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(encoding="utf-8")
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
