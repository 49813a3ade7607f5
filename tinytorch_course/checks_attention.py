"""Numpy references and probe helpers for module 07's graded cells (attention, a GPT).

Everything here except the probed callables is numpy: the judge replays a cell with these
functions computing the expected values from the inputs, never from the student's code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from .checks import Check, numerical_gradients


def np_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


def np_layernorm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    axes = tuple(range(-np.ndim(w), 0))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def np_gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


def np_attention(q, k, v, mask: np.ndarray | None = None) -> np.ndarray:
    scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    return np_softmax(scores) @ v


def np_cross_entropy(logits: np.ndarray, targets: np.ndarray) -> float:
    flat = logits.reshape(-1, logits.shape[-1])
    logp = flat - flat.max(axis=1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(flat)), targets.reshape(-1)].mean())


def np_sample(logits: np.ndarray, u: float) -> int:
    """The id whose cumulative softmax probability first exceeds `u` (inverse CDF)."""
    cumulative = np.cumsum(np_softmax(logits.astype(np.float64)))
    return int(min(np.searchsorted(cumulative, u, side="right"), len(logits) - 1))


def np_gpt_logits(state: dict, ids: np.ndarray, n_layer: int, n_head: int) -> np.ndarray:
    """The logits of a pre-LayerNorm GPT (nanoGPT's names, tanh GELU) in numpy."""
    B, T = ids.shape
    x = state["wte.weight"][ids] + state["wpe.weight"][np.arange(T)]
    C = x.shape[-1]
    D = C // n_head
    causal = np.tril(np.ones((T, T), dtype=bool))

    def linear(h, name):
        return h @ state[name + ".weight"].T + state[name + ".bias"]

    def norm(h, name):
        return np_layernorm(h, state[name + ".weight"], state[name + ".bias"])

    for i in range(n_layer):
        p = f"blocks.{i}."
        qkv = linear(norm(x, p + "ln_1"), p + "attn.c_attn")
        q, k, v = (
            qkv[..., j * C : (j + 1) * C].reshape(B, T, n_head, D).transpose(0, 2, 1, 3)
            for j in range(3)
        )
        out = np_attention(q, k, v, causal).transpose(0, 2, 1, 3).reshape(B, T, C)
        x = x + linear(out, p + "attn.c_proj")
        hidden = np_gelu(linear(norm(x, p + "ln_2"), p + "mlp.c_fc"), "tanh")
        x = x + linear(hidden, p + "mlp.c_proj")
    return linear(norm(x, "ln_f"), "lm_head")


def probe_grads(
    check: Check,
    fn: Callable,
    arrays: Sequence[np.ndarray],
    numpy_fn: Callable,
    what: str,
    rtol: float = 1e-5,
    atol: float = 1e-7,
) -> None:
    """Probe `fn(*Variables)`'s output and the gradients of every input for a random
    upstream gradient; compare with `numpy_fn` and with central differences of it."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    expected = numpy_fn(*arrays)
    grad_output = check.rng.standard_normal(np.shape(expected))

    def run():
        from tinytorch.autograd import Variable

        inputs = [Variable(a.copy(), requires_grad=True) for a in arrays]
        out = fn(*inputs)
        out.backward(grad_output)
        return out.data, [v.grad for v in inputs]

    label = f"{what} and its backward"
    out, grads = check.no_raise(check.probe(run, label), label)
    check.close(out, expected, what)
    numeric = numerical_gradients(numpy_fn, arrays, grad_output)
    for index, (got, want) in enumerate(zip(grads, numeric, strict=True)):
        check.close(got, want, f"the gradient of {what} for input {index}", rtol=rtol, atol=atol)
