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
        at = tuple(int(i) for i in np.unravel_index(int(np.argmax(error)), error.shape))
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


# --------------------------------------------------------------------------------------
# Scenarios of whole parts. `nb` returns the notebook's namespace (e.g. `lambda:
# globals()`); it is called only inside probes, so the names are looked up in the
# student's kernel and nowhere else.


def check_record(check, nb: Callable[[], dict]) -> None:
    """Part 2: `Function.apply` (through `record`) unwraps, calls forward, wraps, records."""
    a = check.rng.standard_normal(3)
    factor = float(check.rng.uniform(1.5, 3.0))
    ops: dict = {}

    def define():
        ns = nb()

        class Twice(ns["Function"]):
            @staticmethod
            def forward(ctx, value):
                ops["seen"] = type(value).__name__
                return value * 2

        class Scale(ns["Function"]):
            @staticmethod
            def forward(ctx, value, k):
                return value * k

        ops.update(ns=ns, Twice=Twice, Scale=Scale)

    def twice():
        define()
        x = ops["ns"]["Variable"](a.copy(), requires_grad=True)
        y = ops["Twice"].apply(x)
        fn = y.grad_fn
        return {
            "type": type(y).__name__,
            "forward got": ops["seen"],
            "data": np.array(y.data),
            "requires_grad": bool(y.requires_grad),
            "grad_fn": type(fn).__name__,
            "inputs[0] is x": bool(fn is not None and tuple(fn.inputs)[0] is x),
            "needs": None if fn is None else [bool(n) for n in fn.needs_input_grad],
        }

    got = check.no_raise(check.probe(twice, "Twice.apply(x)"), "Twice.apply(x)")
    check.equal(got["type"], "Variable", "the type Twice.apply(x) returns")
    check.equal(got["forward got"], "ndarray", "the type forward receives", hint="pass each .data")
    check.close(got["data"], 2 * a, "Twice.apply(x).data")
    check.equal(got["requires_grad"], True, "requires_grad of an op on x (x requires grad)")
    check.equal(got["grad_fn"], "Twice", "type(Twice.apply(x).grad_fn)", hint="grad_fn = ctx")
    check.equal(got["inputs[0] is x"], True, "ctx.inputs[0] is x", hint="store the inputs")
    check.equal(got["needs"], [True], "ctx.needs_input_grad of Twice.apply(x)")

    def scaled():
        s = ops["Scale"].apply(ops["ns"]["Variable"](a.copy(), requires_grad=True), factor)
        return np.array(s.data), [bool(n) for n in s.grad_fn.needs_input_grad]

    got = check.no_raise(check.probe(scaled, "Scale.apply(x, k)"), "Scale.apply(x, k)")
    check.close(got[0], a * factor, "Scale.apply(x, k)", hint="a number reaches forward as is")
    check.equal(got[1], [True, False], "needs_input_grad of Scale.apply(x, k)")

    def constant():
        return type(ops["Twice"].apply(ops["ns"]["Variable"](a.copy())).grad_fn).__name__

    got = check.probe(constant, "Twice.apply(Variable(a)).grad_fn")
    check.equal(got, "NoneType", "grad_fn of an op whose inputs do not require grad")

    def under_no_grad():
        with ops["ns"]["no_grad"]():
            z = ops["Twice"].apply(ops["ns"]["Variable"](a.copy(), requires_grad=True))
        return bool(z.requires_grad), type(z.grad_fn).__name__

    check.equal(
        check.probe(under_no_grad, "Twice.apply(x) inside no_grad()"),
        (False, "NoneType"),
        "(requires_grad, type(grad_fn)) of Twice.apply(x) inside no_grad()",
        hint="record nothing when recording is off",
    )


