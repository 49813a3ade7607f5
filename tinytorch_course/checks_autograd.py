"""Checks of module 01 (autograd): an op's forward and backward, and gradients through
the whole engine, compared with numpy and central finite differences.

Every call of the notebook's code happens inside `check.probe`, and the probes return
plain numpy data; the expected values are computed here from the inputs with numpy
alone, so the comparison can run where the notebook's code never does. When a
gradient is wrong, the first line of the failure says how: its sign, the other
input's gradient, a missing sum over broadcast axes, a factor."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .checks import Raised, numerical_gradients

RTOL, ATOL = 1e-4, 1e-6


def _close(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=RTOL, atol=ATOL))


def diagnose(got, want: np.ndarray, index: int, wants: Sequence[np.ndarray]) -> str:
    """What a wrong gradient for input `index` looks like, in the student's terms."""
    got = np.asarray(got, dtype=np.float64)
    if got.shape != want.shape:
        try:
            if np.broadcast_shapes(got.shape, want.shape) == got.shape and got.size > want.size:
                return "its shape is the output's: sum it over the axes that broadcasting added"
        except ValueError:
            pass
        return "each gradient must have the shape of its input"
    if not np.any(want) and np.any(got):
        return "this input's gradient is zero everywhere"
    if _close(got, -want):
        return "it has the wrong sign"
    for other, other_want in enumerate(wants):
        if other != index and other_want.shape == want.shape and _close(got, other_want):
            return f"it is the gradient of input {other}: are the inputs swapped?"
    nonzero = np.abs(want) > 1e-8
    if nonzero.any():
        ratio = got[nonzero] / want[nonzero]
        if np.allclose(ratio, ratio.flat[0], rtol=1e-3) and abs(ratio.flat[0]) > 1e-8:
            return f"it is {ratio.flat[0]:.6g} times the right gradient"
    return "apply the chain rule: grad_output times the local derivative"


def compare_grads(check, grads, wants, what: str, hint: str = "") -> None:
    """`grads` (one per input, probed) against `wants` (finite differences)."""
    check.expect(
        isinstance(grads, (list, tuple)) and len(grads) == len(wants),
        f"{what} gave {len(grads) if isinstance(grads, (list, tuple)) else grads!r} "
        f"gradient(s); expected one per input ({len(wants)})",
    )
    for index, (grad, want) in enumerate(zip(grads, wants, strict=True)):
        check.expect(grad is not None, f"{what}: input {index} got no gradient (None)")
        if _close(grad, want):
            continue
        diagnosis = diagnose(grad, want, index, wants)
        got = np.asarray(grad, dtype=np.float64)
        if got.shape != want.shape:
            check.expect(
                False,
                f"{what}: the gradient of input {index} has shape {got.shape}, expected "
                f"{want.shape} ({diagnosis}){'; hint: ' + hint if hint else ''}",
            )
        error = np.abs(got - want)
        at = np.unravel_index(int(np.argmax(error)), error.shape) if error.ndim else ()
        check.expect(
            False,
            f"{what}: the gradient of input {index} is wrong: {diagnosis}; at index {at} it is "
            f"{got[at]:.6g}, expected {want[at]:.6g} (largest error {error[at]:.3g})"
            f"{'; hint: ' + hint if hint else ''}",
        )


def _plain(value):
    """A gradient as plain data (numpy array or None), whatever a backward returned."""
    if value is None:
        return None
    data = getattr(value, "data", value)
    return np.array(data, dtype=np.float64)


def check_op(
    check,
    op_class: Callable[[], type],
    numpy_fn: Callable,
    arrays: Sequence[np.ndarray],
    what: str,
    hint: str = "",
) -> None:
    """Call an op's `forward(ctx, *arrays)` then `backward(ctx, g)` directly, with a fresh
    `ctx = Op()` and no engine, and compare with numpy and finite differences.
    `op_class` is a function returning the class (called only inside the probe)."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    expected = numpy_fn(*arrays)
    grad_output = check.rng.standard_normal(np.shape(expected))
    state: dict = {}

    def forward():
        op = op_class()
        state["op"], state["ctx"] = op, op()
        return np.array(op.forward(state["ctx"], *[a.copy() for a in arrays]), dtype=np.float64)

    out = check.probe(forward, f"{what}: forward")
    check.close(out, expected, f"{what}: forward's result", rtol=1e-7, atol=1e-10)

    def backward():
        grads = state["op"].backward(state["ctx"], grad_output.copy())
        grads = grads if isinstance(grads, (tuple, list)) else (grads,)
        return [_plain(g) for g in grads]

    grads = check.probe(backward, f"{what}: backward")
    grads = check.no_raise(grads, f"{what}: backward(ctx, grad_output)")
    wants = numerical_gradients(numpy_fn, arrays, grad_output)
    compare_grads(check, grads, wants, f"{what}: backward", hint)


def check_gradients(
    check,
    variable_class: Callable[[], type],
    expression: Callable,
    numpy_fn: Callable,
    arrays: Sequence[np.ndarray],
    what: str,
    hint: str = "",
) -> None:
    """Through the whole engine: Variables (float64, requires_grad) in, `expression`,
    `backward(g)` with a random g, then every input's `.grad` against finite
    differences of `numpy_fn` (numpy alone)."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    expected = numpy_fn(*arrays)
    grad_output = check.rng.standard_normal(np.shape(expected))

    def run():
        variable = variable_class()
        leaves = [variable(a.copy(), requires_grad=True) for a in arrays]
        out = expression(*leaves)
        value = np.array(out.data, dtype=np.float64)
        out.backward(grad_output.copy())
        return value, [_plain(leaf.grad) for leaf in leaves]

    result = check.probe(run, what)
    value, grads = check.no_raise(result, what)
    check.close(value, expected, f"the value of {what}", rtol=1e-7, atol=1e-10)
    wants = numerical_gradients(numpy_fn, arrays, grad_output)
    compare_grads(check, grads, wants, f"backward() through {what}", hint)


def raised_name(value) -> str:
    """'nothing' or the exception's class name, for messages."""
    return value.type if isinstance(value, Raised) else "nothing"
