"""`tinytorch-course demo gpt`: train module 07's GPT on Shakespeare with a progress bar,
print its learning curve and the text it generates.

The default run is the full one: a GPT of 4 layers, 4 heads, width 128 and context 64,
trained for at most 10 minutes (`--minutes`), which reaches a validation loss below 2.0
nats per character on a 2-core machine. `--steps 60 --small` is a quick look.
"""

from __future__ import annotations

import argparse
import sys
import time


def show_gpt(
    steps: int = 900,
    minutes: float = 10.0,
    batch_size: int = 16,
    lr: float = 3e-3,
    small: bool = False,
    seed: int = 0,
    progress: bool = True,
) -> float:
    """Train, show the curve and a sample; returns the final validation loss."""
    import numpy as np

    from tinytorch.attention import CharTokenizer, GPTConfig, generate, load_shakespeare, train_gpt
    from tinytorch.training import ascii_chart, progress_bar

    from .demo_training import one_blas_thread

    text = load_shakespeare()
    vocab = CharTokenizer(text).vocab_size
    if small:
        config = GPTConfig(vocab_size=vocab, block_size=32, n_layer=2, n_head=2, n_embd=64)
    else:
        config = GPTConfig(vocab_size=vocab, block_size=64, n_layer=4, n_head=4, n_embd=128)
    print(
        f"GPT on Shakespeare ({len(text):,} characters, vocabulary {vocab}): {config.n_layer} "
        f"layers, {config.n_head} heads, width {config.n_embd}, context {config.block_size}; "
        f"batch {batch_size}, AdamW lr {lr:g}, at most {steps} steps or {minutes:g} minutes"
    )
    bar = progress_bar(steps, desc="training GPT", enabled=progress)

    def report(step: int, total: int, loss: float) -> None:
        if bar is not None:
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix_str(f"loss {loss:.3f}")

    with one_blas_thread():
        run = train_gpt(
            config,
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            eval_every=max(1, min(100, steps // 5)),
            max_seconds=minutes * 60,
            seed=seed,
            text=text,
            progress=report,
        )
        if bar is not None:
            bar.close()
        params = sum(p.data.size for p in run.model.parameters())
        print(f"\n{params:,} parameters, {run.steps[-1]} steps in {run.seconds:.0f} s")
        for step, train, val in zip(run.steps, run.train_loss, run.val_loss, strict=True):
            print(f"  step {step:>5}: train loss {train:.3f}   validation loss {val:.3f}")
        print()
        print(
            ascii_chart(
                {"train": run.train_loss, "validation": run.val_loss},
                title="loss (nats per character) at each evaluation",
                x_label="evaluation",
            )
        )
        prompt = run.tokenizer.encode("ROMEO:\n")
        start = time.perf_counter()
        ids = generate(
            run.model, prompt, 300, temperature=0.8, top_k=20, generator=np.random.default_rng(seed)
        )
        seconds = time.perf_counter() - start
    print(f"\n300 characters generated in {seconds:.1f} s with the KV cache:\n")
    print(run.tokenizer.decode(ids))
    return run.val_loss[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tinytorch-course demo gpt", description=__doc__)
    parser.add_argument("--steps", type=int, default=900)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--small", action="store_true", help="2 layers of width 64, context 32")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(encoding="utf-8")
    show_gpt(
        args.steps,
        args.minutes,
        args.batch_size,
        args.lr,
        args.small,
        progress=not args.no_progress,
    )
    return 0


if __name__ == "__main__":
    from .demo import unfinished

    try:
        sys.exit(main())
    except NotImplementedError as error:
        print(f"tinytorch-course demo gpt: {unfinished(error)}", file=sys.stderr)
        sys.exit(1)