def check_record_errors(check, nb: Callable[[], dict]) -> None:
    """Part 2, what the text states besides: numpy's ValueError is re-raised (naming the
    op and shapes), and a result that is a numpy scalar is wrapped as an array."""

    def mismatched():
        ns = nb()

        class Pair(ns["Function"]):
            @staticmethod
            def forward(ctx, p, q):
                return p + q

        return Pair.apply(ns["Variable"](np.ones(2)), ns["Variable"](np.ones(3)))

    got = check.probe(mismatched, "Pair.apply(ones(2), ones(3))")
    check.raises(got, ValueError, "Pair.apply(ones(2), ones(3))")

    def scalar_result():
        ns = nb()

        class Total(ns["Function"]):
            @staticmethod
            def forward(ctx, p):
                return np.sum(p)

        return type(Total.apply(ns["Variable"](np.ones(3), requires_grad=True)).data).__name__

    got = check.probe(scalar_result, "Total.apply(x).data")
    check.equal(got, "ndarray", "the type of .data when forward returns a numpy scalar")


def _chain(nb, length: int, step: Callable) -> float:
    start = chain = nb()["Variable"](np.float64(1.0), requires_grad=True)
    for _ in range(length):
        chain = step(chain)
    chain.backward()
    return float(start.grad)


def check_engine(check, nb: Callable[[], dict]) -> None:
    """Part 4: order, accumulation, retain_grad, freed graphs, and graph sizes that break
    recursive or path-following engines."""
    x0, y0, b0 = check.rng.uniform(0.5, 2.0, 3)

    def opening():
        variable = nb()["Variable"]
        x, y, b = (variable(np.float64(v), requires_grad=True) for v in (x0, y0, b0))
        (x * y + b).backward()
        return [None if v.grad is None else float(v.grad) for v in (x, y, b)]

    got = check.no_raise(check.probe(opening, "z.backward()"), "z.backward() for z = x*y + b")
    check.expect(None not in got, f"(x.grad, y.grad, b.grad) after z.backward() is {got}")
    check.close(got, [y0, x0, 1.0], "(x.grad, y.grad, b.grad) for z = x*y + b")
    state: dict = {}

    def diamond():
        ns = nb()
        a = ns["Variable"](np.float64(x0), requires_grad=True)
        d = a * 2 + a * 3
        counts, order = ns["count_consumers"](d), ns["topological_order"](d)
        state.update(a=a, d=d)
        return {
            "counts": sorted(int(n) for n in counts.values()),
            "of a": int(counts.get(a, -1)),
            "order": ["d" if v is d else "a" if v is a else "op" for v in order],
        }

    got = check.no_raise(check.probe(diamond, "count_consumers(d)"), "d = a*2 + a*3")
    check.equal(got["of a"], 2, "count_consumers(d)[a] for d = a*2 + a*3 (a feeds two ops)")
    check.equal(got["counts"], [0, 1, 1, 2], "the sorted counts of count_consumers(d)")
    check.equal(
        got["order"],
        ["d", "op", "op", "a"],
        "topological_order(d) for d = a*2 + a*3, root first",
        hint="each Variable once, the leaf after both ops that use it",
    )

    def diamond_grad():
        state["d"].backward()
        return float(state["a"].grad)

    got = check.probe(diamond_grad, "d.backward()")
    check.close(got, 5.0, "∂d/∂a for d = a*2 + a*3", hint="two paths: 2 + 3")
    m, v = check.rng.standard_normal((2, 3)), check.rng.standard_normal(3)
    c = check.rng.uniform(1.0, 2.0, (2, 1))
    variable = lambda: nb()["Variable"]  # noqa: E731
    what = "m * v + v with v (3,) broadcast over rows"
    check_gradients(check, variable, lambda p, q: p * q + q, lambda p, q: p * q + q, [m, v], what)
    what = "m / c - c with c of shape (2, 1)"
    check_gradients(check, variable, lambda p, q: p / q - q, lambda p, q: p / q - q, [m, c], what)
    w0 = check.rng.standard_normal(2)

    def accumulation():
        w = nb()["Variable"](w0.copy(), requires_grad=True)
        (w * 3).backward(np.ones(2))
        (w * 4).backward(np.ones(2))
        accumulated = np.array(w.grad)
        hidden = w * w
        hidden.retain_grad()
        (hidden * 5).backward(np.ones(2))
        kept = None if hidden.grad is None else np.array(hidden.grad)
        return accumulated, kept, (w * 2).grad is None

    got = check.no_raise(check.probe(accumulation, "two backward() calls"), "backward twice")
    check.close(
        got[0], [7.0, 7.0], "w.grad after backward of w*3 then of w*4", hint="add, not overwrite"
    )
    check.expect(
        got[1] is not None,
        "hidden.grad is None after backward, but hidden called "
        "retain_grad(): it keeps its gradient",
    )
    check.close(got[1], [5.0, 5.0], "hidden.grad of a non-leaf that called retain_grad()")
    check.equal(got[2], True, "(w * 2).grad is None", hint="a non-leaf keeps no .grad")

    def freed():
        p = nb()["Variable"](w0.copy(), requires_grad=True)
        q = p * p
        q.backward(np.ones(2))
        try:
            q.backward(np.ones(2))
            second = "no error"
        except RuntimeError:
            second = "RuntimeError"
        after = np.array(p.grad)
        r = p * p
        r.backward(np.ones(2), retain_graph=True)
        r.backward(np.ones(2))
        return second, after, np.array(p.grad)

    got = check.no_raise(check.probe(freed, "a second backward"), "a second backward")
    check.equal(
        got[0],
        "RuntimeError",
        "a second q.backward() without retain_graph",
        hint="set fn._saved = _FREED after each node's backward",
    )
    check.close(got[1], 2 * w0, "p.grad after a refused second backward of p*p")
    check.close(got[2], 6 * w0, "p.grad after p*p once, then twice with retain_graph=True")
    got = check.probe(lambda: _chain(nb, 5000, lambda t: t + 1.0), "a 5,000-op chain")
    check.close(
        got,
        1.0,
        "the gradient through a 5,000-op chain",
        hint="walk the graph with an explicit stack (a list), not recursion",
    )

    def diamonds(count: int):
        calls = []

        class Counted(nb()["Function"]):
            @staticmethod
            def forward(ctx, p):
                return p * 1.0

            @staticmethod
            def backward(ctx, grad_output):
                calls.append(1)
                return grad_output

        top = node = nb()["Variable"](np.float64(1.0), requires_grad=True)
        for _ in range(count):
            node = Counted.apply(node) + Counted.apply(node)
        node.backward()
        return len(calls), float(top.grad)

    got = check.no_raise(check.probe(lambda: diamonds(12), "12 diamonds"), "12 diamonds")
    check.equal(
        got[0],
        24,
        "how often Counted.backward ran in a chain of 12 diamonds (24 nodes)",
        hint="each node once, after all paths into it delivered their gradient",
    )
    check.close(got[1], 2.0**12, "the gradient through 12 diamonds (2**12 paths)")
    got = check.probe(lambda: _chain(nb, 60, lambda t: t * 1.0 + t * 1.0), "60 diamonds")
    check.close(got, 2.0**60, "the gradient through 60 diamonds (2**60 paths, 180 nodes)")


