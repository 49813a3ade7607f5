"""The same expressions in tinytorch and in PyTorch (CPU, float64): values and gradients
agree to rtol=1e-7. Skipped when torch is not installed."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinytorch.autograd import Variable

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.torch

RTOL = 1e-7
ATOL = 1e-12


def random_input(rng: np.random.Generator, shape: tuple[int, ...], domain: str) -> np.ndarray:
    if domain == "positive":
        return rng.uniform(0.5, 2.0, shape)
    if domain == "nonzero":
        return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 2.0, shape)
    if domain == "distinct":
        size = int(np.prod(shape, dtype=np.int64))
        return ((rng.permutation(size) + rng.uniform(0, 0.2, size)) / 2).reshape(shape)
    return rng.standard_normal(shape)


def run_both(tt_fn, torch_fn, arrays, seed=0):
    """Evaluate and backpropagate the same random output gradient in both engines;
    return (tinytorch value, torch value, tinytorch grads, torch grads)."""
    tt_inputs = [Variable(a.copy(), requires_grad=True) for a in arrays]
    th_inputs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    tt_out = tt_fn(*tt_inputs)
    th_out = torch_fn(*th_inputs)
    weights = np.random.default_rng(seed + 1).standard_normal(tuple(th_out.shape))
    tt_out.backward(gradient=weights)
    th_out.backward(gradient=torch.tensor(weights))
    tt_grads = [v.grad for v in tt_inputs]
    th_grads = [t.grad.numpy() if t.grad is not None else None for t in th_inputs]
    return tt_out.data, th_out.detach().numpy(), tt_grads, th_grads


def assert_same(tt_fn, torch_fn, arrays, seed=0):
    tt_value, th_value, tt_grads, th_grads = run_both(tt_fn, torch_fn, arrays, seed)
    assert tt_value.dtype == np.float64
    assert tt_value.shape == th_value.shape, f"value shape {tt_value.shape} vs {th_value.shape}"
    np.testing.assert_allclose(tt_value, th_value, rtol=RTOL, atol=ATOL, err_msg="value")
    for i, (mine, theirs) in enumerate(zip(tt_grads, th_grads, strict=True)):
        assert mine is not None and mine.shape == theirs.shape, f"input {i} grad shape"
        np.testing.assert_allclose(mine, theirs, rtol=RTOL, atol=ATOL, err_msg=f"grad {i}")


def tt_log_softmax(x, axis):
    import tinytorch.autograd as autograd

    if hasattr(x, "log_softmax"):
        return x.log_softmax(axis=axis)
    return autograd.log_softmax(x, axis=axis)


# name: (tinytorch expression, torch expression, [(shape, domain), ...])
CASES = {
    "add_broadcast": (lambda a, b: a + b, lambda a, b: a + b, [((2, 3), "any"), ((3,), "any")]),
    "sub_broadcast": (lambda a, b: a - b, lambda a, b: a - b, [((2, 1), "any"), ((1, 3), "any")]),
    "mul_broadcast": (
        lambda a, b: a * b,
        lambda a, b: a * b,
        [((4, 1, 3), "any"), ((2, 1), "any")],
    ),
    "div_broadcast": (
        lambda a, b: a / b,
        lambda a, b: a / b,
        [((2, 3), "any"), ((2, 1), "nonzero")],
    ),
    "neg": (lambda a: -a, lambda a: -a, [((3, 2), "any")]),
    "pow_number": (lambda a: a**3, lambda a: a**3, [((5,), "any")]),
    "pow_fraction": (lambda a: a**-0.5, lambda a: a**-0.5, [((5,), "positive")]),
    "pow_variable": (lambda a, b: a**b, lambda a, b: a**b, [((2, 3), "positive"), ((3,), "any")]),
    "rpow_number": (lambda a: 2.0**a, lambda a: 2.0**a, [((4,), "any")]),
    "rsub_rdiv_numbers": (
        lambda a: (1.0 - a) / (3.0 / a),
        lambda a: (1.0 - a) / (3.0 / a),
        [((4,), "nonzero")],
    ),
    "exp": (lambda a: a.exp(), lambda a: a.exp(), [((2, 3), "any")]),
    "log": (lambda a: a.log(), lambda a: a.log(), [((2, 3), "positive")]),
    "tanh": (lambda a: a.tanh(), lambda a: a.tanh(), [((2, 3), "any")]),
    "sigmoid": (lambda a: a.sigmoid(), lambda a: a.sigmoid(), [((2, 3), "any")]),
    "sigmoid_large": (
        lambda a: (a * 400).sigmoid(),
        lambda a: (a * 400).sigmoid(),
        [((6,), "any")],
    ),
    "relu": (lambda a: a.relu(), lambda a: a.relu(), [((2, 3), "nonzero")]),
    "matmul_vv": (lambda a, b: a @ b, lambda a, b: a @ b, [((3,), "any"), ((3,), "any")]),
    "matmul_vm": (lambda a, b: a @ b, lambda a, b: a @ b, [((3,), "any"), ((3, 2), "any")]),
    "matmul_mv": (lambda a, b: a @ b, lambda a, b: a @ b, [((2, 3), "any"), ((3,), "any")]),
    "matmul_mm": (lambda a, b: a @ b, lambda a, b: a @ b, [((2, 3), "any"), ((3, 4), "any")]),
    "matmul_batched": (
        lambda a, b: a @ b,
        lambda a, b: a @ b,
        [((5, 2, 3), "any"), ((5, 3, 4), "any")],
    ),
    "matmul_broadcast_batch": (
        lambda a, b: a @ b,
        lambda a, b: a @ b,
        [((2, 1, 2, 3), "any"), ((4, 3, 2), "any")],
    ),
    "matmul_batched_vector": (
        lambda a, b: a @ b,
        lambda a, b: a @ b,
        [((3,), "any"), ((2, 3, 4), "any")],
    ),
    "sum_all": (lambda a: a.sum(), lambda a: a.sum(), [((2, 3, 4), "any")]),
    "sum_axis": (lambda a: a.sum(axis=1), lambda a: a.sum(dim=1), [((2, 3, 4), "any")]),
    "sum_tuple_keepdims": (
        lambda a: a.sum(axis=(0, 2), keepdims=True),
        lambda a: a.sum(dim=(0, 2), keepdim=True),
        [((2, 3, 4), "any")],
    ),
    "mean_all": (lambda a: a.mean(), lambda a: a.mean(), [((2, 3, 4), "any")]),
    "mean_negative_axis": (
        lambda a: a.mean(axis=-1, keepdims=True),
        lambda a: a.mean(dim=-1, keepdim=True),
        [((2, 3, 4), "any")],
    ),
    "mean_tuple": (
        lambda a: a.mean(axis=(0, 1)),
        lambda a: a.mean(dim=(0, 1)),
        [((2, 3, 4), "any")],
    ),
    "max_all": (lambda a: a.max(), lambda a: a.max(), [((2, 3, 4), "distinct")]),
    "max_axis": (lambda a: a.max(axis=1), lambda a: a.amax(dim=1), [((2, 3, 4), "distinct")]),
    "max_tuple_keepdims": (
        lambda a: a.max(axis=(0, 2), keepdims=True),
        lambda a: a.amax(dim=(0, 2), keepdim=True),
        [((2, 3, 4), "distinct")],
    ),
    "reshape": (
        lambda a: a.reshape((4, 6)) * 2,
        lambda a: a.reshape((4, 6)) * 2,
        [((2, 3, 4), "any")],
    ),
    "transpose_T": (lambda a: a.T @ a, lambda a: a.T @ a, [((3, 2), "any")]),
    "transpose_swap": (
        lambda a: a.transpose(1, 0) * 3,
        lambda a: a.transpose(1, 0) * 3,
        [((3, 2), "any")],
    ),
    "transpose_swap_3d": (
        lambda a: a.transpose(0, 2) * 3,
        lambda a: a.transpose(0, 2) * 3,
        [((2, 3, 4), "any")],
    ),
    "index_slices": (lambda a: a[1:, ::2], lambda a: a[1:, ::2], [((3, 4), "any")]),
    "index_int": (lambda a: a[1] * a[2], lambda a: a[1] * a[2], [((3, 4), "any")]),
    "index_repeated_array": (
        lambda a: a[np.array([0, 2, 0, 0])],
        lambda a: a[torch.tensor([0, 2, 0, 0])],
        [((3, 4), "any")],
    ),
    "index_two_arrays": (
        lambda a: a[np.array([0, 1, 1]), np.array([3, 3, 3])],
        lambda a: a[torch.tensor([0, 1, 1]), torch.tensor([3, 3, 3])],
        [((3, 4), "any")],
    ),
    "log_softmax_last": (
        lambda a: tt_log_softmax(a, -1),
        lambda a: a.log_softmax(dim=-1),
        [((3, 5), "any")],
    ),
    "log_softmax_first": (
        lambda a: tt_log_softmax(a * 50, 0),
        lambda a: (a * 50).log_softmax(dim=0),
        [((4, 3), "any")],
    ),
    "reflected_arrays": (
        lambda a: np.array([1.0, 2.0, 3.0]) * a - np.array([0.5, 0.25, 2.0]) / (a * a + 1),
        lambda a: (
            torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64) * a
            - torch.tensor([0.5, 0.25, 2.0], dtype=torch.float64) / (a * a + 1)
        ),
        [((2, 3), "any")],
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_matches_torch(name):
    tt_fn, torch_fn, specs = CASES[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    arrays = [random_input(rng, shape, domain) for shape, domain in specs]
    assert_same(tt_fn, torch_fn, arrays)


# ------------------------------------------------- random shapes, as in the gradient tests

FEW = settings(deadline=None, max_examples=15, suppress_health_check=[HealthCheck.too_slow])
BROADCAST_PAIRS = hnp.mutually_broadcastable_shapes(
    num_shapes=2, min_dims=0, max_dims=3, max_side=3
)
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a**b,
}


@pytest.mark.parametrize("name", sorted(BINARY))
@FEW
@given(shapes=BROADCAST_PAIRS, seed=st.integers(0, 2**32 - 1))
def test_binary_ops_with_random_broadcasting_match_torch(name, shapes, seed):
    rng = np.random.default_rng(seed)
    shape_a, shape_b = shapes.input_shapes
    a = random_input(rng, shape_a, "positive" if name == "pow" else "any")
    b = random_input(rng, shape_b, "nonzero" if name == "div" else "any")
    assert_same(BINARY[name], BINARY[name], [a, b], seed)


@st.composite
def batched_matmul_shapes(draw):
    n, k, m = (draw(st.integers(1, 3)) for _ in range(3))
    batch_a, batch_b = draw(
        hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3)
    ).input_shapes
    shape_a = (k,) if draw(st.booleans()) else (*batch_a, n, k)
    shape_b = (k,) if draw(st.booleans()) else (*batch_b, k, m)
    return shape_a, shape_b


@FEW
@given(shapes=batched_matmul_shapes(), seed=st.integers(0, 2**32 - 1))
def test_matmul_with_random_shapes_matches_torch(shapes, seed):
    rng = np.random.default_rng(seed)
    arrays = [random_input(rng, shape, "any") for shape in shapes]
    assert_same(lambda a, b: a @ b, lambda a, b: a @ b, arrays, seed)


@st.composite
def shape_and_axes(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    axes = draw(st.lists(st.integers(0, len(shape) - 1), min_size=1, unique=True))
    return shape, tuple(axes)


@pytest.mark.parametrize("name", ["sum", "mean", "max"])
@FEW
@given(case=shape_and_axes(), keepdims=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_reductions_over_random_axes_match_torch(name, case, keepdims, seed):
    shape, axes = case
    data = random_input(np.random.default_rng(seed), shape, "distinct")
    torch_name = "amax" if name == "max" else name

    def mine(a):
        return getattr(a, name)(axis=axes, keepdims=keepdims)

    def theirs(a):
        return getattr(a, torch_name)(dim=axes, keepdim=keepdims)

    assert_same(mine, theirs, [data], seed)


# ------------------------------------------------------------------------ max ties


@pytest.mark.parametrize(
    "tt_fn, torch_fn",
    [
        (lambda a: a.max(), lambda a: a.max()),
        (lambda a: a.max(axis=1), lambda a: a.amax(dim=1)),
        (lambda a: a.max(axis=(0, 1), keepdims=True), lambda a: a.amax(dim=(0, 1), keepdim=True)),
    ],
    ids=["all", "axis", "tuple_keepdims"],
)
def test_max_with_ties_shares_the_gradient_as_torch(tt_fn, torch_fn):
    """Finite differences are undefined at a tie, so the rule is PyTorch's: max() over
    everything and amax over axes split the gradient evenly among the tied maxima."""
    data = np.array([[3.0, 1.0, 3.0], [2.0, 2.0, 0.0]])
    assert_same(tt_fn, torch_fn, [data])


# ------------------------------------------------------------------ composite graphs


def mlp_loss(x, w1, b1, w2, b2, labels, log_softmax):
    """Two-layer perceptron with a cross-entropy loss: tanh hidden layer, log-softmax,
    pick each row's label by integer-array indexing, mean negative log-likelihood."""
    hidden = (x @ w1 + b1).tanh()
    logits = hidden @ w2 + b2
    log_probs = log_softmax(logits)
    rows = np.arange(labels.shape[0])
    return -(log_probs[rows, labels]).mean()


