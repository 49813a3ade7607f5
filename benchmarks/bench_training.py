"""Training-step speed: tinytorch against numpy by hand and PyTorch, measured in one run.

Run from the repository root: `tinytorch-course bench training [--quick] [--profile]
[--threads N]` (or `python benchmarks/bench_training.py ...`).

One training step of an MLP 784-256-128-10 (ReLU) on a float32 batch of 128 (synthetic
data of MNIST's shape, seeded): zero the gradients, forward, cross-entropy loss,
backward, SGD with momentum 0.9 (PyTorch's rule: buf = 0.9 buf + grad, p -= lr buf).
Three implementations start from the same weights and see the same batches:

* tinytorch: `tinytorch.nn` + `tinytorch.optim.SGD`, the library under test;
* numpy by hand: the same network with its backward pass written out, in place where
  it can be: what a numpy engine cannot beat (the floor);
* PyTorch on CPU (columns skipped when torch is not installed).

Each repetition times a block of steps of each implementation in turn (the order
alternates). Ratios compare the fastest blocks, as `timeit` advises (on a shared
machine slower blocks measure the other processes), with the ratio of the medians
printed beside them. BLAS and torch use the same thread count
(`--threads`, default 1: on a small shared machine one thread gives stable numbers).
Goals (issue 5): tinytorch / numpy-by-hand <= 1.15 and tinytorch / PyTorch <= 1.5.
`--profile` adds cProfile's most expensive functions of the tinytorch step.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib.util
import io
import os
import platform
import pstats
import statistics
import sys
import time
from pathlib import Path

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
HAVE_THREADPOOLCTL = importlib.util.find_spec("threadpoolctl") is not None


def requested_threads(argv: list[str]) -> int:
    """`--threads N` from the command line, read before numpy loads its BLAS."""
    for index, value in enumerate(argv):
        if value == "--threads" and index + 1 < len(argv) and argv[index + 1].isdigit():
            return max(1, int(argv[index + 1]))
        if value.startswith("--threads=") and value.split("=", 1)[1].isdigit():
            return max(1, int(value.split("=", 1)[1]))
    return 1


if not HAVE_THREADPOOLCTL:  # the environment is the only handle, and only before import
    for _variable in THREAD_VARIABLES:
        os.environ[_variable] = str(requested_threads(sys.argv[1:]))

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZES = (784, 256, 128, 10)
BATCH = 128
LR, MOMENTUM = 0.01, 0.9
GOAL_NUMPY, GOAL_TORCH = 1.15, 1.5


# ------------------------------------------------------------------ shared inputs


def make_weights(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight (out, in), bias (out,)) per layer, float32, PyTorch's default U(±1/√in)."""
    rng = np.random.default_rng(seed)
    layers = []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:], strict=True):
        bound = 1.0 / np.sqrt(fan_in)
        weight = rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32)
        bias = rng.uniform(-bound, bound, fan_out).astype(np.float32)
        layers.append((weight, bias))
    return layers


def make_batches(count: int, seed: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """`count` batches of MNIST's shape: pixels in [0, 1) as float32, labels 0..9 as int64."""
    rng = np.random.default_rng(seed)
    return [
        (rng.random((BATCH, SIZES[0]), dtype=np.float32), rng.integers(0, 10, BATCH))
        for _ in range(count)
    ]


# ------------------------------------------------------------- the three trainers


class Trainer:
    """One implementation: `step(x, y)` runs a training step and returns the loss."""

    name: str

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        raise NotImplementedError

    def weights(self) -> list[np.ndarray]:
        raise NotImplementedError


class NumpyByHand(Trainer):
    """Forward and backward of the MLP written out in numpy; SGD with momentum in place."""

    name = "numpy by hand"

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]]):
        self.params = [a.copy() for layer in layers for a in layer]  # W1, b1, W2, b2, W3, b3
        self.buffers: list[np.ndarray | None] = [None] * len(self.params)

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        w1, b1, w2, b2, w3, b3 = self.params
        h1 = x @ w1.T
        h1 += b1
        a1 = np.maximum(h1, 0)
        h2 = a1 @ w2.T
        h2 += b2
        a2 = np.maximum(h2, 0)
        z = a2 @ w3.T
        z += b3
        # Stable cross-entropy: log-softmax with the row maximum subtracted.
        z -= z.max(axis=1, keepdims=True)
        exp = np.exp(z)
        sums = exp.sum(axis=1, keepdims=True)
        rows = np.arange(len(y))
        loss = float(np.mean(np.log(sums[:, 0]) - z[rows, y]))
        dz = exp
        dz /= sums
        dz[rows, y] -= 1
        dz /= len(y)
        grads = [None] * 6
        grads[4], grads[5] = dz.T @ a2, dz.sum(axis=0)
        da2 = dz @ w3
        da2 *= h2 > 0
        grads[2], grads[3] = da2.T @ a1, da2.sum(axis=0)
        da1 = da2 @ w2
        da1 *= h1 > 0
        grads[0], grads[1] = da1.T @ x, da1.sum(axis=0)
        for index, (param, grad) in enumerate(zip(self.params, grads, strict=True)):
            buffer = self.buffers[index]
            if buffer is None:
                buffer = self.buffers[index] = grad.copy()
            else:
                buffer *= MOMENTUM
                buffer += grad
            param -= LR * buffer
        return loss

    def weights(self) -> list[np.ndarray]:
        return self.params