def check_engine_at_scale(check, nb: Callable[[], dict]) -> None:
    """Part 4, as the text states: two leaves of one Add get `.grad` arrays that do not
    share memory; a node that received no gradient (its op's backward returned None) is
    skipped, and a constant first input (`2 * a`) is not followed; a 100,000-op chain."""
    w0 = check.rng.standard_normal(2)

    def add_leaves():
        variable = nb()["Variable"]
        first = variable(w0.copy(), requires_grad=True)
        second = variable(w0[::-1].copy(), requires_grad=True)
        (first + second).backward(np.ones(2))
        first.grad += 1
        return np.array(second.grad)

    got = check.probe(add_leaves, "first.grad += 1 after (first + second).backward()")
    check.close(got, [1.0, 1.0], "second.grad after first.grad += 1 (no shared buffer)")
    a0, b0 = check.rng.standard_normal(2)

    def none_for_an_input():
        ns = nb()

        class Stop(ns["Function"]):  # passes no gradient back: backward returns None
            forward = staticmethod(lambda ctx, p: p * 1.0)
            backward = staticmethod(lambda ctx, grad_output: None)

        grads = []
        for stop_first in (True, False):
            a, b = (ns["Variable"](np.float64(v), requires_grad=True) for v in (a0, b0))
            stopped, kept = Stop.apply(2 * a), 3 * b
            (stopped + kept if stop_first else kept + stopped).backward()
            grads.append([None if v.grad is None else float(v.grad) for v in (a, b)])
        return grads

    got = check.probe(none_for_an_input, "Stop.apply(2 * a) + 3 * b, then backward()")
    got = check.no_raise(got, "backward() through an op whose backward returns None")
    orders = ("Stop(2 * a) + 3 * b", "3 * b + Stop(2 * a)")
    for (a_grad, b_grad), order in zip(got, orders, strict=True):
        check.expect(
            a_grad is None,
            f"a.grad after ({order}).backward() is {a_grad}, expected None: Stop.backward "
            "returned None, so no gradient reaches a",
        )
        check.close(
            b_grad,
            3.0,
            f"b.grad after ({order}).backward()",
            hint="a node that received no gradient is skipped, not the end of the walk",
        )
    got = check.probe(lambda: _chain(nb, 100_000, lambda t: t * 1.0), "a 100,000-op chain")
    check.close(got, 1.0, "the gradient through a 100,000-op chain")