def test_mlp_loss_and_parameter_gradients_match_torch():
    rng = np.random.default_rng(10)
    arrays = [rng.standard_normal(s) for s in [(8, 5), (5, 7), (7,), (7, 3), (3,)]]
    labels = rng.integers(0, 3, size=8)

    tt_inputs = [Variable(a.copy(), requires_grad=True) for a in arrays]
    tt_loss = mlp_loss(*tt_inputs, labels, lambda z: tt_log_softmax(z, -1))
    tt_loss.backward()

    th_inputs = [torch.tensor(a, requires_grad=True) for a in arrays]
    hidden = (th_inputs[0] @ th_inputs[1] + th_inputs[2]).tanh()
    th_loss = torch.nn.functional.cross_entropy(
        hidden @ th_inputs[3] + th_inputs[4], torch.tensor(labels)
    )
    th_loss.backward()

    assert tt_loss.shape == ()
    np.testing.assert_allclose(tt_loss.data, th_loss.item(), rtol=RTOL)
    for i, (mine, theirs) in enumerate(zip(tt_inputs, th_inputs, strict=True)):
        np.testing.assert_allclose(
            mine.grad, theirs.grad.numpy(), rtol=RTOL, atol=ATOL, err_msg=f"input {i}"
        )


def diamond(x, y):
    """x, y -> a -> (b, c) -> d: a is reached along two paths, x and y along several."""
    a = x * y + x
    b = a.exp()
    c = a.tanh() * y
    return (b * c + a / (b + 1.0)).sum()