class TinyTorch(Trainer):
    name = "tinytorch"

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]]):
        from tinytorch.autograd import Variable
        from tinytorch.nn import CrossEntropyLoss, Linear, ReLU, Sequential
        from tinytorch.optim import SGD

        linears = [Linear(w.shape[1], w.shape[0]) for w, _ in layers]
        for linear, (weight, bias) in zip(linears, layers, strict=True):
            linear.weight.data[...] = weight
            linear.bias.data[...] = bias
        self.model = Sequential(linears[0], ReLU(), linears[1], ReLU(), linears[2])
        self.loss_fn = CrossEntropyLoss()
        self.optimizer = SGD(self.model.parameters(), lr=LR, momentum=MOMENTUM)
        self.variable = Variable

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        self.optimizer.zero_grad()
        loss = self.loss_fn(self.model(self.variable(x)), y)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def weights(self) -> list[np.ndarray]:
        return [p.data for p in self.model.parameters()]


class Torch(Trainer):
    name = "PyTorch"

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]]):
        import torch

        self.torch = torch
        linears = [torch.nn.Linear(w.shape[1], w.shape[0]) for w, _ in layers]
        with torch.no_grad():
            for linear, (weight, bias) in zip(linears, layers, strict=True):
                linear.weight.copy_(torch.from_numpy(weight))
                linear.bias.copy_(torch.from_numpy(bias))
        self.model = torch.nn.Sequential(
            linears[0], torch.nn.ReLU(), linears[1], torch.nn.ReLU(), linears[2]
        )
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=LR, momentum=MOMENTUM)

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        self.optimizer.zero_grad()
        loss = self.loss_fn(self.model(self.torch.from_numpy(x)), self.torch.from_numpy(y))
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def weights(self) -> list[np.ndarray]:
        return [p.detach().numpy() for p in self.model.parameters()]


# ------------------------------------------------------------------- measuring


def seconds_per_step(trainer: Trainer, batches: list, steps: int) -> float:
    """Seconds per training step over `steps` steps, with the garbage collector paused
    (as `timeit` does) and run before the block."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        for index in range(steps):
            x, y = batches[index % len(batches)]
            trainer.step(x, y)
        return (time.perf_counter() - start) / steps
    finally:
        gc.enable()


def interleaved_samples(
    trainers: list[Trainer], batches: list, steps: int, repeats: int
) -> dict[str, list[float]]:
    """Seconds per step of each trainer in each repetition; the order alternates each
    repetition so drifts in machine load hit all alike."""
    samples: dict[str, list[float]] = {t.name: [] for t in trainers}
    for repeat in range(repeats):
        order = trainers if repeat % 2 == 0 else trainers[::-1]
        for trainer in order:
            samples[trainer.name].append(seconds_per_step(trainer, batches, steps))
    return samples


def ratio_line(label: str, mine: list[float], theirs: list[float], goal: float) -> str:
    """The ratio of the fastest blocks (as `timeit` advises: slower blocks are slowed by
    other processes, not by the code), with the ratio of the medians beside it."""
    ratio = min(mine) / min(theirs)
    medians = statistics.median(mine) / statistics.median(theirs)
    return (
        f"ratio {label}: {ratio:.3f} (goal <= {goal}: {verdict(ratio, goal)}) "
        f"[fastest blocks; medians give {medians:.3f}]"
    )


def agreement(trainers: list[Trainer], batches: list, steps: int = 3) -> str:
    """Run a few steps on fresh copies from the same weights and compare the losses: the
    three must be computing the same thing for the timing to mean anything."""
    losses = {t.name: [t.step(*batches[i % len(batches)]) for i in range(steps)] for t in trainers}
    reference = np.array(losses[NumpyByHand.name])
    worst = max(
        np.max(np.abs(np.array(v) - reference) / np.abs(reference)) for v in losses.values()
    )
    status = "ok" if worst < 1e-4 else "MISMATCH"
    shown = ", ".join(f"{name} {values[-1]:.6f}" for name, values in losses.items())
    return (
        f"same weights, same batches, loss after {steps} steps: {shown} "
        f"(max rel diff {worst:.1e}: {status})"
    )


def profile_tinytorch(layers, batches, steps: int, top: int = 18) -> str:
    trainer = TinyTorch(layers)
    seconds_per_step(trainer, batches, 5)  # warm up
    profiler = cProfile.Profile()
    profiler.enable()
    for index in range(steps):
        trainer.step(*batches[index % len(batches)])
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


# ---------------------------------------------------------------- environment


def configure_threads(threads: int) -> str:
    """Set numpy's BLAS and torch to `threads`; say how."""
    if HAVE_THREADPOOLCTL:
        from threadpoolctl import threadpool_limits

        configure_threads.limiter = threadpool_limits(limits=threads, user_api="blas")
        how = "numpy's BLAS limited with threadpoolctl"
    else:
        how = f"{'/'.join(THREAD_VARIABLES)}={threads} set before numpy was imported"
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(threads)
        how += f"; torch.set_num_threads({threads})"
    return how