def check_training(check, nb: Callable[[], dict]) -> None:
    """Part 11: polynomial regression and a 2-8-2 tanh network on XOR, trained with plain
    gradient descent on the notebook's engine."""
    inputs = check.rng.uniform(-2, 2, 64)
    targets = 0.5 * inputs**2 - inputs + 2 + check.rng.normal(0, 0.05, 64)
    features = np.stack([inputs**2, inputs, np.ones(64)], axis=1)

    def regression():
        ns = nb()
        coefficients = ns["Variable"](np.zeros(3), requires_grad=True)
        losses = []
        for _ in range(400):
            loss = ((ns["Variable"](features) @ coefficients - targets) ** 2).mean()
            loss.backward()
            with ns["no_grad"]():
                coefficients.data -= 0.1 * coefficients.grad
            coefficients.zero_grad()
            losses.append(loss.item())
        return np.array(coefficients.data), losses[0], losses[-1]

    got = check.no_raise(check.probe(regression, "400 steps of regression"), "regression")
    check.expect(
        got[2] < 0.01,
        f"after 400 steps the regression loss is {got[2]:.4f}; it should fall below 0.01 "
        f"(it started at {got[1]:.2f})",
    )
    fit = np.linalg.lstsq(features, targets, rcond=None)[0]
    check.close(got[0], fit, "the fitted coefficients of x**2, x, 1", atol=0.05)
    xor_inputs = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    labels = np.array([0, 1, 1, 0])
    shapes = [(2, 8), (8,), (8, 2), (2,)]
    initial = [check.rng.normal(0, 1, s) if len(s) == 2 else np.zeros(s) for s in shapes]

    def xor():
        ns = nb()
        W1, b1, W2, b2 = (ns["Variable"](p.copy(), requires_grad=True) for p in initial)
        for _ in range(300):
            hidden = (ns["Variable"](xor_inputs) @ W1 + b1).tanh()
            log_probabilities = ns["log_softmax"](hidden @ W2 + b2)
            loss = -log_probabilities[np.arange(4), labels].mean()
            loss.backward()
            with ns["no_grad"]():
                for parameter in (W1, b1, W2, b2):
                    parameter.data -= 1.0 * parameter.grad
                    parameter.zero_grad()
        return np.array(log_probabilities.data), loss.item()

    got = check.no_raise(check.probe(xor, "300 steps of a 2-8-2 network on XOR"), "XOR")
    check.equal(
        got[0].argmax(axis=1), labels, f"XOR predictions after 300 steps (loss {got[1]:.3f})"
    )


def check_table(check, nb: Callable[[], dict], rows: Sequence[tuple]) -> None:
    """`check_gradients` for each row `(expression, numpy_fn, arrays, what[, hint])`."""
    for expression, numpy_fn, arrays, what, *hint in rows:
        variable = lambda: nb()["Variable"]  # noqa: E731
        check_gradients(check, variable, expression, numpy_fn, arrays, what, *hint)


