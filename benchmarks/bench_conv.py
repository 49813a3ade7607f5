"""Conv2d speed: tinytorch against the same im2col by hand in numpy and PyTorch, one run.

Run from the repository root: `tinytorch-course bench conv [--quick] [--threads N]
[--profile]` (or `python benchmarks/bench_conv.py ...`).

Forward + backward (gradients of input, weight and bias) of one `Conv2d`, 3×3, padding
1, float32, on two layer sizes:

* LeNet/CIFAR first layer: x (32, 3, 32, 32) -> 16 channels;
* a middle layer:          x (64, 16, 16, 16) -> 32 channels.

Three implementations see the same arrays: `tinytorch.conv.Conv2d` (the library under
test); the same im2col / matmul / tap-by-tap col2im written inline with numpy and no autograd
(the floor a numpy engine cannot beat); `torch.nn.functional.conv2d` on CPU. Repetitions
alternate the implementations and ratios compare the fastest repetitions (`timeit`'s
advice on a shared machine), with the median ratio beside them. BLAS and torch get the
same thread count (`--threads`, default 1). Goals (issue 11): tinytorch / numpy by hand
<= 1.2, tinytorch / PyTorch <= 2. `--profile` times the stages of the hand-written
version (where the time goes) and lists cProfile's top functions of the tinytorch step.

Memory: glibc's malloc gives freed memory at the top of its heap back to the kernel, and
the next step's arrays page-fault it in again (the kernel zeroes every 4 KiB page).
Whether that happens to a given array depends on what the heap held before, so the
same code measured 5 ms in one process and 13 ms in another. The benchmark therefore
runs twice in one process: first with the C library's defaults (what `import tinytorch`
gets), then after `tinytorch.memory.keep_freed_memory()` (module 05), which asks glibc,
process-wide and for all three implementations alike, to keep freed memory for reuse
(what PyTorch's CPU tuning guide gets by preloading jemalloc or tcmalloc). The minor
page faults per step are printed beside the times. `--malloc system` or `--malloc keep`
runs one of the two.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import io
import os
import pstats
import resource
import statistics
import sys
import time
from pathlib import Path

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def requested_threads(argv: list[str]) -> int:
    """`--threads N` from the command line, read before numpy loads its BLAS."""
    for index, value in enumerate(argv):
        if value == "--threads" and index + 1 < len(argv) and argv[index + 1].isdigit():
            return max(1, int(argv[index + 1]))
        if value.startswith("--threads=") and value.split("=", 1)[1].isdigit():
            return max(1, int(value.split("=", 1)[1]))
    return 1


for _variable in THREAD_VARIABLES:  # before numpy loads OpenBLAS
    os.environ[_variable] = str(requested_threads(sys.argv[1:]))

import numpy as np  # noqa: E402
from numpy.lib.stride_tricks import sliding_window_view  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tinytorch.autograd import Variable  # noqa: E402
from tinytorch.conv import Conv2d  # noqa: E402

HAVE_TORCH = importlib.util.find_spec("torch") is not None
LAYERS = [("LeNet/CIFAR 1st", (32, 3, 32, 32), 16), ("middle", (64, 16, 16, 16), 32)]


def by_hand(x, weight, bias, grad_output, stages: dict | None = None):
    """im2col forward and tap-by-tap col2im backward of a 3×3, padding 1, stride 1 conv."""
    clock = time.perf_counter
    t0 = clock()
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = sliding_window_view(padded, (kh, kw), axis=(2, 3))
    cols = windows.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, h * w)
    t1 = clock()
    out = weight.reshape(o, -1) @ cols
    out += bias[:, None]
    out = out.reshape(n, o, h, w)
    t2 = clock()
    g = grad_output.reshape(n, o, h * w)
    grad_weight = (g @ cols.transpose(0, 2, 1)).sum(axis=0).reshape(weight.shape)
    grad_bias = g.sum(axis=(0, 2))
    t3 = clock()
    grad_padded = np.zeros((n, c, h + 2, w + 2), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            tap_grad = (weight[:, :, i, j].T @ g).reshape(n, c, h, w)
            grad_padded[:, :, i : i + h, j : j + w] += tap_grad
    grad_x = np.ascontiguousarray(grad_padded[:, :, 1 : 1 + h, 1 : 1 + w])
    t4 = clock()
    if stages is not None:
        for name, seconds in [
            ("pad + im2col copy", t1 - t0),
            ("forward matmul", t2 - t1),
            ("weight and bias gradients", t3 - t2),
            ("input gradient (9 taps)", t4 - t3),
        ]:
            stages[name] = stages.get(name, 0.0) + seconds  # fmt: skip
    return out, grad_x, grad_weight, grad_bias


def tinytorch_step(layer: Conv2d, x, grad_output):
    xv = Variable(x, requires_grad=True)
    layer.zero_grad()
    out = layer(xv)
    out.backward(grad_output)
    return out.data, xv.grad, layer.weight.grad, layer.bias.grad


def make_torch_step(torch, weight, bias):
    tw = torch.tensor(weight, requires_grad=True)
    tb = torch.tensor(bias, requires_grad=True)

    def step(x, grad_output):
        tx = torch.from_numpy(x).requires_grad_()
        tw.grad = tb.grad = None
        out = torch.nn.functional.conv2d(tx, tw, tb, padding=1)
        out.backward(torch.from_numpy(grad_output))
        return out.detach().numpy(), tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy()

    return step


def keep_freed_memory() -> str:
    """Call `tinytorch.memory.keep_freed_memory()`; what was done, in words."""
    try:
        from tinytorch.memory import keep_freed_memory as keep
    except ImportError:
        return ""
    if not keep():
        return ""
    return "tinytorch.memory.keep_freed_memory() (glibc keeps freed memory, process-wide)"


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def best_and_median(samples: dict[str, list[float]], a: str, b: str) -> tuple[float, float]:
    ratios = [x / y for x, y in zip(samples[a], samples[b], strict=False)]
    return min(samples[a]) / min(samples[b]), statistics.median(ratios)


def run_layer(label, shape, out_channels, repeats, steps, torch, profile) -> list[str]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    layer = Conv2d(shape[1], out_channels, 3, padding=1, generator=rng)
    weight, bias = layer.weight.data, layer.bias.data
    grad_output = rng.standard_normal((shape[0], out_channels, *shape[2:])).astype(np.float32)
    steps_of = {
        "tinytorch": lambda: tinytorch_step(layer, x, grad_output),
        "numpy by hand": lambda: by_hand(x, weight, bias, grad_output),
    }
    if torch is not None:
        torch_step = make_torch_step(torch, weight, bias)
        steps_of["PyTorch"] = lambda: torch_step(x, grad_output)
    results = {name: step() for name, step in steps_of.items()}  # warm-up and agreement
    reference = results["numpy by hand"]
    worst = max(
        float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-30))
        for name, got in results.items()
        for a, b in zip(got, reference, strict=False)
    )
    samples: dict[str, list[float]] = {name: [] for name in steps_of}
    faults = dict.fromkeys(steps_of, 0)
    for repeat in range(repeats):
        order = list(steps_of) if repeat % 2 == 0 else list(reversed(steps_of))
        for name in order:
            before = minor_faults()
            start = time.perf_counter()
            for _ in range(steps):
                steps_of[name]()
            samples[name].append((time.perf_counter() - start) / steps)
            faults[name] += minor_faults() - before
    lines = [f"{label}: x {shape} -> {out_channels} channels, 3×3, padding 1, float32"]
    lines.append(f"  agreement: max relative difference {worst:.1e} "
                 f"({'ok' if worst < 1e-4 else 'DIFFER'})")  # fmt: skip
    for name, times in samples.items():
        lines.append(f"  {name:<14} best {min(times) * 1e3:8.2f} ms   "
                     f"median {statistics.median(times) * 1e3:8.2f} ms   "
                     f"page faults/step {faults[name] / (repeats * steps):7.1f}")  # fmt: skip
    for other, goal in [("numpy by hand", 1.2), ("PyTorch", 2.0)]:
        if other in samples:
            best, median = best_and_median(samples, "tinytorch", other)
            verdict = "meets" if best <= goal else "MISSES"
            lines.append(f"  tinytorch / {other:<14} {best:5.2f}x (median {median:.2f}x), "
                         f"goal <= {goal}: {verdict}")  # fmt: skip
    if profile:
        stages: dict[str, float] = {}
        for _ in range(steps):
            by_hand(x, weight, bias, grad_output, stages)
        total = sum(stages.values())
        lines.append("  where the hand-written step spends its time:")
        lines += [f"    {k:<26} {v / total:6.1%}" for k, v in stages.items()]
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(steps):
            tinytorch_step(layer, x, grad_output)
        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(8)
        body = [ln for ln in text.getvalue().splitlines() if ln.strip()][-9:]
        lines.append("  cProfile of the tinytorch step (top 8 by own time):")
        lines += ["    " + ln.strip()[:92] for ln in body]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="BLAS and torch threads")
    parser.add_argument("--quick", action="store_true", help="few repetitions (a smoke run)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--malloc", choices=["both", "system", "keep"], default="both",
                        help="system: the C library's defaults; keep: after "
                        "keep_freed_memory(); both: one, then the other")  # fmt: skip
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 7)
    steps = 1 if args.quick else 3
    torch = None
    if HAVE_TORCH:
        import torch

        torch.set_num_threads(args.threads)
    print(f"threads: {args.threads} ({'/'.join(THREAD_VARIABLES)} before numpy; "
          f"torch.set_num_threads)")  # fmt: skip
    print(f"numpy {np.__version__}" + (
        f", torch {torch.__version__} (oneDNN/mkldnn: {torch.backends.mkldnn.is_available()})"
        if torch is not None else ", torch not installed: PyTorch columns skipped"
    ))  # fmt: skip
    modes = ["system", "keep"] if args.malloc == "both" else [args.malloc]
    for mode in modes:
        if mode == "keep":
            how = keep_freed_memory()
            if not how:
                print("\nmalloc: tinytorch.memory.keep_freed_memory() is not available "
                      "(no glibc, or module 05 not exported): kept-memory run skipped")  # fmt: skip
                continue
            print(f"\n=== malloc: {how} ===")
        else:
            print("\n=== malloc: the C library's defaults ===")
        for label, shape, out_channels in LAYERS:
            print()
            print("\n".join(run_layer(label, shape, out_channels, repeats, steps, torch,
                                      args.profile)))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
