"""The autograd contract's semantics (DESIGN.md "The autograd contract") and its errors.

Where the contract leaves a detail open, these tests follow PyTorch's behaviour.
Errors are checked for their type and for the fragment a user needs to fix the
mistake: the op, the shapes, the Function, the input.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from tinytorch.autograd import Function, Variable, gradcheck, is_grad_enabled, no_grad

# The contract does not fix the class of shape and gradient-count errors: numpy raises
# ValueError, PyTorch RuntimeError. Either is accepted; the message is what is checked.
SHAPE_ERRORS = (ValueError, RuntimeError)


def leaf(values, dtype=np.float64) -> Variable:
    return Variable(np.array(values, dtype=dtype), requires_grad=True)


def grad_fn_name(v: Variable) -> str:
    """The op name the repr shows in `grad_fn=<Name>`."""
    match = re.search(r"grad_fn=<(\w+)>", repr(v))
    assert match, f"repr {v!r} does not show grad_fn=<Op>"
    return match.group(1)


# ------------------------------------------------------------------------- dtype rules


@pytest.mark.parametrize(
    "data",
    [3, 2.5, [1, 2, 3], [[1.5, 2.0]], np.array([1, 2]), np.array(4, dtype=np.int8)],
    ids=["int", "float", "int_list", "float_list", "int_array", "int8_scalar_array"],
)
def test_numbers_lists_and_integer_arrays_become_float32(data):
    v = Variable(data)
    assert isinstance(v.data, np.ndarray)
    assert v.dtype == np.float32 and v.data.dtype == np.float32
    np.testing.assert_array_equal(v.data, np.asarray(data, dtype=np.float32))
    assert v.shape == np.shape(data) and v.ndim == np.ndim(data)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_floating_arrays_keep_their_dtype(dtype):
    data = np.array([1.0, 2.0], dtype=dtype)
    assert Variable(data).dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_grad_has_the_dtype_and_shape_of_data(dtype):
    x = Variable(np.ones((2, 3), dtype=dtype), requires_grad=True)
    (x * 2).sum().backward()
    assert x.grad.dtype == dtype and x.grad.shape == (2, 3)
    assert isinstance(x.grad, np.ndarray)


def test_mixed_precision_gives_each_input_a_grad_of_its_own_dtype():
    a = Variable(np.ones(3, dtype=np.float32), requires_grad=True)
    b = Variable(np.ones(3, dtype=np.float64), requires_grad=True)
    out = a * b
    assert out.dtype == np.float64  # numpy's promotion
    out.sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64


def test_python_numbers_do_not_promote_float32():
    x = Variable(np.ones(2, dtype=np.float32), requires_grad=True)
    assert (x * 2.5 + 1).dtype == np.float32
    assert (2.5 * x - 1).dtype == np.float32


def test_grad_is_a_scalar_array_for_a_scalar_leaf():
    x = Variable(3.0, requires_grad=True)
    (x * x).backward()
    assert x.grad.shape == () and x.grad.dtype == np.float32
    assert float(x.grad) == 6.0


# ------------------------------------------------- requires_grad, is_leaf, grad_fn


def test_requires_grad_propagates_to_results():
    a, b = leaf([1.0]), Variable(np.array([2.0]))
    assert (a * b).requires_grad and (b * a).requires_grad
    assert not (b * b).requires_grad
    assert not Variable([1.0]).requires_grad


def test_is_leaf_and_grad_fn():
    a, b = leaf([1.0]), Variable(np.array([2.0]))
    assert a.is_leaf and a.grad_fn is None
    made = a * b
    assert not made.is_leaf and made.grad_fn is not None
    constant = b * b
    # PyTorch: a result that does not require grad is a leaf with no grad_fn.
    assert constant.is_leaf and constant.grad_fn is None


def test_repr_shows_the_op_that_made_it():
    x = Variable([3.0], requires_grad=True)
    assert repr(x * 7) == "Variable([21.], grad_fn=<Mul>)"


def test_repr_of_a_leaf_that_requires_grad():
    assert repr(Variable([3.0], requires_grad=True)) == "Variable([3.], requires_grad=True)"
    assert repr(Variable([3.0])) == "Variable([3.])"


@pytest.mark.parametrize(
    "expression, expected",
    [
        (lambda x, y: x + y, "add"),
        (lambda x, y: x - y, "sub"),
        (lambda x, y: x * y, "mul"),
        (lambda x, y: x / y, "div"),
        (lambda x, y: -x, "neg"),
        (lambda x, y: x**2, "pow"),
        (lambda x, y: x**y, "pow"),
        (lambda x, y: x.exp(), "exp"),
        (lambda x, y: x.log(), "log"),
        (lambda x, y: x.tanh(), "tanh"),
        (lambda x, y: x.sigmoid(), "sigmoid"),
        (lambda x, y: x.relu(), "relu"),
        (lambda x, y: x @ y, "matmul"),
        (lambda x, y: x.sum(), "sum"),
        (lambda x, y: x.mean(), "mean"),
        (lambda x, y: x.max(), "max"),
        (lambda x, y: x.reshape((3, 1)), "reshape"),
        (lambda x, y: x.T, "transpose"),
        (lambda x, y: x[1:], ("index", "getitem", "slice")),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_each_op_names_itself_in_grad_fn(expression, expected):
    x = leaf([1.0, 2.0, 3.0])
    y = leaf([4.0, 5.0, 6.0])
    name = grad_fn_name(expression(x, y)).lower()
    candidates = (expected,) if isinstance(expected, str) else expected
    assert any(c in name for c in candidates), f"grad_fn name {name!r}, expected {expected!r}"


def test_add_and_mul_have_pytorch_style_names():
    x = leaf([1.0])
    assert grad_fn_name(x + 1) == "Add" and grad_fn_name(x * 2) == "Mul"


# --------------------------------------------------------------- where grads land


def test_only_leaves_keep_grad_unless_retain_grad():
    x = leaf([1.0, 2.0])
    hidden = x * 3
    kept = x * 4
    kept.retain_grad()
    (hidden * hidden + kept * 2).sum().backward()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch warns when .grad of a non-leaf is read
        assert hidden.grad is None
    np.testing.assert_allclose(kept.grad, [2.0, 2.0])
    # d/dx (3x)^2 + 8x = 18x + 8
    np.testing.assert_allclose(x.grad, [26.0, 44.0])


def test_constants_get_no_grad():
    x, c = leaf([1.0, 2.0]), Variable(np.array([5.0, 6.0]))
    (x * c).sum().backward()
    assert c.grad is None
    np.testing.assert_allclose(x.grad, [5.0, 6.0])


def test_grads_accumulate_across_backward_calls():
    x = leaf([1.0, 2.0])
    (x * x).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * (2 * np.array([1.0, 2.0])))


@pytest.mark.parametrize("reduce", ["sum", "mean", "max"])
def test_grads_accumulate_when_the_first_one_came_straight_from_a_reduction(reduce):
    """A reduction's backward can hand out a broadcast (read-only) view; the leaf's
    .grad must still be a buffer of its own that later backward calls add into."""
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    getattr(x, reduce)().backward()
    first = x.grad.copy()
    getattr(x, reduce)().backward()
    np.testing.assert_allclose(x.grad, 2 * first)


def test_each_leaf_gets_its_own_grad_buffer():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (a + b).sum().backward()
    a.grad += 10.0
    np.testing.assert_allclose(b.grad, [1.0, 1.0])


class HalfSquare(Function):
    """x**2 / 2, whose backward hands back the very array it saved (x) when the
    incoming gradient is 1: an engine that adopts gradient arrays must copy this one."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x / 2

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return x if np.all(grad_output == 1) else x * grad_output