def _quiet(fn: Callable) -> Callable:
    """`fn` with numpy's warnings (overflow, divide by zero) raised as errors."""

    def run():
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return fn()

    return run


def check_sigmoid_edges(check, nb: Callable[[], dict]) -> None:
    """Part 5: sigmoid and its gradient at -1000, 0, 1000, with no overflow warning."""

    def edges():
        x = nb()["Variable"](np.array([-1000.0, 0.0, 1000.0]), requires_grad=True)
        s = x.sigmoid()
        s.backward(np.ones(3))
        return np.array(s.data), np.array(x.grad)

    what = "sigmoid at -1000, 0, 1000 (an overflow warning counts as an error)"
    got = check.no_raise(check.probe(_quiet(edges), what), what)
    check.close(got[0], [0.0, 0.5, 1.0], "sigmoid at -1000, 0, 1000")
    check.close(got[1], [0.0, 0.25, 0.0], "sigmoid's gradient at -1000, 0, 1000")


def check_at_zero(check, nb: Callable[[], dict]) -> None:
    """Part 5 at a = 0, as the text states: d(a**b)/da is 0 where b = 0 and 1 where b = 1
    (even at a = 0), for a number or an array exponent; d(a**b)/db = 0 where a = 0, with
    no warning; relu'(0) = 0; and a float32 Variable gets a float32 `.grad`."""

    def at_zero():
        variable = nb()["Variable"]
        zero, one = (variable(np.array([0.0, 1.0]), requires_grad=True) for _ in range(2))
        (zero**0).backward(np.ones(2))
        (one**1).backward(np.ones(2))
        base = variable(np.array([0.0, 0.0, 2.0]), requires_grad=True)
        exponent = variable(np.array([0.0, 1.0, 3.0]), requires_grad=True)
        (base**exponent).backward(np.ones(3))
        y = variable(np.array([0.0, 2.0], dtype=np.float32), requires_grad=True)
        y.relu().backward(np.ones(2, dtype=np.float32))
        grads = (zero.grad, one.grad, base.grad, exponent.grad, y.grad)
        return [np.array(g) for g in grads], str(y.grad.dtype)

    what = "a ** 0, a ** 1, a ** b and relu at 0 (a warning counts as an error)"
    got = check.no_raise(check.probe(_quiet(at_zero), what), what)
    (zero, one, base, exponent, relu), dtype = got
    check.close(zero, [0.0, 0.0], "d(a**0)/da at a = 0 and 1 (0 even at a = 0)")
    check.close(one, [1.0, 1.0], "d(a**1)/da at a = 0 and 1 (1 even at a = 0)")
    check.close(
        base,
        [0.0, 1.0, 12.0],
        "d(a**b)/da at (a, b) = (0, 0), (0, 1), (2, 3)",
        hint="0 where b == 0, b * a ** (b - 1) elsewhere, also for an array b",
    )
    check.close(
        exponent,
        [0.0, 0.0, 8.0 * np.log(2.0)],
        "d(a**b)/db at (a, b) = (0, 0), (0, 1), (2, 3)",
        hint="0 where a == 0, without taking ln 0",
    )
    check.close(relu, [0.0, 1.0], "relu's gradient at 0 and 2 (0 at 0)")
    check.equal(dtype, "float32", "the dtype of a float32 Variable's .grad")


def check_max_ties(check, nb: Callable[[], dict]) -> None:
    """Part 7: tied maxima share the gradient equally."""
    low, high = sorted(check.rng.uniform(-2.0, 2.0, 2))
    tied = np.array([[low, high, low], [high, low, high]])

    def ties():
        x = nb()["Variable"](tied.copy(), requires_grad=True)
        x.max(axis=1).backward(np.array([1.0, 1.0]))
        return np.array(x.grad)

    check.close(
        check.probe(ties, "max with ties"),
        [[0, 1, 0], [0.5, 0, 0.5]],
        "max's gradient along axis 1 when two elements tie for the maximum",
        hint="the tied elements share the gradient equally",
    )


