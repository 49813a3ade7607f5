"""GPT speed: a training step of module 07's GPT against PyTorch, and the KV cache.

Run from the repository root: `tinytorch-course bench gpt [--quick] [--threads N]
[--profile]` (or `python benchmarks/bench_gpt.py ...`).

1. One training step (zero grads, forward, cross-entropy, backward, AdamW) of the same
   GPT (4 layers, 4 heads, width 128, context 64, vocabulary 84, batch 16, float32),
   from the same weights on the same batches, in tinytorch and in PyTorch on CPU with
   the same number of threads (default 1). Blocks of steps alternate between the two;
   the ratio compares the fastest blocks (the ratio of medians beside it). Goal: <= 1.5.
   Measured twice in one process: first with glibc's malloc as the process starts (it
   returns freed memory to the OS, and tinytorch's next step pays about 25 000 page
   faults to get it back), then after `tinytorch.memory.keep_freed_memory()`
   (process-wide: both libraries allocate under it). The page faults of a step of each
   are printed. The generation speeds below are measured the same two ways.
2. Generation with and without the KV cache: tokens per second at two context lengths
   (a prompt filling the context to 64 and to 256 positions, then 16 new tokens), on a
   GPT with a context of 256, best of 5 alternating runs each. Goal: a speed-up >= 5 at
   the longer context.
3. Where tinytorch's step spends its time (cProfile, grouped, with the memory kept):
   matrix products, softmax, layer norm, GELU, embedding and loss, optimizer, and the rest
   (Python overhead of the graph). `--profile` adds the most expensive functions.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib.util
import io
import pstats
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HAVE_TORCH = importlib.util.find_spec("torch") is not None
VOCAB = 84


def configure_threads(threads: int) -> str:
    how = "numpy BLAS: threadpoolctl not installed (threads as the environment says)"
    if importlib.util.find_spec("threadpoolctl") is not None:
        from threadpoolctl import threadpool_limits

        configure_threads.limiter = threadpool_limits(limits=threads, user_api="blas")
        how = f"numpy BLAS limited to {threads} thread(s) by threadpoolctl"
    if HAVE_TORCH:
        import torch

        torch.set_num_threads(threads)
        how += f"; torch.set_num_threads({threads})"
    return how


def keep_memory() -> str:
    from tinytorch.memory import keep_freed_memory

    if keep_freed_memory():
        return "glibc keeps 256 MiB of freed memory (keep_freed_memory(), process-wide)"
    return "keep_freed_memory() is not available here (no glibc mallopt): defaults again"


def config(block_size: int = 64):
    from tinytorch.attention import GPTConfig

    return GPTConfig(vocab_size=VOCAB, block_size=block_size, n_layer=4, n_head=4, n_embd=128)


def batches(count: int, batch: int = 16, seed: int = 1) -> list:
    from tinytorch.attention import get_batch

    rng = np.random.default_rng(seed)
    data = rng.integers(0, VOCAB, size=100_000)
    return [get_batch(data, batch, 64, rng) for _ in range(count)]


class TinyStep:
    name = "tinytorch"

    def __init__(self):
        from tinytorch.attention import GPT, gpt_optimizer

        self.model = GPT(config(), seed=0)
        self.optimizer = gpt_optimizer(self.model, 1e-3)

    def state(self) -> dict:
        return self.model.state_dict()

    def step(self, x, y) -> float:
        self.model.zero_grad()
        loss = self.model(x, targets=y)
        loss.backward()
        self.optimizer.step()
        return loss.item()


def torch_gpt(cfg):
    import torch

    F = torch.nn.functional

    class Attention(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = torch.nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
            self.c_proj = torch.nn.Linear(cfg.n_embd, cfg.n_embd)

        def forward(self, x):
            B, T, C = x.shape
            H = cfg.n_head
            q, k, v = self.c_attn(x).split(C, dim=2)
            q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.c_proj(out.transpose(1, 2).reshape(B, T, C))

    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc = torch.nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
            self.c_proj = torch.nn.Linear(4 * cfg.n_embd, cfg.n_embd)

        def forward(self, x):
            return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.attn = torch.nn.LayerNorm(cfg.n_embd), Attention()
            self.ln_2, self.mlp = torch.nn.LayerNorm(cfg.n_embd), MLP()

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = torch.nn.Embedding(cfg.vocab_size, cfg.n_embd)
            self.wpe = torch.nn.Embedding(cfg.block_size, cfg.n_embd)
            self.blocks = torch.nn.ModuleList(Block() for _ in range(cfg.n_layer))
            self.ln_f = torch.nn.LayerNorm(cfg.n_embd)
            self.lm_head = torch.nn.Linear(cfg.n_embd, cfg.vocab_size)

        def forward(self, ids, targets):
            x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
            for block in self.blocks:
                x = block(x)
            logits = self.lm_head(self.ln_f(x))
            return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))

    return GPT()


class TorchStep:
    name = "PyTorch"

    def __init__(self, state: dict):
        import torch

        self.torch = torch
        self.model = torch_gpt(config())
        self.model.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
        decay = [p for p in self.model.parameters() if p.ndim >= 2]
        rest = [p for p in self.model.parameters() if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}]
        self.optimizer = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.99))

    def step(self, x, y) -> float:
        self.optimizer.zero_grad()
        loss = self.model(self.torch.from_numpy(x), self.torch.from_numpy(y))
        loss.backward()
        self.optimizer.step()
        return loss.item()


def faults_per_step(trainer, data: list) -> float:
    """Minor page faults (fresh pages the kernel handed over) per training step; NaN where
    the `resource` module is missing (Windows)."""
    try:
        import resource
    except ImportError:
        return float("nan")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for x, y in data:
        trainer.step(x, y)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / len(data)


def block_seconds(trainer, data: list) -> float:
    gc.collect()
    start = time.perf_counter()
    for x, y in data:
        trainer.step(x, y)
    return (time.perf_counter() - start) / len(data)


def training_ratio(repeats: int, steps: int) -> list[str]:
    data = batches(steps)
    mine = TinyStep()
    lines = []
    if not HAVE_TORCH:
        seconds = [block_seconds(mine, data) for _ in range(repeats)]
        return [f"tinytorch training step: {min(seconds) * 1e3:.1f} ms (PyTorch not installed)"]
    theirs = TorchStep(mine.state())
    first = [t.step(*data[0]) for t in (mine, theirs)]
    lines.append(f"first-step loss: tinytorch {first[0]:.6f}, PyTorch {first[1]:.6f}")
    samples = {"tinytorch": [], "PyTorch": []}
    for repeat in range(repeats):
        order = (mine, theirs) if repeat % 2 == 0 else (theirs, mine)
        for trainer in order:
            samples[trainer.name].append(block_seconds(trainer, data))
    faults = {t.name: faults_per_step(t, data) for t in (mine, theirs)}
    lines.append(
        f"page faults per step: tinytorch {faults['tinytorch']:.0f}, "
        f"PyTorch {faults['PyTorch']:.0f}"
    )
    best = {k: min(v) for k, v in samples.items()}
    median = {k: statistics.median(v) for k, v in samples.items()}
    lines.append(
        f"training step, batch 16 × 64, float32: tinytorch {best['tinytorch'] * 1e3:.1f} ms, "
        f"PyTorch {best['PyTorch'] * 1e3:.1f} ms"
    )
    ratio = best["tinytorch"] / best["PyTorch"]
    medians = median["tinytorch"] / median["PyTorch"]
    verdict = "met" if ratio <= 1.5 else "NOT met"
    lines.append(
        f"ratio tinytorch / PyTorch: {ratio:.2f} (median {medians:.2f})  goal <= 1.5: {verdict}"
    )
    return lines


def generation_speed(contexts: tuple[int, ...], new: int, repeats: int = 5) -> list[str]:
    from tinytorch.attention import GPT, generate

    model = GPT(config(block_size=max(contexts)), seed=0)
    lines = []
    for context in contexts:
        prompt = np.random.default_rng(0).integers(0, VOCAB, size=context - new)
        best = {False: float("inf"), True: float("inf")}
        for _ in range(repeats):  # alternating, so that a busy moment hits both
            for use_cache in (False, True):
                start = time.perf_counter()
                ids = generate(
                    model, prompt, new, generator=np.random.default_rng(1), use_cache=use_cache
                )
                best[use_cache] = min(best[use_cache], time.perf_counter() - start)
                assert len(ids) == context
        rates = {use_cache: new / seconds for use_cache, seconds in best.items()}
        speedup = rates[True] / rates[False]
        line = (
            f"generation to context {context}: {rates[False]:.0f} tokens/s without the cache, "
            f"{rates[True]:.0f} with it; ratio speed-up {speedup:.1f}×"
        )
        if context == max(contexts):
            line += f"  goal >= 5: {'met' if speedup >= 5 else 'NOT met'}"
        lines.append(line)
    return lines


GROUPS = (
    ("matrix products (Linear)", ("LinearFunction",)),
    ("matrix products (attention)", ("MatMul",)),
    ("softmax", ("Softmax",)),
    ("layer norm", ("LayerNormFunction",)),
    ("GELU", ("GELUFunction",)),
    ("embedding, cross-entropy", ("EmbeddingFunction", "CrossEntropy")),
    ("AdamW", ("optim.py",)),
)


def profile_step(steps: int, top: int) -> list[str]:
    mine = TinyStep()
    data = batches(steps, seed=3)
    mine.step(*data[0])
    profiler = cProfile.Profile()
    profiler.enable()
    for x, y in data:
        mine.step(x, y)
    profiler.disable()
    stats = pstats.Stats(profiler)
    totals = dict.fromkeys([name for name, _ in GROUPS] + ["Python overhead (graph, ops)"], 0.0)
    qualified = {}
    for (filename, line, function), (_, _, tottime, _, _) in stats.stats.items():
        qualified[(filename, line, function)] = tottime
    owners = _function_owners()
    for key, tottime in qualified.items():
        owner = owners.get((Path(key[0]).name, key[1]), Path(key[0]).name)
        group = next((name for name, marks in GROUPS if any(m == owner for m in marks)), None)
        totals[group or "Python overhead (graph, ops)"] += tottime
    total = sum(totals.values())
    per_step = total / steps * 1e3
    lines = [f"where tinytorch's step goes ({steps} steps, cProfile, {per_step:.0f} ms a step):"]
    for name, seconds in sorted(totals.items(), key=lambda item: -item[1]):
        lines.append(f"  {name:<32} {seconds / total:6.1%}")
    if top:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
        lines.append(out.getvalue())
    return lines


def _function_owners() -> dict:
    """(file name, first line) of every forward/backward -> the class that defines it;
    the optimizer's file counts as one owner."""
    import inspect

    import tinytorch.attention as attention
    import tinytorch.autograd as autograd
    import tinytorch.nn as nn
    import tinytorch.optim as optim

    owners = {}
    for module in (attention, autograd, nn):
        for name, cls in vars(module).items():
            if inspect.isclass(cls) and issubclass(cls, autograd.Function):
                for method in ("forward", "backward"):
                    fn = getattr(cls, method)
                    code = getattr(fn, "__code__", None)
                    if code is not None:
                        owners[(Path(code.co_filename).name, code.co_firstlineno)] = name
    for _, fn in inspect.getmembers(optim, inspect.isfunction):
        owners[(Path(fn.__code__.co_filename).name, fn.__code__.co_firstlineno)] = "optim.py"
    for _, cls in inspect.getmembers(optim, inspect.isclass):
        for _, fn in inspect.getmembers(cls, inspect.isfunction):
            code = fn.__code__
            if Path(code.co_filename).name == "optim.py":
                owners[(Path(code.co_filename).name, code.co_firstlineno)] = "optim.py"
    return owners


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tinytorch-course bench gpt", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="the most expensive functions")
    args = parser.parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(encoding="utf-8")
    print(configure_threads(args.threads))
    repeats, steps = (2, 2) if args.quick else (5, 5)
    contexts = (32, 64) if args.quick else (64, 256)
    for phase in ("glibc malloc as the process starts (freed memory goes back to the OS)", ""):
        print(f"\nmalloc: {phase or keep_memory()}")
        for line in training_ratio(repeats, steps):
            print(line, flush=True)
        for line in generation_speed(contexts, 8 if args.quick else 16, 2 if args.quick else 5):
            print(line, flush=True)
    print()
    for line in profile_step(2 if args.quick else 5, 20 if args.profile else 0):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