def retained_pass_through():
    x = leaf([1.0, 2.0])
    y = x + 0.0  # Add hands the same gradient array to y (retained) and on to x
    y.retain_grad()
    (y * 2.0).sum().backward()
    return [x.grad, y.grad]


def gradient_argument_through_add():
    x, y, seed = leaf([1.0, 2.0]), leaf([3.0, 4.0]), np.array([1.0, 1.0])
    (x + y).backward(gradient=seed)
    return [x.grad, y.grad, seed]


def gradient_argument_through_reshape():
    x, seed = leaf([1.0, 2.0, 3.0, 4.0]), np.ones((2, 2))
    x.reshape((2, 2)).backward(gradient=seed)
    return [x.grad, seed]


class PassThrough(Function):
    """y = x, whose backward returns grad_output itself."""

    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output


def gradient_argument_through_identity():
    x, seed = leaf([1.0, 2.0]), np.array([1.0, 1.0])
    PassThrough.apply(x).backward(gradient=seed)
    return [x.grad, seed]


def saved_input_returned_as_gradient():
    x = leaf([1.0, 2.0])
    HalfSquare.apply(x).backward(gradient=np.ones(2))
    return [x.grad, x.data]


@pytest.mark.parametrize(
    "scenario",
    [
        retained_pass_through,
        gradient_argument_through_add,
        gradient_argument_through_reshape,
        gradient_argument_through_identity,
        saved_input_returned_as_gradient,
    ],
)
def test_grads_share_no_memory_with_each_other_the_caller_or_data(scenario):
    """Every .grad is a buffer of its own: an in-place update of one (optimizers do
    `p.grad += ...`, `p.data -= lr * p.grad`) must not change another array."""
    arrays = scenario()
    for i, first in enumerate(arrays):
        for second in arrays[i + 1 :]:
            assert not np.shares_memory(first, second), f"{scenario.__name__}: shared buffer"


