# %% [markdown]
# # Autograd
#
# > A reverse-mode automatic differentiation engine over numpy: `Variable`, `Function`, `backward()`.

# %% [markdown]
# OPENING

# %%
#| default_exp autograd

# %%
#| export
import contextlib
from collections.abc import Callable, Sequence

import numpy as np

# %% [markdown]
# ## Part 1: `Variable`, a numpy array that remembers where it came from


# %% nbgrader={"grade": false, "grade_id": "as_float_array", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def as_float_array(data) -> np.ndarray:
    """`data` as a floating numpy array: numbers, lists and integer or boolean arrays
    become float32; floating numpy arrays (and numpy floating scalars) keep their dtype.

    Anything that is not numbers (strings, None, dicts, objects) is refused here with a
    `TypeError` naming what it got, before it can break an op three steps later."""
    if isinstance(data, Variable):
        raise TypeError("Variable(...) got a Variable: pass its .data, or use .detach()")
    ### BEGIN SOLUTION
    keeps_dtype = isinstance(data, (np.ndarray, np.generic))
    try:
        array = np.asarray(data)
    except (ValueError, TypeError) as error:
        raise TypeError(
            f"Variable data must be numbers, got {type(data).__name__}: {error}"
        ) from None
    if array.dtype.kind == "f":
        return array if keeps_dtype else array.astype(np.float32)
    if array.dtype.kind in "biu":
        return array.astype(np.float32)
    described = str(array.dtype) if keeps_dtype else type(data).__name__
    if isinstance(data, (list, tuple)) and array.size:
        described += f" of {type(array.flat[0]).__name__}"
    raise TypeError(
        "Variable data must be numbers (a number, a list of numbers or a numeric numpy "
        f"array), got {described}"
    )
    ### END SOLUTION