def blas_report() -> list[str]:
    """Which BLAS library numpy runs, its version, kernel (architecture) and threads."""
    if HAVE_THREADPOOLCTL:
        from threadpoolctl import threadpool_info

        pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        return [
            f"BLAS: {p.get('internal_api')} {p.get('version')}, kernel {p.get('architecture')}, "
            f"{p.get('num_threads')} threads, threading {p.get('threading_layer')} "
            f"({p.get('filepath')})"
            for p in pools
        ] or ["BLAS: threadpoolctl found no BLAS library loaded by numpy"]
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        built = f"{blas.get('name')} {blas.get('version')}"
    except (TypeError, KeyError):
        built = "unknown"
    return [f"BLAS: {built} (kernel unknown: install threadpoolctl to see it)"]


def print_header(threads: int, how: str, have_torch: bool) -> None:
    print("training-step benchmark: MLP 784-256-128-10, batch 128 float32, SGD momentum 0.9")
    print(f"python {platform.python_version()} on {platform.platform()}")
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(f"cpus: {os.cpu_count()}, load average: {load}")
    print(f"numpy {np.__version__}")
    print("\n".join(blas_report()))
    for variable in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        print(f"{variable}={os.environ.get(variable, '(not set)')}")
    print(f"threads: {threads} ({how})")
    if have_torch:
        import torch

        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    else:
        print("torch not installed: skipping the PyTorch columns")
    print()


def verdict(ratio: float, goal: float) -> str:
    return "PASS" if ratio <= goal else "MISS"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few short repetitions (smoke test)")
    parser.add_argument("--profile", action="store_true", help="cProfile the tinytorch step")
    parser.add_argument("--threads", type=int, default=1, help="BLAS and torch threads (default 1)")
    parser.add_argument(
        "--repeats", type=int, default=None, help="repetitions (default 15, quick 3)"
    )
    args = parser.parse_args(argv)
    threads = max(1, args.threads)
    have_torch = importlib.util.find_spec("torch") is not None
    how = configure_threads(threads)
    print_header(threads, how, have_torch)

    try:
        TinyTorch(make_weights())
    except Exception as error:  # an unbuilt or unfinished package
        print(
            f"cannot build the tinytorch MLP ({type(error).__name__}: {error}); "
            "run `tinytorch-course build`"
        )
        return 1

    batches = make_batches(4)
    kinds: list[type[Trainer]] = [TinyTorch, NumpyByHand] + ([Torch] if have_torch else [])
    print(agreement([kind(make_weights()) for kind in kinds], batches))
    repeats = args.repeats or (3 if args.quick else 30)
    steps = 5 if args.quick else 10
    trainers = [kind(make_weights()) for kind in kinds]
    for trainer in trainers:  # warm up: first calls allocate buffers and fill caches
        seconds_per_step(trainer, batches, 3)
    samples = interleaved_samples(trainers, batches, steps, repeats)
    print(
        f"\nms per step, fastest / median block "
        f"({repeats} repetitions of {steps} steps, interleaved)"
    )
    for name, values in samples.items():
        print(f"  {name:<15}{min(values) * 1e3:8.3f} /{statistics.median(values) * 1e3:8.3f} ms")
    mine = samples[TinyTorch.name]
    print()
    print(ratio_line("tinytorch/numpy-by-hand", mine, samples[NumpyByHand.name], GOAL_NUMPY))
    if have_torch:
        print(ratio_line("tinytorch/PyTorch", mine, samples[Torch.name], GOAL_TORCH))
    if args.profile:
        profile_steps = 20 if args.quick else 200
        print(f"\ncProfile of {profile_steps} tinytorch steps, by own time (tottime):")
        print(profile_tinytorch(make_weights(), batches, profile_steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