def test_retain_graph_allows_a_second_backward_that_accumulates():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    np.testing.assert_allclose(x.grad, [2.0, 4.0])
    y.backward()
    np.testing.assert_allclose(x.grad, [4.0, 8.0])
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()  # the second call did not retain the graph


def test_zero_grad_clears_so_the_next_backward_starts_fresh():
    x = leaf([1.0, 2.0])
    (x * 3).sum().backward()
    x.zero_grad()
    # PyTorch's zero_grad() sets grads to None by default; zeros are equally clear.
    assert x.grad is None or not np.any(x.grad)
    (x * 5).sum().backward()
    np.testing.assert_allclose(x.grad, [5.0, 5.0])


def test_backward_with_explicit_gradient():
    x = leaf([1.0, 2.0, 3.0])
    (x * x).backward(gradient=np.array([1.0, 0.0, 10.0]))
    np.testing.assert_allclose(x.grad, [2.0, 0.0, 60.0])


def test_backward_does_not_alias_the_callers_gradient_array():
    """.grad is the engine's own buffer: accumulating into it must not write into the
    array the caller passed as `gradient` (nor may the caller's later edits leak in)."""
    x = leaf([1.0, 2.0])
    seed = np.array([1.0, 1.0])
    x.backward(gradient=seed)
    x.backward(gradient=seed)
    np.testing.assert_array_equal(seed, [1.0, 1.0])
    seed[:] = 100.0
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])


def test_backward_on_a_leaf_gives_it_the_gradient():
    x = Variable(np.array(3.0), requires_grad=True)
    x.backward()
    assert float(x.grad) == 1.0


def test_backward_gradient_may_be_a_variable():
    x = leaf([1.0, 2.0])
    (x * 3).backward(gradient=Variable(np.array([1.0, 2.0])))
    np.testing.assert_allclose(x.grad, [3.0, 6.0])


# ------------------------------------------------------------- detach and friends


def test_detach_cuts_the_graph_and_shares_data():
    x = leaf([2.0, 3.0])
    d = x.detach()
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf
    assert np.shares_memory(d.data, x.data)  # as PyTorch: a view, no copy
    (d * x).sum().backward()
    np.testing.assert_allclose(x.grad, [2.0, 3.0])  # only the path through x counts


