"""Every op's gradient, checked against finite differences.

Each check runs three independent computations of the same thing:

1. the engine's forward value, compared with the same expression on plain numpy arrays;
2. the engine's gradient (``backward`` with a random output gradient ``w``), compared
   with central differences of ``sum(w * numpy_expression)`` in float64, computed here
   from numpy alone, so neither a broken op nor a broken ``gradcheck`` can hide;
3. the package's own ``gradcheck`` on the same expression.

Inputs are random (hypothesis draws shapes, broadcasting combinations, dtypes and a
seed; numpy draws the values from a domain where the op is smooth).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinytorch.autograd import Variable, gradcheck

FAST = settings(deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow])

DTYPES = st.sampled_from([np.float64, np.float32])
SEEDS = st.integers(0, 2**32 - 1)
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
NONEMPTY_SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
BROADCAST_PAIRS = hnp.mutually_broadcastable_shapes(
    num_shapes=2, min_dims=0, max_dims=3, max_side=3
)

FD_EPS = 1e-6


# ----------------------------------------------------------------------------- helpers


def sample(rng: np.random.Generator, shape: tuple[int, ...], dtype, domain: str) -> np.ndarray:
    """Random values in a region where the op under test is smooth.

    any: standard normal; positive: [0.5, 2]; nonzero: +-[0.5, 2] (away from the kinks
    of relu and the pole of division); distinct: values at least 0.4 apart (no ties
    for max, so finite differences are defined)."""
    if domain == "any":
        values = rng.standard_normal(shape)
    elif domain == "positive":
        values = rng.uniform(0.5, 2.0, shape)
    elif domain == "nonzero":
        values = rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 2.0, shape)
    elif domain == "distinct":
        size = int(np.prod(shape, dtype=np.int64))
        values = (rng.permutation(size) + rng.uniform(0.0, 0.2, size)).reshape(shape) / 2.0
    else:
        raise ValueError(f"unknown domain {domain!r}")
    return np.asarray(values, dtype=dtype)


def numerical_gradients(
    numpy_fn: Callable[..., np.ndarray], arrays: Sequence[np.ndarray], weights: np.ndarray
) -> list[np.ndarray]:
    """Central differences of sum(weights * numpy_fn(*arrays)) in float64.

    Uses numpy only: nothing from the engine, so it is an independent reference."""
    arrays64 = [np.array(a, dtype=np.float64) for a in arrays]
    weights64 = np.asarray(weights, dtype=np.float64)

    def objective(args: list[np.ndarray]) -> float:
        return float(np.sum(weights64 * numpy_fn(*args)))

    gradients = []
    for i, array in enumerate(arrays64):
        gradient = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            shifted = [a.copy() for a in arrays64]
            shifted[i][index] = array[index] + FD_EPS
            up = objective(shifted)
            shifted[i][index] = array[index] - FD_EPS
            down = objective(shifted)
            gradient[index] = (up - down) / (2 * FD_EPS)
        gradients.append(gradient)
    return gradients


def tolerance(dtypes: Sequence[np.dtype]) -> dict[str, float]:
    """Gradients against finite differences: float64 to the differences' own accuracy
    (truncation ~eps^2, rounding ~1e-16/eps); float32 to float32 precision."""
    if all(np.dtype(d) == np.float64 for d in dtypes):
        return {"rtol": 1e-5, "atol": 1e-6}
    return {"rtol": 2e-3, "atol": 2e-3}


def forward_tolerance(dtype: np.dtype) -> dict[str, float]:
    """Forward values against the same numpy expression: rounding differences only."""
    if np.dtype(dtype) == np.float64:
        return {"rtol": 1e-10, "atol": 1e-12}
    return {"rtol": 1e-5, "atol": 1e-6}


def check_op(
    engine_fn: Callable[..., Variable],
    numpy_fn: Callable[..., np.ndarray],
    arrays: Sequence[np.ndarray],
    seed: int = 0,
) -> None:
    """Forward value, gradient (vs numpy finite differences) and gradcheck of one op."""
    arrays = [np.asarray(a) for a in arrays]
    dtypes = [a.dtype for a in arrays]
    inputs = [Variable(a.copy(), requires_grad=True) for a in arrays]
    out = engine_fn(*inputs)

    expected = np.asarray(numpy_fn(*arrays))
    assert isinstance(out, Variable), f"expected a Variable, got {type(out).__name__}"
    assert out.shape == expected.shape, f"forward shape {out.shape}, numpy gives {expected.shape}"
    assert out.dtype == expected.dtype, f"forward dtype {out.dtype}, numpy gives {expected.dtype}"
    np.testing.assert_allclose(
        out.data, expected, **forward_tolerance(out.dtype), err_msg="forward value"
    )

    weights = np.random.default_rng(seed).standard_normal(expected.shape).astype(out.dtype)
    out.backward(gradient=weights)
    numeric = numerical_gradients(numpy_fn, arrays, weights)
    for i, (variable, reference) in enumerate(zip(inputs, numeric, strict=True)):
        assert variable.grad is not None, f"input {i} got no gradient"
        assert variable.grad.shape == variable.shape, (
            f"input {i}: grad shape {variable.grad.shape}, data shape {variable.shape}"
        )
        assert variable.grad.dtype == variable.dtype, (
            f"input {i}: grad dtype {variable.grad.dtype}, data dtype {variable.dtype}"
        )
        np.testing.assert_allclose(
            variable.grad, reference, **tolerance(dtypes), err_msg=f"gradient of input {i}"
        )

    if all(d == np.float64 for d in dtypes):
        assert_gradcheck_passes(engine_fn, arrays, weights)


def assert_gradcheck_passes(engine_fn, arrays, weights) -> None:
    """The package's gradcheck on the scalar sum(weights * f(inputs))."""

    def projected(*variables: Variable) -> Variable:
        return (engine_fn(*variables) * weights).sum()

    inputs = [Variable(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
    assert gradcheck(projected, inputs) is True


def log_softmax(x: Variable, axis: int) -> Variable:
    """log_softmax is a method (as torch.Tensor.log_softmax) or a module function."""
    import tinytorch.autograd as autograd

    if hasattr(x, "log_softmax"):
        return x.log_softmax(axis=axis)
    return autograd.log_softmax(x, axis=axis)


def numpy_log_softmax(a: np.ndarray, axis: int) -> np.ndarray:
    shifted = a - np.max(a, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def numpy_sigmoid(a: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0, -a))


# ---------------------------------------------------------------- elementwise, one input

UNARY_OPS = {
    "neg": (lambda x: -x, np.negative, "any"),
    "exp": (lambda x: x.exp(), np.exp, "any"),
    "log": (lambda x: x.log(), np.log, "positive"),
    "tanh": (lambda x: x.tanh(), np.tanh, "any"),
    "sigmoid": (lambda x: x.sigmoid(), numpy_sigmoid, "any"),
    "relu": (lambda x: x.relu(), lambda a: np.maximum(a, 0), "nonzero"),
    "pow_int": (lambda x: x**3, lambda a: a**3, "any"),
    "pow_square": (lambda x: x**2, lambda a: a**2, "any"),
    "pow_fraction": (lambda x: x**2.5, lambda a: a**2.5, "positive"),
    "pow_negative": (lambda x: x**-1.5, lambda a: a**-1.5, "positive"),
    "pow_sqrt": (lambda x: x**0.5, np.sqrt, "positive"),
    "pow_zero": (lambda x: x**0, lambda a: a**0, "any"),
}


@pytest.mark.parametrize("name", sorted(UNARY_OPS))
@FAST
@given(shape=SHAPES, dtype=DTYPES, seed=SEEDS)
def test_unary_op_gradient(name, shape, dtype, seed):
    engine_fn, numpy_fn, domain = UNARY_OPS[name]
    rng = np.random.default_rng(seed)
    check_op(engine_fn, numpy_fn, [sample(rng, shape, dtype, domain)], seed)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "name, engine_fn, expected_value, expected_grad",
    [
        # sigmoid(x) = 1/(1+e^-x) -> 0 and 1 at -+inf, its slope s(1-s) -> 0
        ("sigmoid", lambda x: x.sigmoid(), [0.0, 0.5, 1.0], [0.0, 0.25, 0.0]),
        # tanh -> -1 and 1, slope 1 - tanh^2 -> 0
        ("tanh", lambda x: x.tanh(), [-1.0, 0.0, 1.0], [0.0, 1.0, 0.0]),
        ("relu", lambda x: x.relu(), [0.0, 0.0, 1000.0], [0.0, 0.0, 1.0]),
    ],
)
def test_saturating_ops_are_stable_at_large_magnitude(
    name, engine_fn, expected_value, expected_grad, dtype
):
    """At x = -1000, 0, 1000 a naive exp(-x) overflows: no warning, no NaN, right limits."""
    x = Variable(np.array([-1000.0, 0.0, 1000.0], dtype=dtype), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = engine_fn(x)
        y.sum().backward()
    np.testing.assert_allclose(y.data, expected_value, atol=1e-12, err_msg=f"{name} forward")
    np.testing.assert_allclose(x.grad, expected_grad, atol=1e-12, err_msg=f"{name} gradient")
    assert y.dtype == dtype and x.grad.dtype == dtype


@FAST
@given(shape=NONEMPTY_SHAPES, dtype=DTYPES, seed=SEEDS)
def test_sigmoid_matches_stable_reference_over_a_wide_range(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    data = (rng.standard_normal(shape) * 300).astype(dtype)
    x = Variable(data, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = x.sigmoid()
        y.sum().backward()
    reference = numpy_sigmoid(data.astype(np.float64))
    np.testing.assert_allclose(y.data, reference, rtol=1e-6, atol=1e-30)
    # s(1 - s) cannot resolve slopes below the spacing of numbers near s = 1 (PyTorch
    # neither): absolute tolerance of one machine epsilon, against a maximum of 0.25.
    np.testing.assert_allclose(
        x.grad, reference * (1 - reference), rtol=1e-5, atol=np.finfo(dtype).eps
    )


# --------------------------------------------------------- elementwise, two inputs

BINARY_OPS = {
    "add": (lambda a, b: a + b, np.add, "any", "any"),
    "sub": (lambda a, b: a - b, np.subtract, "any", "any"),
    "mul": (lambda a, b: a * b, np.multiply, "any", "any"),
    "div": (lambda a, b: a / b, np.divide, "any", "nonzero"),
    "pow_variable_exponent": (lambda a, b: a**b, np.power, "positive", "any"),
}


@pytest.mark.parametrize("name", sorted(BINARY_OPS))
@FAST
@given(shapes=BROADCAST_PAIRS, dtype_a=DTYPES, dtype_b=DTYPES, seed=SEEDS)
def test_binary_op_gradient_with_broadcasting(name, shapes, dtype_a, dtype_b, seed):
    engine_fn, numpy_fn, domain_a, domain_b = BINARY_OPS[name]
    rng = np.random.default_rng(seed)
    shape_a, shape_b = shapes.input_shapes
    a = sample(rng, shape_a, dtype_a, domain_a)
    b = sample(rng, shape_b, dtype_b, domain_b)
    check_op(engine_fn, numpy_fn, [a, b], seed)


@pytest.mark.parametrize("name", ["add", "mul", "sub", "div"])
def test_same_variable_on_both_sides_counts_twice(name):
    """x op x: both operand slots feed the same leaf, and both contributions add."""
    engine_fn, numpy_fn, _, _ = BINARY_OPS[name]
    data = np.array([0.5, -1.5, 2.0])
    x = Variable(data.copy(), requires_grad=True)
    engine_fn(x, x).backward(gradient=np.ones(3))
    reference = numerical_gradients(lambda a: numpy_fn(a, a), [data], np.ones(3))[0]
    np.testing.assert_allclose(x.grad, reference, rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------- reflected operators

REFLECTED = {
    "radd": (lambda c, x: c + x, "any"),
    "rsub": (lambda c, x: c - x, "any"),
    "rmul": (lambda c, x: c * x, "any"),
    "rdiv": (lambda c, x: c / x, "nonzero"),
    "rpow": (lambda c, x: c**x, "any"),
    "add_const": (lambda c, x: x + c, "any"),
    "sub_const": (lambda c, x: x - c, "any"),
    "mul_const": (lambda c, x: x * c, "any"),
    "div_const": (lambda c, x: x / c, "any"),
    "pow_const": (lambda c, x: x**c, "positive"),
}


@pytest.mark.parametrize("name", sorted(REFLECTED))
@FAST
@given(
    shapes=BROADCAST_PAIRS,
    kind=st.sampled_from(["number", "numpy_scalar", "array"]),
    dtype=DTYPES,
    seed=SEEDS,
)
def test_operators_with_numbers_and_numpy_arrays(name, shapes, kind, dtype, seed):
    """Numbers, numpy scalars and numpy arrays mix with Variables on either side; numpy
    on the left must still give a Variable (not an object array of Variables)."""
    expression, domain = REFLECTED[name]
    rng = np.random.default_rng(seed)
    shape_c, shape_x = shapes.input_shapes
    x_data = sample(rng, shape_x, dtype, domain)
    if kind == "array":
        constant = sample(rng, shape_c, dtype, "positive")
    elif kind == "numpy_scalar":
        constant = dtype(rng.uniform(0.5, 2.0))
    else:
        constant = float(rng.uniform(0.5, 2.0))
    check_op(lambda x: expression(constant, x), lambda a: expression(constant, a), [x_data], seed)


def test_numpy_array_matmul_variable_gives_variable():
    rng = np.random.default_rng(0)
    left = rng.standard_normal((2, 3))
    right = rng.standard_normal((3, 4))
    check_op(lambda x: left @ x, lambda a: left @ a, [right])
    check_op(lambda x: x @ right, lambda a: a @ right, [left])


# --------------------------------------------------------------------------- matmul


@st.composite
def matmul_shapes(draw) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Operand shapes covering every np.matmul case: 1-D on either side, 2-D, and
    batched with broadcasting batch dimensions."""
    n, k, m = (draw(st.integers(1, 4)) for _ in range(3))
    batch_a, batch_b = draw(
        hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3)
    ).input_shapes
    a_is_vector, b_is_vector = draw(st.booleans()), draw(st.booleans())
    shape_a = (k,) if a_is_vector else (*batch_a, n, k)
    shape_b = (k,) if b_is_vector else (*batch_b, k, m)
    return shape_a, shape_b


@FAST
@given(shapes=matmul_shapes(), dtype_a=DTYPES, dtype_b=DTYPES, seed=SEEDS)
def test_matmul_gradient(shapes, dtype_a, dtype_b, seed):
    rng = np.random.default_rng(seed)
    a = sample(rng, shapes[0], dtype_a, "any")
    b = sample(rng, shapes[1], dtype_b, "any")
    check_op(lambda x, y: x @ y, np.matmul, [a, b], seed)


@pytest.mark.parametrize(
    "shape_a, shape_b",
    [
        ((3,), (3,)),
        ((3,), (3, 2)),
        ((2, 3), (3,)),
        ((4, 2, 3), (3,)),
        ((3,), (4, 3, 2)),
        ((2, 1, 2, 3), (4, 3, 5)),
        ((5, 2, 3), (1, 3, 2)),
    ],
)
def test_matmul_named_cases(shape_a, shape_b):
    """The np.matmul cases by name, so a failure says which one broke."""
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    check_op(lambda x, y: x @ y, np.matmul, [a, b])


# ----------------------------------------------------------------------- reductions


@st.composite
def shape_and_axis(draw):
    """A shape and an axis argument: None, an int (maybe negative) or a tuple."""
    shape = draw(SHAPES)
    ndim = len(shape)
    if ndim == 0:
        return shape, None
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return shape, None
    if kind == "int":
        return shape, draw(st.integers(-ndim, ndim - 1))
    axes = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    negate = draw(st.booleans())
    return shape, tuple(a - ndim if negate else a for a in axes)


REDUCTIONS = {
    "sum": (lambda x, **kw: x.sum(**kw), np.sum, "any"),
    "mean": (lambda x, **kw: x.mean(**kw), np.mean, "any"),
    "max": (lambda x, **kw: x.max(**kw), np.max, "distinct"),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@FAST
@given(case=shape_and_axis(), keepdims=st.booleans(), dtype=DTYPES, seed=SEEDS)
def test_reduction_gradient(name, case, keepdims, dtype, seed):
    engine_reduce, numpy_reduce, domain = REDUCTIONS[name]
    shape, axis = case
    data = sample(np.random.default_rng(seed), shape, dtype, domain)
    check_op(
        lambda x: engine_reduce(x, axis=axis, keepdims=keepdims),
        lambda a: numpy_reduce(a, axis=axis, keepdims=keepdims),
        [data],
        seed,
    )


def test_max_gradient_goes_to_the_maximum_only():
    x = Variable(np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]]), requires_grad=True)
    x.max(axis=1).backward(gradient=np.array([10.0, 20.0]))
    np.testing.assert_array_equal(x.grad, [[0.0, 10.0, 0.0], [20.0, 0.0, 0.0]])


# --------------------------------------------------------------- shape manipulation


@st.composite
def shape_and_new_shape(draw):
    shape = draw(SHAPES)
    size = int(np.prod(shape, dtype=np.int64))
    divisors = [d for d in range(1, size + 1) if size % d == 0]
    d = draw(st.sampled_from(divisors))
    new_shape = draw(
        st.sampled_from(
            [
                (size,),
                (-1,),
                (1, size),
                (size, 1),
                (d, -1),
                (d, size // d, 1),
                tuple(reversed(shape)),
            ]
        )
    )
    return shape, new_shape


@FAST
@given(case=shape_and_new_shape(), dtype=DTYPES, seed=SEEDS)
def test_reshape_gradient(case, dtype, seed):
    shape, new_shape = case
    data = sample(np.random.default_rng(seed), shape, dtype, "any")
    check_op(lambda x: x.reshape(new_shape), lambda a: a.reshape(new_shape), [data], seed)


@FAST
@given(shape=SHAPES, dtype=DTYPES, seed=SEEDS)
def test_transpose_property_T_reverses_axes(shape, dtype, seed):
    data = sample(np.random.default_rng(seed), shape, dtype, "any")
    check_op(lambda x: x.T, lambda a: a.T, [data], seed)


@st.composite
def shape_and_two_axes(draw):
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=3))
    ndim = len(shape)
    return shape, draw(st.integers(-ndim, ndim - 1)), draw(st.integers(-ndim, ndim - 1))


@FAST
@given(case=shape_and_two_axes(), dtype=DTYPES, seed=SEEDS)
def test_transpose_of_two_axes_swaps_them_as_pytorch(case, dtype, seed):
    """The contract names the method `transpose`; with two axes it is PyTorch's
    transpose(dim0, dim1), a swap (numpy's would read them as a full permutation)."""
    shape, first, second = case
    data = sample(np.random.default_rng(seed), shape, dtype, "any")
    check_op(
        lambda x: x.transpose(first, second), lambda a: np.swapaxes(a, first, second), [data], seed
    )


@pytest.mark.parametrize("shape", [(2, 3), (1, 4), (3, 1)])
def test_transpose_method_on_matrices(shape):
    """For 2-D, numpy's transpose(1, 0) and torch's transpose(1, 0) mean the same swap."""
    data = np.random.default_rng(2).standard_normal(shape)
    check_op(lambda x: x.transpose(1, 0), lambda a: a.T, [data])


# ------------------------------------------------------------------------- indexing

INDEXES = {
    "integer": (3, 2),
    "negative_integer": (-1,),
    "slice": (slice(1, 3),),
    "step_slice": (slice(None, None, 2),),
    "reversed": (slice(None, None, -1),),
    "row_and_column": (1, slice(None)),
    "column": (slice(None), 1),
    "ellipsis": (Ellipsis, 0),
    "newaxis": (None, slice(1, None)),
    "int_array_repeated": (np.array([0, 2, 0, 0]),),
    "int_list_repeated": ([1, 1, 3],),
    "int_array_2d_repeated": (np.array([[0, 1], [1, 1]]),),
    "two_int_arrays": (np.array([0, 3, 0]), np.array([1, 1, 1])),
    "int_array_and_slice": (np.array([2, 2]), slice(0, 2)),
    "negative_int_array": (np.array([-1, -1, 0]),),
    "int_and_list": (1, [0, 0, 2]),
    "ellipsis_and_list": (Ellipsis, [2, 2]),
    "nested_list": ([[0, 1], [1, 1]],),
    "broadcast_int_arrays": (np.array([[0], [3]]), np.array([0, 2, 2])),
}


@pytest.mark.parametrize("name", sorted(INDEXES))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_indexing_gradient(name, dtype):
    """Repeated integer indices must accumulate (a plain `grad[idx] = g` would keep one)."""
    index = INDEXES[name]
    key = index if len(index) > 1 else index[0]
    data = sample(np.random.default_rng(3), (4, 3), dtype, "any")
    check_op(lambda x: x[key], lambda a: a[key], [data])


def test_repeated_index_accumulates_exact_count():
    x = Variable(np.zeros(3), requires_grad=True)
    x[np.array([2, 0, 2, 2])].sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 0.0, 3.0])


# ----------------------------------------------------------------------- log_softmax


@FAST
@given(shape=NONEMPTY_SHAPES, dtype=DTYPES, seed=SEEDS, data=st.data())
def test_log_softmax_gradient(shape, dtype, seed, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    values = sample(np.random.default_rng(seed), shape, dtype, "any") * 3
    check_op(lambda x: log_softmax(x, axis), lambda a: numpy_log_softmax(a, axis), [values], seed)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_softmax_is_stable_for_large_logits(dtype):
    logits = np.array([[1000.0, 0.0, -1000.0], [1000.0, 1000.0, 1000.0]], dtype=dtype)
    x = Variable(logits, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = log_softmax(x, axis=1)
        y[:, 0].sum().backward()
    expected = numpy_log_softmax(logits.astype(np.float64), axis=1)
    np.testing.assert_allclose(y.data, expected, rtol=1e-6)
    # d/dx_j log_softmax(x)_0 = [j == 0] - softmax(x)_j
    softmax = np.exp(expected)
    np.testing.assert_allclose(x.grad, np.eye(3)[0] - softmax, atol=1e-6)


# ------------------------------------------------------------------ empty arrays


@pytest.mark.parametrize(
    "expression",
    [
        lambda x: (x * 2.0 + 1.0).sum(),
        lambda x: (x @ np.ones((3, 2))).sum(),
        lambda x: x.sum(axis=0).sum(),
        lambda x: x.tanh().reshape((-1,)).sum(),
    ],
    ids=["elementwise", "matmul", "sum_axis", "tanh_reshape"],
)
def test_empty_arrays_get_empty_gradients(expression):
    x = Variable(np.zeros((0, 3)), requires_grad=True)
    out = expression(x)
    assert out.shape == () and float(out.data) == 0.0
    out.backward()
    assert x.grad.shape == (0, 3) and x.grad.dtype == np.float64


# ------------------------------------------------------------------ composite graphs


def test_composite_expression_gradient():
    """An expression mixing most ops, so backward runs them in one graph."""
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), rng.standard_normal(2)

    def engine(x, w, b):
        h = (x @ w + b).tanh()
        return (h.sigmoid() * h.exp() - h / 3.0).sum(axis=0) ** 2

    def reference(x, w, b):
        h = np.tanh(x @ w + b)
        return np.sum(numpy_sigmoid(h) * np.exp(h) - h / 3.0, axis=0) ** 2

    check_op(engine, reference, [x, w, b])


def test_gradcheck_works_in_float64_on_float32_inputs():
    """The contract: gradcheck compares in float64, so float32 inputs do not make a
    correct op fail (finite differences in float32 with eps=1e-6 would be noise)."""
    x = Variable(np.array([0.3, -1.2, 2.0], dtype=np.float32), requires_grad=True)
    assert gradcheck(lambda v: (v.tanh() * v).sum(), [x]) is True