# %%
#| export
class Variable:
    """A numpy array (`data`) that records the operation that made it (`grad_fn`), so
    that `backward()` can compute the gradient of a result with respect to every
    Variable that has `requires_grad=True`. Names and semantics follow PyTorch's Tensor.
    """

    __slots__ = ("data", "grad", "requires_grad", "grad_fn", "name", "_retains_grad")
    __array_ufunc__ = None  # `numpy_array * variable` calls Variable.__rmul__, not numpy

    def __init__(self, data, requires_grad: bool = False, name: str | None = None):
        if type(data) is not np.ndarray or data.dtype.kind != "f":
            data = as_float_array(data)
        self.data = data
        self.grad = None
        self.requires_grad = requires_grad
        self.grad_fn = None
        self.name = name
        self._retains_grad = False

    # -- what it is
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        """Made by the user (not by an op that tracks gradients)."""
        return self.grad_fn is None

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        text = np.array2string(self.data, separator=", ", prefix="Variable(")
        if self.data.dtype != np.float32:
            text += f", dtype={self.data.dtype}"
        if self.grad_fn is not None:
            text += f", grad_fn=<{type(self.grad_fn).__name__}>"
        elif self.requires_grad:
            text += ", requires_grad=True"
        return f"Variable({text})"

    # -- leaving the graph
    def item(self) -> float:
        if self.data.size != 1:
            raise ValueError(
                f"item() needs a Variable with 1 element, this one has {self.data.size} (shape {self.shape})"
            )
        return self.data.item()

    def numpy(self) -> np.ndarray:
        """The data (shared, not copied)."""
        return self.data

    def detach(self) -> "Variable":
        """The same data as a new leaf that does not require grad: gradients stop here."""
        return Variable(self.data)

    def requires_grad_(self, requires_grad: bool = True) -> "Variable":
        if not self.is_leaf:
            raise RuntimeError(
                "requires_grad_() can only change leaves; use .detach() to start a new leaf from this result"
            )
        self.requires_grad = requires_grad
        return self

    def retain_grad(self) -> None:
        """Keep `.grad` on this non-leaf too (by default only leaves keep it)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a Variable that does not require grad")
        self._retains_grad = True

    def zero_grad(self) -> None:
        """Forget the accumulated gradient (sets `.grad` to None, as PyTorch's zero_grad does by default)."""
        self.grad = None

    def backward(self, gradient=None, retain_graph: bool = False) -> None:
        """Compute the gradient of this Variable with respect to every leaf that requires
        grad, adding it to their `.grad`. A non-scalar needs `gradient` (∂L/∂self)."""
        seed = initial_gradient(self, gradient)
        if _tracer is not None:
            _tracer.begin_backward(self, seed)
        backpropagate(self, seed, retain_graph)
        if _tracer is not None:
            _tracer.end_backward(self)

    # -- operators: each is a Function (defined below); see the ops sections
    def __add__(self, other):
        return Add.apply(self, operand(other))

    def __radd__(self, other):
        return Add.apply(operand(other), self)

    def __sub__(self, other):
        return Sub.apply(self, operand(other))

    def __rsub__(self, other):
        return Sub.apply(operand(other), self)

    def __mul__(self, other):
        return Mul.apply(self, operand(other))

    def __rmul__(self, other):
        return Mul.apply(operand(other), self)

    def __truediv__(self, other):
        return Div.apply(self, operand(other))

    def __rtruediv__(self, other):
        return Div.apply(operand(other), self)

    def __neg__(self):
        return Neg.apply(self)

    def __pow__(self, exponent):
        return Pow.apply(self, operand(exponent))

    def __rpow__(self, base):
        return Pow.apply(operand(base), self)

    def __matmul__(self, other):
        return MatMul.apply(self, operand(other))

    def __rmatmul__(self, other):
        return MatMul.apply(operand(other), self)

    def __getitem__(self, index):
        return GetItem.apply(self, plain_index(index))

    def exp(self):
        return Exp.apply(self)

    def log(self):
        return Log.apply(self)

    def tanh(self):
        return Tanh.apply(self)

    def sigmoid(self):
        return Sigmoid.apply(self)

    def relu(self):
        return ReLU.apply(self)

    def sum(self, axis=None, keepdims: bool = False):
        return Sum.apply(self, axis, keepdims)

    def mean(self, axis=None, keepdims: bool = False):
        return Mean.apply(self, axis, keepdims)

    def max(self, axis=None, keepdims: bool = False):
        return Max.apply(self, axis, keepdims)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return Reshape.apply(self, shape)

    def transpose(self, *axes):
        """No axes: reverse all axes (numpy's `.T`). Two axes: swap them (PyTorch's
        `transpose(dim0, dim1)`). One axis per dimension: that permutation (numpy)."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        if len(axes) == 2 and self.ndim != 2:
            order = list(range(self.ndim))
            first, second = (a % self.ndim for a in axes)
            order[first], order[second] = order[second], order[first]
            axes = tuple(order)
        elif len(axes) == 2:
            first, second = (a % 2 for a in axes)
            axes = None if first != second else (0, 1)
        return Transpose.apply(self, axes or None)

    def permute(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return Transpose.apply(self, axes)

    @property
    def T(self):
        return Transpose.apply(self, None)

    def log_softmax(self, axis: int = -1):
        return LogSoftmax.apply(self, axis)


_NUMBERS = (int, float)


def operand(value):
    """The other side of an operator: a Variable or a Python number as it is (numbers
    do not change a Variable's dtype, as in numpy and PyTorch); numpy scalars become
    Python numbers; anything else becomes a constant array by `Variable`'s dtype rules."""
    if isinstance(value, (Variable, int, float)):
        return value
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return value.item()
    return as_float_array(value)


def plain_index(index):
    """An index for numpy: Variables inside it become integer arrays."""
    if isinstance(index, Variable):
        return index.data.astype(np.intp)
    if isinstance(index, tuple):
        return tuple(i.data.astype(np.intp) if isinstance(i, Variable) else i for i in index)
    return index


# %% [markdown]
# TEST VARIABLE

# %% nbgrader={"grade": true, "grade_id": "test_variable", "locked": true, "points": 6, "schema_version": 3, "solution": false, "task": false}
x = Variable([1, 2, 3])
assert x.dtype == np.float32, (
    f"Variable([1, 2, 3]) has dtype {x.dtype}: lists of numbers should become float32"
)
assert Variable(np.zeros(2)).dtype == np.float64, "a float64 numpy array should keep its dtype"

# %% [markdown]
# ## Part 2: `Function`, one node of the graph

# %%
#| export
_grad_enabled = True  # switched off inside `no_grad()`
_tracer = None  # the active `trace()`, if any


def is_grad_enabled() -> bool:
    """Are new operations recorded for backward? (False inside `no_grad()`.)"""
    return _grad_enabled


class set_grad_enabled(contextlib.ContextDecorator):
    """Switch graph recording on or off for a block (`with set_grad_enabled(False):`) or
    a function (`@set_grad_enabled(False)`); nests, and restores the previous state even
    after an exception. `no_grad()` and `enable_grad()` are its two usual forms."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self._previous: list[bool] = []

    def __enter__(self):
        global _grad_enabled
        self._previous.append(_grad_enabled)
        _grad_enabled = self.mode
        return self

    def __exit__(self, *exc_info):
        global _grad_enabled
        _grad_enabled = self._previous.pop()
        return False


class no_grad(set_grad_enabled):
    """Run code without recording the graph: results do not require grad and nothing
    is saved for backward (evaluation, optimizer updates). `with no_grad():` or `@no_grad()`."""

    def __init__(self):
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Record the graph again inside a `no_grad()` block (e.g. to recompute a segment
    during gradient checkpointing). `with enable_grad():` or `@enable_grad()`."""

    def __init__(self):
        super().__init__(True)


_FREED = object()  # marks saved values that backward() has already released


# %% nbgrader={"grade": false, "grade_id": "function", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class Function:
    """One operation in the graph, and the context (`ctx`) of one call to it.

    Subclasses define `forward(ctx, *inputs)` (numpy arrays in, one numpy array out;
    arguments that are not Variables, such as an axis, pass through unchanged) and
    `backward(ctx, grad_output)` (one gradient, or None, per input of forward). They
    are called as `MyFunction.apply(*inputs)`, which records the graph."""

    __slots__ = ("inputs", "needs_input_grad", "_saved", "__dict__")

    def save_for_backward(self, *values) -> None:
        """Keep what backward will need (freed after backward unless retain_graph)."""
        self._saved = values

    @property
    def saved_tensors(self) -> tuple:
        saved = getattr(self, "_saved", ())
        if saved is _FREED:
            raise RuntimeError(
                f"{type(self).__name__}: trying to backward through the graph a second time: its saved "
                "values were freed by the first backward(). Call backward(retain_graph=True) the first "
                "time if you need to backward through it again."
            )
        return saved

    @staticmethod
    def forward(ctx, *inputs):
        raise NotImplementedError("a Function subclass must define forward(ctx, *inputs)")

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError("a Function subclass must define backward(ctx, grad_output)")

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    @classmethod
    def apply(cls, *inputs) -> Variable:
        """Run forward on the inputs' data and wrap the result in a Variable that
        remembers this call (`grad_fn`) when gradients are needed."""
        ctx = cls()
        ### BEGIN SOLUTION
        arrays = []
        needs = []
        for value in inputs:
            if isinstance(value, Variable):
                arrays.append(value.data)
                needs.append(value.requires_grad)
            else:
                arrays.append(value)
                needs.append(False)
        ctx.needs_input_grad = needs
        try:
            data = cls.forward(ctx, *arrays)
        except ValueError as error:
            raise shape_error(cls, arrays, error) from None
        if type(data) is not np.ndarray:
            data = np.asarray(data)
        output = Variable(data)
        if _grad_enabled and True in needs:
            ctx.inputs = inputs
            output.requires_grad = True
            output.grad_fn = ctx
        ### END SOLUTION
        if _tracer is not None:
            _tracer.record_operation(ctx, inputs, output)
        return output


def shape_error(op: type, arrays: Sequence, error: Exception) -> ValueError:
    """A ValueError naming the op and the shapes it was given."""
    shapes = ", ".join(str(np.shape(a)) for a in arrays if isinstance(a, np.ndarray))
    return ValueError(f"{op.__name__}: cannot combine inputs of shapes {shapes}: {error}")


# %% [markdown]
# TEST FUNCTION


# %% nbgrader={"grade": true, "grade_id": "test_function", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
class _Twice(Function):
    @staticmethod
    def forward(ctx, a):
        return a * 2

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output * 2


x = Variable([1.0, 2.0], requires_grad=True)
y = _Twice.apply(x)
assert isinstance(y, Variable), f"Function.apply returned {type(y).__name__}, expected a Variable"
assert y.requires_grad and isinstance(y.grad_fn, _Twice)

# %% [markdown]
# ## Part 3: arithmetic


# %% nbgrader={"grade": false, "grade_id": "arithmetic_ops", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class Add(Function):
    """a + b"""

    @staticmethod
    def forward(ctx, a, b):
        ### BEGIN SOLUTION
        return a + b
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        return grad_output, grad_output
        ### END SOLUTION


class Sub(Function):
    """a - b"""

    @staticmethod
    def forward(ctx, a, b):
        ### BEGIN SOLUTION
        return a - b
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        return grad_output, -grad_output
        ### END SOLUTION


class Mul(Function):
    """a * b"""

    @staticmethod
    def forward(ctx, a, b):
        ### BEGIN SOLUTION
        ctx.save_for_backward(a, b)
        return a * b
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        a, b = ctx.saved_tensors
        return grad_output * b, grad_output * a
        ### END SOLUTION


class Div(Function):
    """a / b"""

    @staticmethod
    def forward(ctx, a, b):
        ### BEGIN SOLUTION
        out = a / b
        ctx.save_for_backward(b, out)
        return out
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        b, out = ctx.saved_tensors
        grad_a = grad_output / b
        return grad_a, -grad_a * out
        ### END SOLUTION


class Neg(Function):
    """-a"""

    @staticmethod
    def forward(ctx, a):
        ### BEGIN SOLUTION
        return -a
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        return -grad_output
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_arithmetic", "locked": true, "points": 12, "schema_version": 3, "solution": false, "task": false}
x = Variable([2.0], requires_grad=True)
y = x * 3
assert np.allclose(y.data, 6)

# %% [markdown]
# ## Part 4: the engine


# %% nbgrader={"grade": false, "grade_id": "unbroadcast", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum `grad` over the axes that broadcasting added or stretched, so that it has
    `shape` again: the gradient of an input that numpy broadcast in forward."""
    ### BEGIN SOLUTION
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(
        axis for axis, size in enumerate(shape) if size == 1 and grad.shape[axis] != 1
    )
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad
    ### END SOLUTION


# %%
#| export
def call_backward(fn: Function, grad_output: np.ndarray) -> list:
    """Run `fn`'s backward and check what it returns: one gradient (or None) per input
    of forward; each reduced to its input's shape if broadcasting stretched it, and
    cast to its input's dtype. A wrong count or shape is an error naming the Function."""
    grads = type(fn).backward(fn, grad_output)
    if type(grads) is not tuple:
        grads = tuple(grads) if type(grads) is list else (grads,)
    inputs = fn.inputs
    if len(grads) != len(inputs):
        name = type(fn).__name__
        raise RuntimeError(
            f"{name}.backward returned {len(grads)} gradient(s), but {name}.apply was called "
            f"with {len(inputs)} input(s): return one gradient (or None) per input, in order"
        )
    checked = []
    for index, (grad, needed) in enumerate(zip(grads, fn.needs_input_grad, strict=True)):
        if grad is None or not needed:
            checked.append(None)
            continue
        data = inputs[index].data
        if type(grad) is not np.ndarray:
            grad = grad.data if isinstance(grad, Variable) else np.asarray(grad)
        if grad.shape != data.shape:
            grad = reduce_to_shape(fn, index, grad, data.shape)
        if grad.dtype != data.dtype:
            grad = grad.astype(data.dtype)
        checked.append(grad)
    if _tracer is not None:
        _tracer.record_backward(fn, grad_output, checked)
    return checked


def reduce_to_shape(fn: Function, index: int, grad: np.ndarray, shape: tuple) -> np.ndarray:
    """`grad` summed back to `shape` when forward broadcast input `index` to grad's
    shape; otherwise the error that says which Function returned what for which input."""
    trailing = grad.shape[grad.ndim - len(shape) :] if grad.ndim >= len(shape) else None
    if trailing is None or any(s != 1 and s != g for s, g in zip(shape, trailing, strict=True)):
        raise ValueError(
            f"{type(fn).__name__}.backward returned a gradient of shape {grad.shape} for input "
            f"{index}, whose shape is {shape}: each gradient must have its input's shape"
        )
    return unbroadcast(grad, shape)


# %% nbgrader={"grade": false, "grade_id": "engine", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def topological_order(root: Variable) -> list[Variable]:
    """Every Variable that `root` depends on and that requires grad, each once, ordered
    so that each comes before the Variables it was computed from (root first).

    Iterative depth-first search: a 100 000-op chain would overflow Python's recursion limit."""
    ### BEGIN SOLUTION
    order = []
    visited = set()
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            order.append(node)
            continue
        if node in visited:
            continue
        visited.add(node)
        stack.append((node, True))
        fn = node.grad_fn
        if fn is not None:
            for parent, needed in zip(fn.inputs, fn.needs_input_grad, strict=True):
                if needed and parent not in visited:
                    stack.append((parent, False))
    order.reverse()
    return order
    ### END SOLUTION


def accumulate_grad(variable: Variable, grad: np.ndarray) -> None:
    """Add `grad` into `variable.grad` (which starts as a copy: never share a buffer)."""
    ### BEGIN SOLUTION
    if variable.grad is None:
        variable.grad = np.array(grad, dtype=variable.data.dtype)
    else:
        variable.grad += grad
    ### END SOLUTION


def backpropagate(root: Variable, grad_output: np.ndarray, retain_graph: bool = False) -> None:
    """Send `grad_output` (∂L/∂root) back through the graph: each Variable's gradient is
    complete when its turn comes in topological order; its grad_fn's backward turns it
    into gradients for its inputs, which are summed per input. Leaves (and Variables
    that retain_grad) accumulate theirs in `.grad`. Saved values are freed unless
    `retain_graph`."""
    ### BEGIN SOLUTION
    grads = {root: grad_output}
    for node in topological_order(root):
        grad = grads.pop(node, None)
        if grad is None:
            continue
        fn = node.grad_fn
        if fn is None:
            accumulate_grad(node, grad)
            continue
        if node._retains_grad:
            accumulate_grad(node, grad)
        for parent, parent_grad in zip(fn.inputs, call_backward(fn, grad), strict=True):
            if parent_grad is not None:
                grads[parent] = grads[parent] + parent_grad if parent in grads else parent_grad
        if not retain_graph:
            fn._saved = _FREED
    ### END SOLUTION


def initial_gradient(root: Variable, gradient) -> np.ndarray:
    """∂root/∂root: ones for a one-element root, else the `gradient` given, checked."""
    if not root.requires_grad:
        raise RuntimeError(
            "backward() on a Variable that does not require grad: no input of the computation "
            "had requires_grad=True (or it ran inside no_grad())"
        )
    if gradient is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"grad can be implicitly created only for scalar outputs: this Variable has shape "
                f"{root.shape}; pass backward(gradient=...) with an array of that shape"
            )
        return np.ones_like(root.data)
    if isinstance(gradient, Variable):
        gradient = gradient.data
    gradient = np.asarray(gradient, dtype=root.data.dtype)
    if gradient.shape != root.shape:
        raise ValueError(
            f"backward(gradient=...) got a gradient of shape {gradient.shape} for a Variable of "
            f"shape {root.shape}: they must match"
        )
    return gradient


# %% nbgrader={"grade": true, "grade_id": "test_engine", "locked": true, "points": 16, "schema_version": 3, "solution": false, "task": false}
x = Variable([2.0], requires_grad=True)
(x * x).backward()

# %% [markdown]
# ## Part 5: more elementwise math


# %% nbgrader={"grade": false, "grade_id": "math_ops", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def power_derivative(a, b):
    """d(a**b)/da = b * a**(b-1), taken as 0 where b == 0 (there a**-1 may be inf)."""
    ### BEGIN SOLUTION
    if not isinstance(b, np.ndarray):
        return b * a ** (b - 1) if b != 0 else np.zeros_like(a)
    return np.where(b == 0, 0, b * a ** np.where(b == 0, 1, b - 1))
    ### END SOLUTION


class Pow(Function):
    """a ** b, for a number or a Variable exponent b."""

    @staticmethod
    def forward(ctx, a, b):
        ### BEGIN SOLUTION
        out = a**b
        ctx.save_for_backward(a, b, out)
        return out
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        a, b, out = ctx.saved_tensors
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_a = grad_output * power_derivative(a, b)
        if ctx.needs_input_grad[1]:
            # d(a**b)/db = a**b * log(a); taken as 0 where a == 0 (as PyTorch does)
            safe_a = np.where(a == 0, 1, a)
            grad_b = grad_output * np.where(a == 0, 0, out * np.log(safe_a))
        return grad_a, grad_b
        ### END SOLUTION


class Exp(Function):
    """e ** a"""

    @staticmethod
    def forward(ctx, a):
        ### BEGIN SOLUTION
        out = np.exp(a)
        ctx.save_for_backward(out)
        return out
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        (out,) = ctx.saved_tensors
        return grad_output * out
        ### END SOLUTION


class Log(Function):
    """natural log of a"""

    @staticmethod
    def forward(ctx, a):
        ### BEGIN SOLUTION
        ctx.save_for_backward(a)
        return np.log(a)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        (a,) = ctx.saved_tensors
        return grad_output / a
        ### END SOLUTION


class Tanh(Function):
    """tanh(a)"""

    @staticmethod
    def forward(ctx, a):
        ### BEGIN SOLUTION
        out = np.tanh(a)
        ctx.save_for_backward(out)
        return out
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        (out,) = ctx.saved_tensors
        return grad_output * (1 - out * out)
        ### END SOLUTION


class Sigmoid(Function):
    """1 / (1 + e**-a), computed without overflow for large |a|."""

    @staticmethod
    def forward(ctx, a):
        ### BEGIN SOLUTION
        # e**min(a, 0) / (1 + e**-|a|) is 1 / (1 + e**-a) for a >= 0 and e**a / (1 + e**a)
        # for a < 0: no exponent is ever positive, so nothing overflows
        e = np.exp(-np.abs(a))
        denominator = 1 + e
        ctx.save_for_backward(e, denominator)
        return np.exp(np.minimum(a, 0)) / denominator
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        # sigmoid'(a) = e / (1 + e)**2 with e = exp(-|a|), the same for a and -a;
        # out * (1 - out) would lose the digits of 1 - out when out is close to 1
        e, denominator = ctx.saved_tensors
        return grad_output * e / (denominator * denominator)
        ### END SOLUTION


class ReLU(Function):
    """max(a, 0)"""

    @staticmethod
    def forward(ctx, a):
        ### BEGIN SOLUTION
        ctx.save_for_backward(a)
        return np.maximum(a, 0)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        (a,) = ctx.saved_tensors
        return grad_output * (a > 0)
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_math_ops", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
x = Variable([2.0], requires_grad=True)
(x**2).backward()

# %% [markdown]
# ## Part 6: matrix multiplication


# %% nbgrader={"grade": false, "grade_id": "matmul", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class MatMul(Function):
    """a @ b, as np.matmul: 1-D, 2-D and batched (stacks of matrices broadcast)."""

    @staticmethod
    def forward(ctx, a, b):
        ### BEGIN SOLUTION
        ctx.save_for_backward(a, b)
        return np.matmul(a, b)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        a, b = ctx.saved_tensors
        a_is_vector, b_is_vector = a.ndim == 1, b.ndim == 1
        # Treat vectors as matrices, the way np.matmul does: a row (1, k), b a column (k, 1).
        grad = grad_output
        if b_is_vector:
            b = b[:, None]
            grad = grad[..., None]
        if a_is_vector:
            a = a[None, :]
            grad = grad[..., None, :]
        grad_a = np.matmul(grad, np.swapaxes(b, -1, -2)) if ctx.needs_input_grad[0] else None
        grad_b = np.matmul(np.swapaxes(a, -1, -2), grad) if ctx.needs_input_grad[1] else None
        if a_is_vector and grad_a is not None:
            grad_a = grad_a[..., 0, :]
        if b_is_vector and grad_b is not None:
            grad_b = grad_b[..., 0]
        return grad_a, grad_b  # batch axes that broadcasting added are summed by the engine
        ### END SOLUTION


def matmul(a, b) -> Variable:
    """a @ b for Variables (or a Variable and an array)."""
    return MatMul.apply(operand(a), operand(b))


# %% nbgrader={"grade": true, "grade_id": "test_matmul", "locked": true, "points": 8, "schema_version": 3, "solution": false, "task": false}
x = Variable(np.ones((2, 3)), requires_grad=True)
(x @ np.ones(3)).backward(np.ones(2))

# %% [markdown]
# ## Part 7: reductions


# %% nbgrader={"grade": false, "grade_id": "reductions", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def expand_reduced(grad: np.ndarray, shape: tuple, axis, keepdims: bool) -> np.ndarray:
    """The gradient of a reduction's output broadcast back to the input's `shape`:
    first put back the axes that `keepdims=False` removed, then stretch."""
    ### BEGIN SOLUTION
    if axis is not None and not keepdims:
        grad = np.expand_dims(grad, axis)
    return np.broadcast_to(grad, shape)
    ### END SOLUTION


class Sum(Function):
    """a.sum(axis, keepdims)"""

    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        ### BEGIN SOLUTION
        ctx.shape, ctx.axis, ctx.keepdims = a.shape, axis, keepdims
        return np.sum(a, axis=axis, keepdims=keepdims)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        return expand_reduced(grad_output, ctx.shape, ctx.axis, ctx.keepdims), None, None
        ### END SOLUTION


class Mean(Function):
    """a.mean(axis, keepdims)"""

    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        ### BEGIN SOLUTION
        out = np.mean(a, axis=axis, keepdims=keepdims)
        ctx.shape, ctx.axis, ctx.keepdims = a.shape, axis, keepdims
        ctx.count = a.size // max(np.size(out), 1) if a.size else 0
        return out
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        grad = expand_reduced(grad_output / ctx.count, ctx.shape, ctx.axis, ctx.keepdims)
        return grad, None, None
        ### END SOLUTION


class Max(Function):
    """a.max(axis, keepdims); ties share the gradient equally (as torch.amax)."""

    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        ### BEGIN SOLUTION
        out = np.max(a, axis=axis, keepdims=keepdims)
        ctx.axis, ctx.keepdims = axis, keepdims
        ctx.save_for_backward(a, out)
        return out
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        a, out = ctx.saved_tensors
        is_max = a == expand_reduced(out, a.shape, ctx.axis, ctx.keepdims)
        ties = is_max.sum(axis=ctx.axis, keepdims=True)
        share = expand_reduced(grad_output, a.shape, ctx.axis, ctx.keepdims) / ties
        return is_max * share, None, None
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_reductions", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
x = Variable(np.ones((2, 3)), requires_grad=True)
x.sum(axis=1).sum().backward()

# %% [markdown]
# ## Part 8: reshaping and indexing


# %% nbgrader={"grade": false, "grade_id": "shape_ops", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class Reshape(Function):
    """a.reshape(shape)"""

    @staticmethod
    def forward(ctx, a, shape):
        ### BEGIN SOLUTION
        ctx.shape = a.shape
        return np.reshape(a, shape)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        return np.reshape(grad_output, ctx.shape), None
        ### END SOLUTION


class Transpose(Function):
    """a.transpose(axes): axes=None reverses them all."""

    @staticmethod
    def forward(ctx, a, axes=None):
        ### BEGIN SOLUTION
        ctx.axes = axes
        return np.transpose(a, axes)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        undo = None if ctx.axes is None else np.argsort(ctx.axes)
        return np.transpose(grad_output, undo), None
        ### END SOLUTION


def is_basic_index(index) -> bool:
    """Slices, integers, None and ... only: each element is picked at most once."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, np.integer, slice, type(None), type(Ellipsis))) for p in parts)


class GetItem(Function):
    """a[index]: slices, integers and integer arrays (a repeated index gets the sum)."""

    @staticmethod
    def forward(ctx, a, index):
        ### BEGIN SOLUTION
        ctx.shape, ctx.dtype, ctx.index = a.shape, a.dtype, index
        return a[index]
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        grad = np.zeros(ctx.shape, dtype=ctx.dtype)
        if is_basic_index(ctx.index):
            grad[ctx.index] = grad_output
        else:
            np.add.at(grad, ctx.index, grad_output)  # `+=` would count a repeated index once
        return grad, None
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_shape_ops", "locked": true, "points": 8, "schema_version": 3, "solution": false, "task": false}
x = Variable(np.ones((2, 3)), requires_grad=True)
x.reshape(3, 2).T[0].sum().backward()

# %% [markdown]
# ## Part 9: log-softmax


# %% nbgrader={"grade": false, "grade_id": "log_softmax", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class LogSoftmax(Function):
    """log(softmax(a)) along `axis`, without overflow: a - max - log(sum(exp(a - max)))."""

    @staticmethod
    def forward(ctx, a, axis=-1):
        ### BEGIN SOLUTION
        shifted = a - np.max(a, axis=axis, keepdims=True)
        out = shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
        ctx.axis = axis
        ctx.save_for_backward(out)
        return out
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        (out,) = ctx.saved_tensors
        softmax = np.exp(out)
        return grad_output - softmax * np.sum(grad_output, axis=ctx.axis, keepdims=True), None
        ### END SOLUTION


def log_softmax(x: Variable, axis: int = -1) -> Variable:
    """log(softmax(x)) along `axis`."""
    return LogSoftmax.apply(x, axis)


def exp(x: Variable) -> Variable:
    return Exp.apply(x)


def log(x: Variable) -> Variable:
    return Log.apply(x)


def tanh(x: Variable) -> Variable:
    return Tanh.apply(x)


def sigmoid(x: Variable) -> Variable:
    return Sigmoid.apply(x)


def relu(x: Variable) -> Variable:
    return ReLU.apply(x)


# %% nbgrader={"grade": true, "grade_id": "test_log_softmax", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
x = Variable(np.ones((2, 3)), requires_grad=True)
log_softmax(x).sum().backward()

# %% [markdown]
# ## Part 10: gradcheck


# %%
#| export
class GradcheckError(AssertionError, RuntimeError):
    """gradcheck found a gradient that disagrees with finite differences."""


def gradcheck(
    fn: Callable,
    inputs,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
) -> bool:
    """Compare the gradients backward() computes for `fn(*inputs)` with central finite
    differences, in float64, for every input that requires grad and every element.
    Returns True; on a mismatch raises GradcheckError naming the input, the element,
    the expected (numerical) and the got (backward) value."""
    inputs = (inputs,) if isinstance(inputs, Variable) else tuple(inputs)
    inputs64 = tuple(
        Variable(v.data.astype(np.float64), requires_grad=v.requires_grad)
        if isinstance(v, Variable)
        else v
        for v in inputs
    )
    checked = [i for i, v in enumerate(inputs64) if isinstance(v, Variable) and v.requires_grad]
    if not checked:
        raise ValueError("gradcheck needs at least one input Variable with requires_grad=True")
    output = fn(*inputs64)
    if not isinstance(output, Variable):
        raise TypeError(f"gradcheck: fn returned {type(output).__name__}, expected a Variable")
    analytical = {i: np.zeros((output.data.size, inputs64[i].data.size)) for i in checked}
    for row in range(output.data.size):
        for i in checked:
            inputs64[i].grad = None
        seed = np.zeros(output.data.size)
        seed[row] = 1.0
        if output.requires_grad:
            output.backward(seed.reshape(output.shape), retain_graph=True)
        for i in checked:
            grad = inputs64[i].grad
            analytical[i][row] = 0.0 if grad is None else grad.reshape(-1)
    for i in checked:
        data = inputs64[i].data
        for column, element in enumerate(np.ndindex(data.shape)):
            original = data[element]
            with no_grad():
                data[element] = original + eps
                plus = np.array(fn(*inputs64).data, dtype=np.float64).reshape(-1)
                data[element] = original - eps
                minus = np.array(fn(*inputs64).data, dtype=np.float64).reshape(-1)
            data[element] = original
            numerical = (plus - minus) / (2 * eps)
            got = analytical[i][:, column]
            bad = np.abs(got - numerical) > atol + rtol * np.abs(numerical)
            if bad.any():
                out = np.unravel_index(int(np.argmax(bad)), output.shape) if output.ndim else ()
                message = (
                    f"gradcheck failed for input {i} (shape {data.shape}) at element {element}"
                    + (f", output element {out}" if output.ndim else "")
                    + f": expected {numerical[bad][0]!r} (finite differences), got {got[bad][0]!r} (backward)"
                )
                if raise_exception:
                    raise GradcheckError(message)
                return False
    return True


# %% [markdown]
# ## Part 11: integration

# %% nbgrader={"grade": true, "grade_id": "test_integration", "locked": true, "points": 16, "schema_version": 3, "solution": false, "task": false}
x = Variable(np.ones((2, 3)), requires_grad=True)
assert gradcheck(lambda v: (v * v).sum(), [x])
