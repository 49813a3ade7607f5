"""The diagrams in module 02's markdown are re-rendered from the exported `tinytorch.nn`
(and from the formulas the text states) and must match the text character for character.

Run `python tests/test_nn_diagrams.py` to print the current renderings when the module
changes on purpose.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from marked import marked_block

from tinytorch.autograd import Variable
from tinytorch.nn import Linear, ReLU, Sequential, box_table, cross_entropy, describe

SOURCE = Path(__file__).resolve().parents[1] / "modules" / "02_nn" / "nn.py"


def render_mlp_table() -> str:
    model = Sequential(Linear(784, 256), ReLU(), Linear(256, 128), ReLU(), Linear(128, 10))
    return describe(model, (128, 784))


def _vector(values: np.ndarray, digits: int) -> str:
    return "[" + ", ".join(f"{v:.{digits}f}" for v in values) + "]"


def render_cross_entropy_trace() -> str:
    z = np.array([2.0, 1.0, 0.1])
    m = z.max()
    e = np.exp(z - m)
    s = e.sum()
    log_softmax = z - m - np.log(s)
    softmax = np.exp(log_softmax)
    grad = softmax - np.eye(3)[0]
    big = np.array([1000.0, 0.0, -1000.0])
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        naive = np.exp(big)
        naive_loss = -np.log(naive[1] / naive.sum())
    shifted_loss = -(big[1] - big.max() - np.log(np.exp(big - big.max()).sum()))
    lines = [
        f"logits z = {_vector(z, 1)}, target class 0",
        "",
        f"  m = max(z)                    = {m:.1f}",
        f"  z - m                         = {_vector(z - m, 1)}",
        f"  exp(z - m)                    = [{e[0]:.1f}, {e[1]:.6f}, {e[2]:.6f}]",
        f"  s = sum(exp(z - m))           = {s:.6f}",
        f"  log_softmax = z - m - log(s)  = {_vector(log_softmax, 6)}",
        f"  loss = -log_softmax[0]        = {-log_softmax[0]:.6f}",
        "",
        "Backward: ∂loss/∂z = softmax(z) - onehot(target)",
        f"  softmax = exp(log_softmax)    = {_vector(softmax, 6)}",
        f"  ∂loss/∂z                      = {_vector(grad, 6)}",
        "",
        f"logits z = {_vector(big, 1)}, target class 1",
        f"  naive: exp(z) = [{naive[0]}, {naive[1]:.1f}, {naive[2]:.1f}]  ->  loss = {naive_loss}",
        f"  shifted: loss = {shifted_loss:.6f}",
    ]
    return "\n".join(lines)


GPT3_WIDTH, GPT3_HIDDEN, GPT3_LAYERS, FLOAT32 = 12288, 4 * 12288, 96, 4


def linear_parameters(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def render_gpt3_table() -> str:
    up = linear_parameters(GPT3_WIDTH, GPT3_HIDDEN)
    down = linear_parameters(GPT3_HIDDEN, GPT3_WIDTH)
    both = (up + down) * GPT3_LAYERS
    rows = [
        [f"Linear({GPT3_WIDTH}, {GPT3_HIDDEN})", f"{up:,}", f"{up * FLOAT32:,}"],
        [f"Linear({GPT3_HIDDEN}, {GPT3_WIDTH})", f"{down:,}", f"{down * FLOAT32:,}"],
        [f"both, × {GPT3_LAYERS} layers", f"{both:,}", f"{both * FLOAT32:,}"],
    ]
    return box_table(["layer", "parameters", "float32 bytes"], rows, [False, True, True])


def test_memory_table_matches_describe():
    assert marked_block(SOURCE, "describe:mlp") == render_mlp_table()


def test_cross_entropy_trace_matches_formula_and_library():
    assert marked_block(SOURCE, "trace:cross_entropy") == render_cross_entropy_trace()
    logits = Variable(np.array([[2.0, 1.0, 0.1]]), requires_grad=True)
    loss = cross_entropy(logits, np.array([0]))
    loss.backward()
    log_softmax = np.array([2.0, 1.0, 0.1]) - 2.0
    log_softmax -= np.log(np.exp(log_softmax).sum())
    assert loss.item() == pytest.approx(-log_softmax[0], rel=1e-12)
    np.testing.assert_allclose(logits.grad[0], np.exp(log_softmax) - np.eye(3)[0], rtol=1e-12)
    big = Variable(np.array([[1000.0, 0.0, -1000.0]]))
    assert cross_entropy(big, np.array([1])).item() == pytest.approx(1000.0)


def test_gpt3_scale_table_and_prose_match_the_formula():
    assert marked_block(SOURCE, "scale:gpt3") == render_gpt3_table()
    text = SOURCE.read_text(encoding="utf-8")
    activation = 2048 * GPT3_HIDDEN * FLOAT32
    assert f"(2048, {GPT3_HIDDEN}) activation of {activation:,} bytes" in " ".join(
        line.lstrip("# ") for line in text.splitlines()
    )
    mlp_billions = (
        linear_parameters(GPT3_WIDTH, GPT3_HIDDEN) + linear_parameters(GPT3_HIDDEN, GPT3_WIDTH)
    ) * 96
    assert f"About {round(mlp_billions / 1e9)} of GPT-3's 175 billion" in text


def test_overflow_claims_hold():
    text = " ".join(line.lstrip("# ") for line in SOURCE.read_text(encoding="utf-8").splitlines())
    assert "(`exp(1000)` is `inf` in float64 and `exp(89)` already is in float32)" in text
    with np.errstate(over="ignore"):
        assert np.isinf(np.exp(1000.0)) and np.isinf(np.exp(np.float32(89)))
    assert np.isfinite(np.exp(np.float32(88)))


def test_memory_prose_matches_table():
    model = Sequential(Linear(784, 256), ReLU(), Linear(256, 128), ReLU(), Linear(128, 10))
    gradient_bytes = sum(p.data.nbytes for p in model.parameters())
    text = " ".join(line.lstrip("# ") for line in SOURCE.read_text(encoding="utf-8").splitlines())
    assert f"(another {gradient_bytes:,} bytes here)" in text
    bound = 1 / np.sqrt(784)
    assert f"1/√784 = 1/28 ≈ {bound:.4f}" in text


if __name__ == "__main__":
    for render in (render_mlp_table, render_cross_entropy_trace, render_gpt3_table):
        print(render(), end="\n\n")