def check_repeated_index(check, nb: Callable[[], dict]) -> None:
    """Part 8: an element picked twice by an integer array gets both gradients."""
    data = check.rng.standard_normal(3)

    def picked():
        x = nb()["Variable"](data.copy(), requires_grad=True)
        x[np.array([0, 0, 2])].backward(np.ones(3))
        return np.array(x.grad)

    check.close(
        check.probe(picked, "x[[0, 0, 2]]"),
        [2.0, 0.0, 1.0],
        "the gradient of x[[0, 0, 2]] (element 0 was picked twice)",
        hint="np.add.at(grad, index, grad_output) adds once per occurrence",
    )


def check_log_softmax_large(check, nb: Callable[[], dict]) -> None:
    """Part 9: log_softmax of [s, 0, -s] with s near 1000, with no overflow warning."""
    s = float(check.rng.uniform(900.0, 1000.0))

    def large():
        return np.array(nb()["log_softmax"](nb()["Variable"](np.array([[s, 0.0, -s]]))).data)

    what = f"log_softmax([{s:.1f}, 0, -{s:.1f}])"
    check.close(
        check.probe(_quiet(large), what),
        [[0.0, -s, -2 * s]],
        what,
        hint="subtract the maximum first: exp of a large number overflows",
    )


def check_arithmetic(check, nb: Callable[[], dict]) -> None:
    """Part 3: Add, Sub, Div, Neg called directly, then each operator with a number on
    either side: its value and the op it records."""
    a, b = check.rng.standard_normal((2, 3)), check.rng.standard_normal((2, 3))
    away = check.rng.uniform(0.5, 2.0, (2, 3)) * check.rng.choice([-1, 1], (2, 3))
    check_op(check, lambda: nb()["Add"], np.add, [a, b], "Add")
    check_op(check, lambda: nb()["Sub"], np.subtract, [a, b], "Sub", hint="∂(a - b)/∂b = -g")
    hint = "∂(a / b)/∂b = -g * a / b²"
    check_op(check, lambda: nb()["Div"], np.divide, [a, away], "Div", hint=hint)
    check_op(check, lambda: nb()["Neg"], np.negative, [a], "Neg")
    x, k = check.rng.uniform(0.5, 2.0, 3).astype(np.float32), float(check.rng.integers(2, 5))
    for text, fn, want, op in [
        ("x + k", lambda v: v + k, x + k, "Add"),
        ("k + x", lambda v: k + v, k + x, "Add"),
        ("x - k", lambda v: v - k, x - k, "Sub"),
        ("k - x", lambda v: k - v, k - x, "Sub"),
        ("x / k", lambda v: v / k, x / k, "Div"),
        ("k / x", lambda v: k / v, k / x, "Div"),
        ("-x", lambda v: -v, -x, "Neg"),
    ]:

        def run(fn=fn):
            out = fn(nb()["Variable"](x.copy(), requires_grad=True))
            return np.array(out.data), type(out.grad_fn).__name__

        got = check.no_raise(check.probe(run, text), text)
        check.close(got[0], want, f"{text} for x = {x}, k = {k:g}")
        check.equal(got[1], op, f"the op that {text} records (type of its grad_fn)")


def check_arithmetic_more(check, nb: Callable[[], dict]) -> None:
    """Part 3, as stated: Div with both inputs away from 0; a Python number keeps a
    float32 Variable float32."""
    away = check.rng.uniform(0.5, 2.0, (2, 3)) * check.rng.choice([-1, 1], (2, 3))
    check_op(check, lambda: nb()["Div"], np.divide, [away, away[::-1]], "Div")
    x = check.rng.uniform(0.5, 2.0, 3).astype(np.float32)
    got = check.probe(lambda: str((nb()["Variable"](x) * 2.5 + 1).dtype), "(x * 2.5 + 1).dtype")
    check.equal(got, "float32", "the dtype of a float32 Variable times a Python number")


