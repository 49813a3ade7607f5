"""Helpers of module 03's graded cells: optimizer runs probed from the notebook, and
PyTorch's documented update rules written out in numpy, as the expected values.

Every call of the student's code goes through `check.probe`; the references below use
numpy alone. A failure's first line names the optimizer, the step and the coordinate;
when the values match a typical mistake's (computed here too), the hint names it.
"""

from __future__ import annotations

import numpy as np

from .checks import Check, Raised


def gradient(p: np.ndarray) -> np.ndarray:
    """The gradient every run uses: of Σ (p³ - p), so it changes sign and size per step."""
    return 3 * p**2 - 1


def run_steps(check: Check, make, steps: int, start: np.ndarray, label: str):
    """The parameter after each of `steps` steps of the optimizer `make([p])` on Σ(p³ - p),
    probed from the notebook (a list of arrays, or a `Raised`)."""

    def run():
        from tinytorch.autograd import Variable

        parameter = Variable(np.array(start, dtype=np.float64), requires_grad=True)
        optimizer = make([parameter])
        history = []
        for _ in range(steps):
            parameter.grad = gradient(parameter.data)
            optimizer.step()
            history.append(parameter.data.copy())
        return history

    return check.probe(run, label)


def reference_sgd(
    steps,
    start,
    lr,
    momentum=0.0,
    dampening=0.0,
    weight_decay=0.0,
    nesterov=False,
    buffer_at_zeros=False,
):
    """PyTorch's SGD, one line per line of its documentation, in float64."""
    p, buf, history = np.array(start, dtype=np.float64), None, []
    for t in range(1, steps + 1):
        g = gradient(p)
        if weight_decay != 0:
            g = g + weight_decay * p
        if momentum != 0:
            if t == 1:
                buf = (1 - dampening) * g if buffer_at_zeros else g.copy()
            else:
                buf = momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
        history.append(p)
    return history


def reference_adam(
    steps,
    start,
    lr,
    betas=(0.9, 0.999),
    eps=1e-8,
    weight_decay=0.0,
    amsgrad=False,
    decoupled=False,
    mistake="",
):
    """PyTorch's Adam/AdamW, one line per line of its documentation, in float64;
    `mistake` names a typical mistake to reproduce (for hints)."""
    p = np.array(start, dtype=np.float64)
    m, v, v_max, history = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p), []
    for t in range(1, steps + 1):
        g = gradient(p)
        if decoupled:
            p = p * (1 - (weight_decay if mistake == "decay without lr" else lr * weight_decay))
        elif weight_decay != 0:
            g = g + weight_decay * p
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g**2
        m_hat = m / (1 - betas[0] ** t) if mistake != "no bias correction" else m
        v_max = np.maximum(v_max, v)
        v_hat = (v_max if amsgrad else v) / (1 - betas[1] ** t)
        if mistake == "no bias correction":
            v_hat = v_max if amsgrad else v
        if mistake == "eps inside the root":
            p = p - lr * m_hat / np.sqrt(v_hat + eps)
        else:
            p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        history.append(p)
    return history


ADAM_HINTS = {
    "eps inside the root": "your values match ε added inside the square root, √(v̂ + ε); "
    "ε goes after it: √v̂ + ε",
    "no bias correction": "your values match m and v without the bias correction: divide m "
    "by 1 - β1^t and v by 1 - β2^t (t counts from 1)",
    "decay without lr": "your values match p·(1 - wd): AdamW shrinks p by lr·wd, p·(1 - lr·wd)",
}


def same_history(
    check: Check,
    got,
    want,
    what: str,
    rtol: float = 1e-10,
    hint: str = "",
    variants: dict | None = None,
) -> None:
    """The probed history equals `want` step by step; on a mismatch, the first wrong step,
    and the hint of a typical mistake (`variants`: name -> its history) if it matches."""
    got = check.no_raise(got, what, hint)
    check.equal(len(got), len(want), f"number of steps recorded by {what}")
    for step, (g, w) in enumerate(zip(got, want, strict=True), start=1):
        if np.allclose(g, w, rtol=rtol, atol=0):
            continue
        for name, history in (variants or {}).items():
            if np.allclose(g, history[step - 1], rtol=1e-9, atol=0):
                hint = ADAM_HINTS.get(name, name)
                break
        check.close(g, w, f"{what}, parameter after step {step}", rtol=rtol, atol=0, hint=hint)


def halving_optimizer(base):
    """A toy subclass of the student's `Optimizer`: p ← p - lr·g, counting its steps."""

    class Halve(base):
        def __init__(self, params, lr=0.5):
            super().__init__(params, {"lr": lr})

        def update(self, parameter, grad, state, group):
            state["steps"] = state.get("steps", 0) + 1
            parameter.data -= group["lr"] * grad

    return Halve


def raised_type(got) -> str:
    return got.type if isinstance(got, Raised) else "nothing"