def test_requires_grad_underscore_switches_and_returns_self():
    x = Variable(np.array([1.0, 2.0]))
    assert x.requires_grad_() is x and x.requires_grad
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, [2.0, 4.0])
    assert x.requires_grad_(False) is x and not x.requires_grad


def test_item_and_numpy():
    v = Variable(np.array([[2.5]]))
    assert v.item() == 2.5 and isinstance(v.item(), float)
    w = leaf([1.0, 2.0])
    array = w.numpy()
    assert isinstance(array, np.ndarray)
    np.testing.assert_array_equal(array, [1.0, 2.0])


def test_item_of_many_elements_says_so():
    with pytest.raises((ValueError, RuntimeError), match="2"):
        Variable([1.0, 2.0]).item()


def test_shape_attributes_and_T():
    v = Variable(np.zeros((2, 3, 4)))
    assert v.shape == (2, 3, 4) and v.ndim == 3 and v.dtype == np.float64
    assert v.T.shape == (4, 3, 2)
    assert Variable(1.0, name="w").name == "w"


def test_reshape_accepts_a_tuple_or_separate_sizes():
    v = Variable(np.arange(6.0))
    assert v.reshape((2, 3)).shape == (2, 3)
    assert v.reshape(3, 2).shape == (3, 2)


def test_reductions_accept_a_positional_axis():
    v = Variable(np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(v.sum(0).data, [3.0, 5.0, 7.0])
    np.testing.assert_array_equal(v.max(1).data, [2.0, 5.0])


# ----------------------------------------------------------------------- no_grad


def test_no_grad_context_manager():
    x = leaf([1.0])
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled()
        y = x * 2
    assert is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    np.testing.assert_allclose(y.data, [2.0])


def test_no_grad_nests_and_restores_after_an_exception():
    with pytest.raises(KeyError):
        with no_grad():
            with no_grad():
                pass
            assert not is_grad_enabled()
            raise KeyError("boom")
    assert is_grad_enabled()


def test_no_grad_as_decorator():
    x = leaf([1.0])

    @no_grad()
    def update(v: Variable) -> Variable:
        """Docstring kept."""
        assert not is_grad_enabled()
        return v * 3

    y = update(x)
    assert not y.requires_grad and is_grad_enabled()
    assert update.__name__ == "update" and update.__doc__ == "Docstring kept."


def test_no_grad_as_decorator_without_parentheses():
    """As with torch.no_grad, `@no_grad` works like `@no_grad()`."""

    @no_grad
    def triple(v: Variable) -> Variable:
        return v * 3

    assert not triple(leaf([1.0])).requires_grad and is_grad_enabled()


def test_backward_inside_no_grad_still_computes_gradients():
    """no_grad stops graph recording, not backpropagation through an existing graph."""
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    with no_grad():
        y.backward()
    np.testing.assert_allclose(x.grad, [2.0, 4.0])


# ------------------------------------------------------------------ custom Function


class Cube(Function):
    """x**3, saving x for backward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return 3 * x**2 * grad_output


class ScaleBy(Function):
    """x * s; records needs_input_grad and returns None where no gradient is needed."""

    seen_needs: list = []

    @staticmethod
    def forward(ctx, x, s):
        assert isinstance(x, np.ndarray) and isinstance(s, np.ndarray)
        ScaleBy.seen_needs.append(tuple(ctx.needs_input_grad))
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx, grad_output):
        x, s = ctx.saved_tensors
        grad_x = grad_output * s if ctx.needs_input_grad[0] else None
        grad_s = grad_output * x if ctx.needs_input_grad[1] else None
        return grad_x, grad_s


def test_custom_function_forward_and_backward():
    x = leaf([1.0, 2.0])
    y = Cube.apply(x)
    assert isinstance(y, Variable) and y.requires_grad and not y.is_leaf
    np.testing.assert_allclose(y.data, [1.0, 8.0])
    assert grad_fn_name(y) == "Cube"
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [3.0, 12.0])


def test_custom_function_needs_input_grad_and_none_gradients():
    ScaleBy.seen_needs.clear()
    x, s = leaf([1.0, 2.0]), Variable(np.array([3.0, 4.0]))
    ScaleBy.apply(x, s).sum().backward()
    assert ScaleBy.seen_needs == [(True, False)]
    np.testing.assert_allclose(x.grad, [3.0, 4.0])
    assert s.grad is None


class Power(Function):
    """x ** p with the exponent p a plain number passed through apply."""

    @staticmethod
    def forward(ctx, x, p):
        assert isinstance(p, int), "non-Variable arguments reach forward unchanged"
        ctx.save_for_backward(x)
        ctx.p = p
        return x**p

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * ctx.p * x ** (ctx.p - 1), None


def test_custom_function_with_a_non_variable_argument():
    x = leaf([1.0, 2.0])
    y = Power.apply(x, 3)
    np.testing.assert_allclose(y.data, [1.0, 8.0])
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [3.0, 12.0])


def test_custom_function_passes_gradcheck():
    x = leaf([0.5, -1.0, 2.0])
    assert gradcheck(lambda v: Cube.apply(v).sum(), [x]) is True


# ============================================================================ misuse


@pytest.mark.parametrize(
    "op, name",
    [
        (lambda a, b: a + b, "add"),
        (lambda a, b: a - b, "sub"),
        (lambda a, b: a * b, "mul"),
        (lambda a, b: a / b, "div"),
    ],
)
def test_elementwise_shape_mismatch_names_op_and_both_shapes(op, name):
    a = leaf(np.ones((2, 3)))
    b = leaf(np.ones(4))
    with pytest.raises(SHAPE_ERRORS) as error:
        op(a, b)
    message = str(error.value)
    assert name in message.lower(), message
    assert "(2, 3)" in message and "(4,)" in message, message


def test_matmul_shape_mismatch_names_op_and_both_shapes():
    with pytest.raises(SHAPE_ERRORS) as error:
        leaf(np.ones((2, 3))) @ leaf(np.ones((4, 5)))
    message = str(error.value)
    assert "matmul" in message.lower() and "(2, 3)" in message and "(4, 5)" in message, message


def test_reshape_to_a_different_size_names_both_shapes():
    with pytest.raises(SHAPE_ERRORS) as error:
        leaf(np.ones((3, 4))).reshape((5,))
    message = str(error.value)
    assert "reshape" in message.lower() and "(3, 4)" in message and "(5,)" in message, message


@pytest.mark.parametrize(
    "shape, axes", [((2, 3), (0, 5)), ((2, 3, 4), (0, 7)), ((3,), (0, 1)), ((2, 3), (-3, 0))]
)
def test_transpose_with_an_axis_out_of_range_is_refused(shape, axes):
    """An axis that does not exist is a mistake, not something to wrap around modulo
    ndim (PyTorch: IndexError "Dimension out of range")."""
    with pytest.raises((IndexError, ValueError)) as error:
        leaf(np.ones(shape)).transpose(*axes)
    bad_axis = next(a for a in axes if not -len(shape) <= a < len(shape))
    assert str(bad_axis) in str(error.value), str(error.value)


def test_non_scalar_backward_without_gradient_says_so():
    y = leaf([1.0, 2.0]) * 2
    with pytest.raises(RuntimeError, match="scalar") as error:
        y.backward()
    assert "(2,)" in str(error.value), f"the message should show the output shape: {error.value}"


@pytest.mark.parametrize("gradient_shape", [(3,), (2, 3, 1), (1, 3), ()])
def test_gradient_argument_of_wrong_shape_names_both_shapes(gradient_shape):
    """Even a gradient that would broadcast to the output is refused (PyTorch does too)."""
    y = leaf(np.ones((2, 3))) * 2
    with pytest.raises(SHAPE_ERRORS) as error:
        y.backward(gradient=np.ones(gradient_shape))
    message = str(error.value)
    assert str(gradient_shape) in message and "(2, 3)" in message, message


@pytest.mark.parametrize(
    "make",
    [lambda: Variable(np.array(2.0)), lambda: Variable(np.array(2.0)) * 3],
    ids=["leaf", "result_of_constants"],
)
def test_backward_on_something_that_does_not_require_grad(make):
    with pytest.raises(RuntimeError, match=r"(?i)requires?[_ ]grad"):
        make().backward()


def test_second_backward_through_a_freed_graph_raises():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph") as error:
        y.backward()
    assert re.search(r"(?i)second|freed|twice|again", str(error.value)), str(error.value)
    np.testing.assert_allclose(x.grad, [2.0, 4.0])  # not silently double-counted


def test_backward_through_a_freed_shared_subgraph_raises():
    """A new graph built on top of an already-backpropagated node reaches freed tensors."""
    x = leaf([1.0, 2.0])
    shared = x * x
    shared.sum().backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        (shared * 2).sum().backward()


class WrongCount(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a * b

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output  # one gradient for two inputs


class WrongShape(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, grad_output):
        # broadcastable, so a silent engine would accept it: must be refused
        return grad_output, grad_output.sum(axis=0)


def test_custom_backward_with_wrong_number_of_gradients_names_the_function():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    with pytest.raises(SHAPE_ERRORS) as error:
        WrongCount.apply(a, b).sum().backward()
    message = str(error.value)
    assert "WrongCount" in message, message
    assert re.search(r"\b2\b", message) and re.search(r"\b1\b", message), (
        f"the message should say expected 2 and got 1: {message}"
    )


def test_custom_backward_with_wrong_gradient_shape_names_function_input_and_shapes():
    a, b = leaf(np.ones((2, 3))), leaf(np.ones((2, 3)))
    with pytest.raises(SHAPE_ERRORS) as error:
        WrongShape.apply(a, b).sum().backward()
    message = str(error.value)
    assert "WrongShape" in message, message
    assert re.search(r"(?i)input\D{0,4}1\b", message), f"should name input 1: {message}"
    assert "(3,)" in message and "(2, 3)" in message, message


@pytest.mark.parametrize(
    "data, type_name",
    [
        ("abc", "str"),
        (["a", "b"], "str"),
        (None, "None"),
        ({"a": 1}, "dict"),
        (object(), "object"),
        (np.array(["x"]), ("<U1", "str")),
        ("1.5", "str"),
        ([1.0, None], "None"),
        (1 + 2j, "complex"),
    ],
    ids=[
        "str",
        "str_list",
        "None",
        "dict",
        "object",
        "string_array",
        "numeric_string",
        "list_with_None",
        "complex",
    ],
)
def test_non_numeric_data_is_refused_with_its_type(data, type_name):
    with pytest.raises(TypeError) as error:
        Variable(data)
    names = (type_name,) if isinstance(type_name, str) else type_name
    assert any(n in str(error.value) for n in names), str(error.value)


def test_operating_with_a_string_is_a_type_error():
    with pytest.raises(TypeError):
        leaf([1.0]) + "abc"
    with pytest.raises(TypeError):
        "abc" * leaf([1.0])


# --------------------------------------------------------------------- gradcheck


class OffByHalfAtOneElement(Function):
    """f(a, b) = sum(2a + 3b), whose backward is wrong for input 1 at element (1, 2)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.asarray(np.sum(2 * a + 3 * b))

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        grad_b = np.full_like(b, 3.0) * grad_output
        grad_b[1, 2] += 0.5
        return np.full_like(a, 2.0) * grad_output, grad_b


def numbers_in(text: str) -> list[float]:
    return [float(t) for t in re.findall(r"[-+]?\d+\.?\d*(?:[eE][-+]?\d+)?", text)]


def test_gradcheck_failure_names_input_element_expected_and_got():
    a, b = leaf(np.ones((2, 3))), leaf(np.ones((2, 3)))
    with pytest.raises(RuntimeError) as error:
        gradcheck(lambda x, y: OffByHalfAtOneElement.apply(x, y), [a, b])
    message = str(error.value)
    assert re.search(r"(?i)input\D{0,4}1\b", message), f"should name input 1: {message}"
    assert re.search(r"[(\[]1, 2[)\]]", message), f"should name element (1, 2): {message}"
    values = numbers_in(message)
    assert any(abs(v - 3.0) < 1e-4 for v in values), f"expected 3.0 (numerical): {message}"
    assert any(abs(v - 3.5) < 1e-9 for v in values), f"got 3.5 (backward): {message}"


def test_gradcheck_uses_the_contract_defaults():
    """A gradient off by 1e-4 relative passes (rtol=1e-3); off by 1% fails."""

    def scaled_wrong(factor: float):
        class Slightly(Function):
            @staticmethod
            def forward(ctx, x):
                return x * 10.0

            @staticmethod
            def backward(ctx, grad_output):
                return grad_output * 10.0 * factor

        return Slightly

    x = leaf([1.0, 2.0])
    assert gradcheck(lambda v: scaled_wrong(1 + 1e-4).apply(v).sum(), [x]) is True
    with pytest.raises(RuntimeError):
        gradcheck(lambda v: scaled_wrong(1.01).apply(v).sum(), [x])


def test_gradcheck_of_a_non_scalar_output_and_a_constant_input():
    x, c = leaf([0.5, -1.0, 2.0]), Variable(np.array([1.0, 2.0, 3.0]))
    assert gradcheck(lambda v, k: (v * k).tanh(), [x, c]) is True


def test_gradcheck_leaves_its_inputs_untouched():
    data = np.array([0.5, -1.0, 2.0])
    x = leaf(data)
    gradcheck(lambda v: (v * v).sum(), [x])
    np.testing.assert_array_equal(x.data, data)
    assert x.grad is None


def gradient_argument_through_two_adds():
    x, y, seed = leaf([1.0, 2.0]), leaf([3.0, 4.0]), np.array([1.0, 1.0])
    ((x + y) + 0.0).backward(gradient=seed)  # the inner sum gets `seed` as its gradient
    return [x.grad, y.grad, seed]


def gradient_argument_to_a_retained_root():
    x, seed = leaf([1.0, 2.0]), np.array([1.0, 1.0])
    y = x + 0.0
    y.retain_grad()
    y.backward(gradient=seed)
    return [x.grad, y.grad, seed]


@pytest.mark.parametrize(
    "scenario", [gradient_argument_through_two_adds, gradient_argument_to_a_retained_root]
)
def test_the_callers_gradient_never_becomes_a_grad(scenario):
    """backward(gradient=seed) may read `seed` as it is, but no .grad may be `seed` or
    share its memory: `p.grad += ...` would change the caller's array."""
    arrays = scenario()
    for i, first in enumerate(arrays):
        for second in arrays[i + 1 :]:
            assert not np.shares_memory(first, second), f"{scenario.__name__}: shared buffer"
    np.testing.assert_array_equal(arrays[-1], [1.0, 1.0])


def test_operators_are_named_in_help_and_tracebacks():
    """`Variable.__mul__` is called `__mul__` (not `<lambda>`) wherever a user meets it:
    its name, help(Variable) with a line saying what it computes, a traceback."""
    import pydoc
    import traceback

    assert Variable.__mul__.__name__ == "__mul__"
    assert Variable.__mul__.__qualname__ == "Variable.__mul__"
    assert Variable.sum.__name__ == "sum" and Variable.shape.fget.__name__ == "shape"
    text = pydoc.render_doc(Variable, renderer=pydoc.plaintext)
    assert "<lambda>" not in text
    assert re.search(r"__mul__\(self, other\)\n[ |]+self \* other", text), text
    assert re.search(r"sum\(self, axis=None, keepdims=False\)\n[ |]+The sum over", text), text
    with pytest.raises(ValueError) as error:
        leaf([1.0, 2.0]) + leaf([1.0, 2.0, 3.0])
    names = [frame.name for frame in traceback.extract_tb(error.value.__traceback__)]
    assert "__add__" in names and "<lambda>" not in names, names
