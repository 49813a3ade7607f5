"""The diagrams in module 03's markdown are re-rendered from the exported `tinytorch.optim`
(and from the formulas the text states) and must match the text character for character.

Run `python tests/test_optim_diagrams.py` to print the current renderings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from marked import marked_block

from tinytorch.autograd import Variable
from tinytorch.nn import Linear, ReLU, Sequential, cross_entropy
from tinytorch.optim import SGD, Adam, AdamW, memory_table

SOURCE = Path(__file__).resolve().parents[1] / "modules" / "03_optim" / "optim.py"


def prose() -> str:
    """The module's text with comment markers removed and lines joined."""
    lines = SOURCE.read_text(encoding="utf-8").splitlines()
    return " ".join(line.lstrip("# ") for line in lines)


def mlp() -> Sequential:
    rng = np.random.default_rng(0)
    return Sequential(
        Linear(784, 256, generator=rng),
        ReLU(),
        Linear(256, 128, generator=rng),
        ReLU(),
        Linear(128, 10, generator=rng),
    )


MEMORY_OPTIMIZERS = {
    "SGD": lambda ps: SGD(ps, lr=0.1),
    "SGD(momentum=0.9)": lambda ps: SGD(ps, lr=0.1, momentum=0.9),
    "Adam": lambda ps: Adam(ps),
    "Adam(amsgrad=True)": lambda ps: Adam(ps, amsgrad=True),
    "AdamW": lambda ps: AdamW(ps),
}


def render_memory_table() -> str:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((128, 784)).astype(np.float32)
    y = rng.integers(0, 10, 128)
    optimizers = {}
    for label, make in MEMORY_OPTIMIZERS.items():
        model = mlp()
        optimizer = make(model.parameters())
        cross_entropy(model(x), y).backward()
        optimizer.step()
        optimizers[label] = optimizer
    return memory_table(optimizers)


def render_adam_trace() -> str:
    p = Variable(np.array([1.0]), requires_grad=True)
    optimizer = Adam([p], lr=0.1)
    beta1, beta2 = 0.9, 0.999
    lines = []
    for t in range(1, 4):
        before = p.data[0]
        p.grad = 2 * p.data
        optimizer.step()
        state = optimizer.state[p]
        m, v = state["exp_avg"][0], state["exp_avg_sq"][0]
        m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
        lines.append(
            f"t={t}  g={p.grad[0]:.6f}  m={m:.6f}  v={v:.6f}  m̂={m_hat:.6f}  v̂={v_hat:.6f}  "
            f"p: {before:.6f} -> {p.data[0]:.6f}"
        )
    return "\n".join(lines)


def test_memory_table_is_measured_from_live_optimizers():
    assert marked_block(SOURCE, "memory:mlp") == render_memory_table()
    parameters = mlp().parameters()
    count = sum(p.data.size for p in parameters)
    nbytes = sum(p.data.nbytes for p in parameters)
    assert f"float32, {count:,} parameters, {nbytes:,} bytes" in prose()


def test_adam_trace_is_what_adam_does():
    assert marked_block(SOURCE, "trace:adam") == render_adam_trace()


if __name__ == "__main__":
    for render in (render_memory_table, render_adam_trace):
        print(render(), end="\n\n")
