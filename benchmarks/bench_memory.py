"""Gradient checkpointing on a deep MLP: peak graph memory and step time, plain vs
`checkpoint_sequential`, measured in one process.

Two identical models (same seed) train side by side with Adam on the same batch:

- memory: one step each under tracemalloc, after a warm-up step, with the gradients
  zeroed in place (`zero_grad(set_to_none=False)`), so parameters, gradients and Adam's
  moments are all allocated before the baseline reading; the peak above that baseline
  is what the step adds: the graph held for backward plus backward's temporaries;
- time: steps alternate between the two models (interleaved, so drift and noise from
  other processes hit both), without tracemalloc; the ratio of the medians;
- gradients: compared with `np.array_equal` after the measured step (both models have
  taken the same steps, so their parameters are identical too).

Targets (full size only): checkpointed peak ≤ 35 % of the plain peak, step time ≤ 1.4×.
Usage: `tinytorch-course bench memory [--quick] [--repeats N]` (exit status 1 when a
target or the gradient identity fails).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import tracemalloc

import numpy as np

from tinytorch import nn, optim
from tinytorch.autograd import Variable
from tinytorch.memory import (
    checkpoint_sequential,
    memory_ledger,
    render_layout,
    render_ledgers,
    segment_bounds,
)

MEMORY_TARGET = 0.35
TIME_TARGET = 1.40


def make_mlp(depth: int, width: int, seed: int) -> nn.Sequential:
    """`depth` blocks, each `Sequential(Linear(width, width), ReLU())`, in float32,
    identical for the same seed; segments are counted in blocks."""
    rng = np.random.default_rng(seed)
    blocks = [
        nn.Sequential(nn.Linear(width, width, generator=rng, dtype=np.float32), nn.ReLU())
        for _ in range(depth)
    ]
    return nn.Sequential(*blocks)


class Trainer:
    """One model, its Adam optimizer, and how its forward pass runs (plain or checkpointed)."""

    def __init__(self, model: nn.Sequential, segments: int | None):
        self.model = model
        self.segments = segments
        self.optimizer = optim.Adam(model.parameters(), lr=1e-4)

    def loss(self, x: Variable, y: Variable) -> Variable:
        if self.segments is None:
            out = self.model(x)
        else:
            out = checkpoint_sequential(self.model, self.segments, x)
        return nn.mse_loss(out, y)

    def step(self, x: Variable, y: Variable) -> None:
        self.optimizer.zero_grad(set_to_none=False)
        self.loss(x, y).backward()
        self.optimizer.step()

    def measured_step(self, x: Variable, y: Variable):
        """One step under tracemalloc: peak bytes above the start, bytes held at the end of
        forward, and the ledger there."""
        self.optimizer.zero_grad(set_to_none=False)
        tracemalloc.start()
        try:
            baseline = tracemalloc.get_traced_memory()[0]
            loss = self.loss(x, y)
            after_forward = tracemalloc.get_traced_memory()[0] - baseline
            ledger = memory_ledger(loss, optimizer=self.optimizer)
            loss.backward()
            self.optimizer.step()
            peak = tracemalloc.get_traced_memory()[1] - baseline
        finally:
            tracemalloc.stop()
        return peak, after_forward, ledger


def interleaved_times(trainers: list[Trainer], x: Variable, y: Variable, repeats: int) -> list:
    """Step times per trainer; the order alternates each round."""
    times: list[list[float]] = [[] for _ in trainers]
    for round_ in range(repeats):
        order = range(len(trainers)) if round_ % 2 == 0 else reversed(range(len(trainers)))
        for index in order:
            start = time.perf_counter()
            trainers[index].step(x, y)
            times[index].append(time.perf_counter() - start)
    return times


def mib(nbytes: float) -> str:
    return f"{nbytes / 2**20:8.2f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 blocks of width 128, batch 64")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per model")
    args = parser.parse_args(argv)
    depth, width, batch = (8, 128, 64) if args.quick else (32, 512, 256)
    repeats = args.repeats or (3 if args.quick else 9)
    segments = round(math.sqrt(depth))
    sizes = [stop - start for start, stop in segment_bounds(depth, segments)]

    rng = np.random.default_rng(0)
    x = Variable(rng.standard_normal((batch, width)).astype(np.float32))
    y = Variable(rng.standard_normal((batch, width)).astype(np.float32))
    plain = Trainer(make_mlp(depth, width, seed=1), segments=None)
    ckpt = Trainer(make_mlp(depth, width, seed=1), segments=segments)
    print(
        f"bench memory: {depth} blocks (Linear {width}->{width} + ReLU), batch {batch}, float32, "
        f"Adam\ncheckpoint_sequential over the {depth} blocks: segments = round(sqrt({depth})) "
        f"= round({math.sqrt(depth):.2f}) = {segments}, segment sizes {sizes} blocks\n"
    )
    for trainer in (plain, ckpt):
        trainer.step(x, y)  # warm-up: allocates gradients and Adam's moments

    plain_peak, plain_held, plain_ledger = plain.measured_step(x, y)
    ckpt_peak, ckpt_held, ckpt_ledger = ckpt.measured_step(x, y)
    pairs = list(zip(plain.model.parameters(), ckpt.model.parameters(), strict=True))
    same_grads = all(np.array_equal(p.grad, q.grad) for p, q in pairs)

    times = interleaved_times([plain, ckpt], x, y, repeats)
    plain_time, ckpt_time = (statistics.median(t) for t in times)
    same_params = all(np.array_equal(p.data, q.data) for p, q in pairs)

    memory_ratio, time_ratio = ckpt_peak / plain_peak, ckpt_time / plain_time
    full = not args.quick
    memory_ok = memory_ratio <= MEMORY_TARGET or not full
    time_ok = time_ratio <= TIME_TARGET or not full
    verdict = {True: "ok", False: "FAIL"}
    target = "" if full else "   (targets apply to the full size only)"
    print("memory of a step above parameters + gradients + Adam state (tracemalloc):")
    print("                         end of forward   peak during the step")
    print(f"  plain                  {mib(plain_held)}     {mib(plain_peak)}")
    print(f"  checkpoint_sequential  {mib(ckpt_held)}     {mib(ckpt_peak)}")
    print(
        f"  ratio                  {memory_ratio:8.3f}    (of the peaks) "
        f"target <= {MEMORY_TARGET}  "
        f"{verdict[memory_ok]}{target}"
    )
    print(f"step time (median of {repeats} interleaved steps each):")
    print(f"  plain                  {plain_time * 1e3:8.1f} ms")
    print(f"  checkpoint_sequential  {ckpt_time * 1e3:8.1f} ms")
    print(
        f"  ratio                  {time_ratio:8.3f}    target <= {TIME_TARGET}  "
        f"{verdict[time_ok]}{target}"
    )
    print(
        f"gradients identical (np.array_equal, {len(pairs)} parameters): "
        f"{'yes' if same_grads else 'NO'}; parameters identical after "
        f"{repeats + 2} steps: {'yes' if same_params else 'NO'}\n"
    )
    print("ledgers at the end of the forward pass (what the graph holds for backward):\n")
    print(
        render_ledgers(
            [
                ("plain", plain_ledger, None),
                (f"checkpoint_sequential, {segments} segments", ckpt_ledger, None),
            ]
        )
    )
    print()
    print(
        render_layout(
            [("plain", plain_ledger), ("ckpt", ckpt_ledger)],
            f"End of forward: plain vs checkpoint_sequential ({segments} segments)",
        )
    )
    return 0 if (memory_ok and time_ok and same_grads and same_params) else 1


if __name__ == "__main__":
    sys.exit(main())