def reused(x):
    """The same leaf used many times, also on both sides of one op."""
    return (x * x * x + x / (x * x + 1.0) - x + x.sigmoid() * x).mean()


@pytest.mark.parametrize(
    "expression, specs",
    [(diamond, [((2, 3), "any"), ((3,), "any")]), (reused, [((4,), "any")])],
    ids=["diamond", "reused_variable"],
)
def test_composite_graphs_match_torch(expression, specs):
    rng = np.random.default_rng(11)
    arrays = [random_input(rng, shape, domain) for shape, domain in specs]
    assert_same(expression, expression, arrays)


def test_accumulation_across_two_backward_calls_matches_torch():
    data = np.array([0.3, -0.7, 1.1])
    x = Variable(data.copy(), requires_grad=True)
    t = torch.tensor(data, requires_grad=True)
    y = (x.tanh() * x).sum()
    s = (t.tanh() * t).sum()
    y.backward(retain_graph=True)
    s.backward(retain_graph=True)
    y.backward()
    s.backward()
    (x * 2.0).sum().backward()
    (t * 2.0).sum().backward()
    np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=RTOL)


def test_retain_grad_on_a_non_leaf_matches_torch():
    data = np.array([[0.5, -1.0], [2.0, 0.1]])
    x = Variable(data.copy(), requires_grad=True)
    t = torch.tensor(data, requires_grad=True)
    hidden_x = x @ x + 1.0
    hidden_t = t @ t + 1.0
    hidden_x.retain_grad()
    hidden_t.retain_grad()
    (hidden_x.sigmoid() * hidden_x).sum().backward()
    (hidden_t.sigmoid() * hidden_t).sum().backward()
    np.testing.assert_allclose(hidden_x.grad, hidden_t.grad.numpy(), rtol=RTOL)
    np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=RTOL)
