"""Autograd speed: tinytorch against PyTorch eager on CPU, measured in one run.

Run from the repository root: `tinytorch-course bench autograd [--quick] [--threads N]`
(or `python benchmarks/bench_autograd.py [--quick] [--threads N]`).

What it measures, interleaving tinytorch and torch repetitions and reporting medians:

1. forward+backward time per op, for chains of small-array ops (`y = y * c`,
   `y = y + c`, `y = tanh(y)`, of shape () and (100,)): the per-op overhead of the
   engine, which is what dominates small models;
2. backward time per node for chains of 10^3, 10^4 and 10^5 nodes: an engine whose
   backward is linear in the graph keeps this flat.

Goals (issue 3): tinytorch/torch per-op ratio <= 1.0; per-node backward time at 10^5
nodes within 1.5x of the time at 10^3.

Threads: when threadpoolctl is installed, torch is set to numpy's BLAS thread count
(or both to `--threads N`); otherwise both are set to 1 (environment variables for
numpy's BLAS, set before numpy is imported, and torch.set_num_threads(1)). The run
prints which. The numpy ops measured are too small to use BLAS threads, but torch may
split even a tanh of 100 floats across its threads, which on a busy machine costs far
more than it saves: `--threads 1` compares both single-threaded.
Garbage collection is paused inside each timed region (as `timeit` does); what a
timed region built is freed after the clock stops.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
HAVE_THREADPOOLCTL = importlib.util.find_spec("threadpoolctl") is not None
if not HAVE_THREADPOOLCTL:
    # Must happen before numpy (and its BLAS) is loaded.
    for _variable in THREAD_VARIABLES:
        os.environ[_variable] = "1"

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHAIN_OPS = ("mul", "add", "tanh")
CHAIN_SHAPES = ((), (100,))
BACKWARD_SIZES = (10**3, 10**4, 10**5)
PER_OP_GOAL = 1.0
PER_NODE_GOAL = 1.5


# ------------------------------------------------------------------ the two engines


class Engine:
    """How to make a leaf and how each op is written, for one library."""

    def __init__(self, name: str, leaf: Callable, ops: dict[str, Callable]) -> None:
        self.name = name
        self.leaf = leaf
        self.ops = ops


def chain_ops() -> dict[str, Callable]:
    """The same Python expressions work on a tinytorch Variable and a torch tensor."""
    return {
        "mul": lambda y: y * 1.0001,
        "add": lambda y: y + 0.001,
        "tanh": lambda y: y.tanh(),
    }


def tinytorch_engine() -> Engine:
    from tinytorch.autograd import Variable

    def leaf(shape: tuple[int, ...]):
        return Variable(np.full(shape, 0.5, dtype=np.float32), requires_grad=True)

    return Engine("tinytorch", leaf, chain_ops())


def torch_engine(threads: int) -> tuple[Engine | None, str]:
    try:
        import torch
    except ImportError:
        return None, "torch not installed: skipping the PyTorch columns"
    torch.set_num_threads(threads)

    def leaf(shape: tuple[int, ...]):
        return torch.full(shape, 0.5, dtype=torch.float32, requires_grad=True)

    return Engine("torch", leaf, chain_ops()), f"torch {torch.__version__}"


# ---------------------------------------------------------------------- measuring


def timed(run: Callable[[], object]) -> float:
    """Seconds taken by run(), with the garbage collector paused (as timeit does).
    What run() returns is freed only after the clock stops: teardown is not timed."""
    gc.disable()
    try:
        start = time.perf_counter()
        result = run()
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    del result
    return elapsed


def chain_forward_backward(engine: Engine, op: str, shape: tuple[int, ...], length: int) -> float:
    """Seconds per op for building a chain of `length` ops and backpropagating it."""
    step = engine.ops[op]

    def run():
        x = engine.leaf(shape)
        y = x
        for _ in range(length):
            y = step(y)
        (y.sum() if shape else y).backward()
        return x, y

    return timed(run) / length


def backward_only(engine: Engine, nodes: int) -> float:
    """Seconds per node of backward alone, on a prebuilt chain of `nodes` multiplications."""
    step = engine.ops["mul"]
    y = engine.leaf(())
    for _ in range(nodes):
        y = step(y)
    return timed(y.backward) / nodes


def interleaved_medians(
    engines: list[Engine], measure: Callable[[Engine], float], repeats: int
) -> dict[str, float]:
    """Median of `repeats` measurements per engine, alternating which engine goes first
    so that drifts in machine load hit both alike."""
    samples: dict[str, list[float]] = {e.name: [] for e in engines}
    for repeat in range(repeats):
        order = engines if repeat % 2 == 0 else list(reversed(engines))
        for engine in order:
            samples[engine.name].append(measure(engine))
    return {name: statistics.median(values) for name, values in samples.items()}


# ----------------------------------------------------------------------- reporting


def blas_description() -> str:
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except (TypeError, KeyError):
        return "unknown (numpy does not report its build configuration)"
    configuration = blas.get("openblas configuration", "")
    return f"{blas.get('name')} {blas.get('version')} {configuration}".strip()


def configure_threads(requested: int | None) -> tuple[int, str]:
    """The thread count both libraries use, and how it was chosen."""
    if not HAVE_THREADPOOLCTL:
        if requested not in (None, 1):
            raise SystemExit(
                "--threads other than 1 needs threadpoolctl (pip install threadpoolctl)"
            )
        return 1, "1 (threadpoolctl not installed: numpy's BLAS and torch both set to 1)"
    from threadpoolctl import threadpool_info, threadpool_limits

    if requested is not None:
        # Kept for the whole run: the limiter object must stay referenced.
        configure_threads.limiter = threadpool_limits(limits=requested, user_api="blas")
        return requested, f"{requested} (--threads; numpy's BLAS limited with threadpoolctl)"
    blas_pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    threads = blas_pools[0]["num_threads"] if blas_pools else 1
    return threads, f"{threads} (numpy's BLAS thread count, read with threadpoolctl)"


def print_header(threads_note: str, torch_note: str) -> None:
    print("autograd benchmark: tinytorch vs PyTorch eager (CPU), interleaved, medians")
    print(f"python {platform.python_version()} on {platform.platform()}")
    print(f"cpus: {os.cpu_count()}, load average: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"numpy {np.__version__}; BLAS: {blas_description()}")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(not set)')}")
    print(f"threads: {threads_note}")
    print(torch_note)
    print()


def microseconds(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e6:.2f}"


def verdict(ratio: float, goal: float) -> str:
    return f"goal <= {goal}: {'met' if ratio <= goal else 'NOT met'}"


def report_per_op(
    results: dict[tuple[str, tuple[int, ...]], dict[str, float]], length: int, repeats: int
) -> list[str]:
    print(f"forward+backward per op, chains of {length} ops, median of {repeats} repeats")
    print(f"{'op':<6}{'shape':<9}{'tinytorch us':>14}{'torch us':>11}{'ratio':>8}")
    ratio_lines = []
    for (op, shape), medians in results.items():
        mine, theirs = medians["tinytorch"], medians.get("torch")
        ratio = None if theirs is None else mine / theirs
        ratio_text = "-" if ratio is None else f"{ratio:.2f}"
        print(
            f"{op:<6}{str(shape):<9}{microseconds(mine):>14}{microseconds(theirs):>11}"
            f"{ratio_text:>8}"
        )
        if ratio is not None:
            ratio_lines.append(
                f"ratio tinytorch/torch per op, {op} {shape}: {ratio:.2f} "
                f"({verdict(ratio, PER_OP_GOAL)})"
            )
    print()
    return ratio_lines


def report_per_node(results: dict[int, dict[str, float]], repeats: dict[int, int]) -> list[str]:
    print("backward only, per node, chains of multiplications of shape ()")
    print(f"{'nodes':>8}{'repeats':>9}{'tinytorch us':>14}{'torch us':>11}")
    for nodes, medians in results.items():
        print(
            f"{nodes:>8}{repeats[nodes]:>9}{microseconds(medians['tinytorch']):>14}"
            f"{microseconds(medians.get('torch')):>11}"
        )
    print()
    smallest, largest = min(results), max(results)
    growth = results[largest]["tinytorch"] / results[smallest]["tinytorch"]
    return [
        f"ratio per-node backward {largest} / {smallest} nodes (tinytorch): {growth:.2f} "
        f"({verdict(growth, PER_NODE_GOAL)})"
    ]


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="few repeats (a smoke run; the figures are rough)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for both numpy's BLAS and torch (default: numpy's BLAS thread count)",
    )
    args = parser.parse_args(argv)
    chain_length = 300 if args.quick else 1000
    op_repeats = 3 if args.quick else 15
    node_repeats = {10**3: 3, 10**4: 1, 10**5: 1} if args.quick else {10**3: 15, 10**4: 7, 10**5: 5}

    threads, threads_note = configure_threads(args.threads)
    torch, torch_note = torch_engine(threads)
    print_header(threads_note, torch_note)
    try:
        engines = [tinytorch_engine()]
    except ImportError as error:
        print(f"cannot import tinytorch.autograd.Variable ({error}); run `tinytorch-course build`")
        return 1
    if torch is not None:
        engines.append(torch)

    per_op = {}
    for op in CHAIN_OPS:
        for shape in CHAIN_SHAPES:
            per_op[(op, shape)] = interleaved_medians(
                engines,
                lambda e, op=op, shape=shape: chain_forward_backward(e, op, shape, chain_length),
                op_repeats,
            )
    # --quick times per-node backward for tinytorch only: its goal is against itself,
    # and the torch column (context only) doubles the cost of building 10^5-node chains.
    node_engines = engines[:1] if args.quick else engines
    per_node = {
        nodes: interleaved_medians(
            node_engines, lambda e, n=nodes: backward_only(e, n), node_repeats[nodes]
        )
        for nodes in BACKWARD_SIZES
    }

    ratio_lines = report_per_op(per_op, chain_length, op_repeats)
    ratio_lines += report_per_node(per_node, node_repeats)
    print("\n".join(ratio_lines))
    if torch is not None and threads > 1:
        print(
            f"note: with {threads} threads torch may split even small ops (tanh of 100 floats) "
            "across threads, which costs much more than it saves on a busy machine; "
            "compare with --threads 1"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