def check_unbroadcast(check, nb: Callable[[], dict]) -> None:
    """Part 4: `unbroadcast(g, shape)` of a (4, 2, 3) gradient for every shape that
    broadcasts to it; the same array back when the shapes match."""
    g = check.rng.standard_normal((4, 2, 3))
    hint = "sum the leading axes, then the stretched ones with keepdims=True"
    for shape, want in [
        ((4, 2, 3), g),
        ((2, 3), g.sum(axis=0)),
        ((3,), g.sum(axis=(0, 1))),
        ((2, 1), g.sum(axis=(0, 2))[:, None]),
        ((1, 3), g.sum(axis=(0, 1))[None, :]),
        ((4, 1, 3), g.sum(axis=1, keepdims=True)),
        ((), g.sum()),
    ]:
        run = lambda s=shape: np.array(nb()["unbroadcast"](g.copy(), s))  # noqa: E731
        got = check.probe(run, f"unbroadcast(g, {shape})")
        check.close(got, want, f"unbroadcast(g of shape (4, 2, 3), {shape})", hint=hint)
    got = check.probe(lambda: nb()["unbroadcast"](g, g.shape) is g, "unbroadcast(g, g.shape)")
    check.equal(got, True, "unbroadcast(g, g.shape) is g", hint="return grad itself, no copy")


def check_math_ops(check, nb: Callable[[], dict]) -> None:
    """Part 5: each op through the engine on random data, then sigmoid at ±1000."""
    values, positive = check.rng.standard_normal((2, 3)), check.rng.uniform(0.5, 2.0, (2, 3))
    away = check.rng.uniform(0.2, 2.0, (2, 3)) * check.rng.choice([-1, 1], (2, 3))
    p = float(check.rng.uniform(2.5, 3.5))
    rows = [
        (lambda a: a**p, lambda a: a**p, [positive], "a ** p", "b * a ** (b - 1)"),
        (lambda a: a**-0.5, lambda a: a**-0.5, [positive], "a ** -0.5"),
        (lambda a, b: a**b, lambda a, b: a**b, [positive, values], "a ** b", "out * ln a"),
        (lambda a: 2**a, lambda a: 2**a, [values], "2 ** a"),
        (lambda a: a.exp(), np.exp, [values], "a.exp()"),
        (lambda a: a.log(), np.log, [positive], "a.log()", "∂ ln a/∂a = 1 / a"),
        (lambda a: a.tanh(), np.tanh, [values], "a.tanh()", "1 - out², not 1 - out"),
        (lambda a: a.sigmoid(), lambda a: 1 / (1 + np.exp(-a)), [values], "a.sigmoid()"),
        (lambda a: a.relu(), lambda a: np.maximum(a, 0), [away], "a.relu()"),
    ]
    check_table(check, nb, rows)
    check_sigmoid_edges(check, nb)


def check_matmul(check, nb: Callable[[], dict], hidden: bool = False) -> None:
    """Part 6: `a @ b` for vectors, matrices and stacks (batch axes broadcast); then
    (visible part only) the needs_input_grad gate."""
    shapes = [((2, 3), (3, 4)), ((3,), (3, 4)), ((2, 3), (3,)), ((3,), (3,))]
    shapes += [((5, 2, 3), (5, 3, 4)), ((5, 2, 3), (3, 4)), ((3,), (5, 3, 2))]
    if hidden:
        shapes = [((4, 1, 2, 3), (2, 3, 2)), ((2, 2, 3), (3,))]
    hint = "∂L/∂A = g @ B.T, ∂L/∂B = A.T @ g"
    rows = [
        (
            lambda a, b: a @ b,
            np.matmul,
            [check.rng.standard_normal(s) for s in pair],
            f"a @ b with shapes {pair[0]} @ {pair[1]}",
            hint,
        )
        for pair in shapes
    ]
    check_table(check, nb, rows)
    if not hidden:
        check_matmul_needs(check, nb)


def check_matmul_needs(check, nb: Callable[[], dict]) -> None:
    """Part 6, as the text states: MatMul.backward computes only the gradients that
    `ctx.needs_input_grad` asks for, and returns None for the other."""
    a, b = check.rng.standard_normal((2, 3)), check.rng.standard_normal((3, 4))
    g = check.rng.standard_normal((2, 4))
    wants = [g @ b.T, a.T @ g]
    for needs in ([True, False], [False, True]):

        def run(needs=needs):
            matmul = nb()["MatMul"]
            ctx = matmul()
            ctx.needs_input_grad = list(needs)
            matmul.forward(ctx, a.copy(), b.copy())
            return [_plain(grad) for grad in matmul.backward(ctx, g.copy())]

        what = f"MatMul.backward with ctx.needs_input_grad = {needs}"
        got = check.no_raise(check.probe(run, what), what)
        skipped, computed = needs.index(False), needs.index(True)
        check.expect(
            got[skipped] is None,
            f"{what}: gradient {skipped} is not None; compute only what needs_input_grad "
            "asks for, and return None for the other",
        )
        check.close(got[computed], wants[computed], f"{what}: gradient {computed}")


def check_reductions(check, nb: Callable[[], dict], hidden: bool = False) -> None:
    """Part 7: sum, mean, max over every kind of axis, keepdims either way; ties."""
    data = check.rng.standard_normal((2, 3, 4))
    if hidden:
        rows = [(lambda a: a.sum(), np.sum, [data[0, 0, 0]], "the sum of a 0-d Variable")]
        mean = lambda a: a.mean(axis=(0, 1))  # noqa: E731
        rows += [(mean, mean, [data], "a.mean(axis=(0, 1))")]
        return check_table(check, nb, rows)
    rows = [
        (
            lambda a, m=m, x=x, k=k: getattr(a, m)(axis=x, keepdims=k),
            lambda a, m=m, x=x, k=k: getattr(np, m)(a, axis=x, keepdims=k),
            [data],
            f"a.{m}(axis={x}, keepdims={k}) for a of shape (2, 3, 4)",
        )
        for x in (None, 0, 1, -1, (0, 2))
        for k in (False, True)
        for m in ("sum", "mean", "max")
    ]
    check_table(check, nb, rows)
    check_max_ties(check, nb)


def check_shape_ops(check, nb: Callable[[], dict], hidden: bool = False) -> None:
    """Part 8: reshape, transpose and indexing (a repeated index included)."""
    data = check.rng.standard_normal((2, 3, 4))
    same = lambda f: (f, f)  # noqa: E731 - the Variable and the numpy expression agree
    if hidden:
        mask = data > 0
        rows = [
            (*same(lambda a: a[np.arange(2), [1, 2]]), [data], "a[np.arange(2), [1, 2]]"),
            (*same(lambda a: a[mask]), [data], "a[mask] (a boolean mask)"),
            (lambda a: a.transpose(0, 2), lambda a: np.swapaxes(a, 0, 2), [data], "a.T(0, 2)"),
        ]
        return check_table(check, nb, rows)
    rows = [
        (*same(lambda a: a.reshape(4, 6)), [data], "a.reshape(4, 6)"),
        (lambda a: a.reshape((-1,)), lambda a: a.reshape(-1), [data], "a.reshape((-1,))"),
        (*same(lambda a: a.T), [data], "a.T"),
        (*same(lambda a: a.transpose(1, 2, 0)), [data], "a.transpose(1, 2, 0)", "np.argsort"),
        (*same(lambda a: a[0, 1:, ::2]), [data], "a[0, 1:, ::2]"),
        (*same(lambda a: a[:, [0, 2, 2]]), [data], "a[:, [0, 2, 2]]", "np.add.at"),
    ]
    check_table(check, nb, rows)
    check_repeated_index(check, nb)


def _numpy_log_softmax(a, axis=-1):
    shifted = a - a.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def check_log_softmax(check, nb: Callable[[], dict]) -> None:
    """Part 9: log_softmax along the last axis and along axis 0; no overflow at ±1000."""
    data = check.rng.standard_normal((3, 4))
    rows = [
        (
            lambda a: nb()["log_softmax"](a),
            _numpy_log_softmax,
            [data],
            "log_softmax(a) along the last axis",
            "g - softmax * sum(g) along the axis",
        ),
        (
            lambda a: a.log_softmax(axis=0),
            lambda a: _numpy_log_softmax(a, axis=0),
            [data],
            "a.log_softmax(axis=0)",
        ),
    ]
    check_table(check, nb, rows)
    check_log_softmax_large(check, nb)
