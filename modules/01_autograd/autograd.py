# %% [markdown]
# # Autograd
#
# > A reverse-mode automatic differentiation engine over numpy: `Variable`, `Function`,
# > `backward()`.

# %% [markdown]
# ## What we're building
#
# Every deep learning framework rests on **reverse-mode automatic differentiation**,
# *autograd*: you write the forward computation, it records each operation as it runs,
# and one call to `backward()` gives the gradient of the result with respect to every
# input that asked for one. You build that engine here, over numpy, with PyTorch's
# names; the rest of the course trains networks with it.
#
# The right-hand column below is not drawn by hand: `explain()` (from `tinytorch.viz`)
# printed it, running the engine you are about to write.
#
# ```python
# print(explain("y = x * 2\nz = y + 3\nloss = z.mean()\nloss.backward()", x=[1.0, 2.0]))
# ```
#
# ```text
# Your code:                                      What autograd does:
# ──────────                                      ───────────────────
# x = Variable([1.0, 2.0], requires_grad=True)    Creates leaf x (requires_grad=True)
# y = x * 2                                       Tracks operation: Mul(x, 2) = [2., 4.]
#                                                     saves [1., 2.], 2 for backward
# z = y + 3                                       Tracks operation: Add(y, 3) = [5., 7.]
# loss = z.mean()                                 Tracks operation: Mean(z) = 6
# loss.backward()                                 Backward pass (loss.backward()):
#                                                     ∂loss/∂loss = 1         start with gradient 1
#                                                     ∂loss/∂z = [0.5, 0.5]   Mean.backward
#                                                     ∂loss/∂y = [0.5, 0.5]   Add.backward
#                                                     ∂loss/∂x = [1., 1.]     Mul.backward
#                                                 Result: x.grad = [1., 1.]
# ```
#
# Each operation is *recorded* as a node that remembers its inputs, and some save values
# for later (`Mul` keeps `x` and `2`; `Add` needs nothing). Nothing is differentiated
# until `backward()`, which walks the recorded operations in reverse, each turning the
# gradient of its output into gradients of its inputs.

# %% [markdown]
# ## The computational graph
#
# `z = x * y + b` builds one node per operation. `draw_graph()` prints both pictures from
# the live `Variable`s (`names=` tells it what your code calls them):
#
# ```python
# x = Variable(2.0, requires_grad=True)
# y = Variable(3.0, requires_grad=True)
# b = Variable(1.0, requires_grad=True)
# z = x * y + b
# print(draw_graph(z, names=globals()))
# z.backward()
# print(draw_graph(z, backward=True, names=globals()))
# ```
#
# ```text
# x ──┐
#     ├──[×]──> x*y ──┐
# y ──┘               ├──[+]──> z = x*y + b
#                     │
#                 b ──┘
# ∂z/∂x = 3 ←──┐
#              ├──[×]←── ∂z/∂(x*y) ←──┐
# ∂z/∂y = 2 ←──┘                      ├──[+]←── ∂z/∂z = 1
#                                     │
#                        ∂z/∂b = 1 ←──┘
# ```
#
# Forward, values flow left to right; backward, gradients flow right to left: `[+]` passes
# `∂z/∂z = 1` to both inputs, `[×]` multiplies it by the *other* input, so `∂z/∂x = y = 3`
# and `∂z/∂y = x = 2`. That is the chain rule, one node at a time.

# %% [markdown]
# ## Memory: what training keeps around
#
# Every value an operation saves for `backward()` stays alive until `backward()` has used
# it. Take an MLP with 784 inputs, 256 hidden units and 10 outputs (`relu(x @ W1 + b1) @
# W2 + b2`, then `log_softmax` and a cross-entropy loss), batches of 64, float32 (4 B):
#
# - parameters: 784·256 + 256 + 256·10 + 10 = 203,530 numbers × 4 B = 814,120 B;
# - saved for backward (measured on this engine): the batch 64·784, the pre-activation
#   `relu` keeps 64·256, the hidden layer the second `@` keeps 64·256, the
#   log-probabilities 64·10: 83,584 numbers × 4 B = 334,336 B;
# - gradients: one per parameter, 814,120 B; Adam's two moments: 1,628,240 B.
#
# ```text
# ┌───────────────────────────────────────────────────────────────────────┐
# │ Training memory: MLP 784-256-10, batch 64, float32                    │
# ├───────────────────────────────────────────────────────────────────────┤
# │ Forward pass keeps:                                                   │
# │ ┌────────────────────────────────┐ ┌────────────────────────────────┐ │
# │ │ Parameters                     │ │ Saved for backward             │ │
# │ │ W1, b1, W2, b2                 │ │ x, pre-activation, hidden,     │ │
# │ │ 203,530 numbers                │ │ log-probabilities              │ │
# │ │ 0.81 MB                        │ │ 83,584 numbers: 0.33 MB        │ │
# │ └────────────────────────────────┘ └────────────────────────────────┘ │
# │ Backward pass and optimizer add:                                      │
# │ ┌────────────────────────────────┐ ┌────────────────────────────────┐ │
# │ │ Gradients                      │ │ Adam state                     │ │
# │ │ ∂L/∂W1, ∂L/∂b1, ∂L/∂W2, ∂L/∂b2 │ │ two moments per parameter      │ │
# │ │ 203,530 numbers                │ │ 407,060 numbers                │ │
# │ │ 0.81 MB                        │ │ 1.63 MB                        │ │
# │ └────────────────────────────────┘ └────────────────────────────────┘ │
# │ Total: 814,120 × 2 + 334,336 + 1,628,240 = 3,590,816 B = 3.59 MB      │
# └───────────────────────────────────────────────────────────────────────┘
# ```
#
# Inference under `no_grad()` keeps only the parameters and the activation being
# computed: no graph, no saved values, no gradients, no optimizer state.

# %% [markdown]
# ## The chain rule, step by step
#
# `f(x) = (x + 2) * 3` at `x = 5`, traced by `trace()` as the engine runs it:
#
# ```python
# x = Variable(5.0, requires_grad=True)
# with trace(names=globals()):
#     y = x + 2
#     z = y * 3
#     z.backward()
# ```
#
# ```text
# Tracks operation: Add(x, 2) = 7
# Tracks operation: Mul(y, 3) = 21
#     saves 7, 3 for backward
# Backward pass (z.backward()):
#     ∂z/∂z = 1                                 start with gradient 1
#     ∂z/∂y = ∂z/∂z × ∂(y*3)/∂y = 1 × 3 = 3     Mul.backward
#     ∂z/∂x = ∂z/∂y × ∂(x + 2)/∂x = 3 × 1 = 3   Add.backward
# Result: x.grad = 3
# ```
#
# `Mul` saves its two inputs (7 and 3), because the derivative of `y * 3` with respect to
# `y` is the other input. Backward starts from `∂z/∂z = 1`, multiplies by each local
# derivative on the way back, and arrives at `x.grad = 3`: indeed `f(x) = 3x + 6`.

# %% [markdown]
# ## At the scale of a large model
#
# The same accounting for a model of 175 × 10⁹ parameters trained with Adam gives about
# 700 GB of fp32 weights, as much again for gradients and twice that for Adam's moments,
# before any activation is kept: module 05 measures that picture on a live graph and shows
# how activation checkpointing shrinks its activations.

# %% [markdown]
# ## Why this matters
#
# Reverse-mode automatic differentiation is old: Seppo Linnainmaa described it in his
# 1970 master's thesis, Paul Werbos proposed using it to train neural networks (1974), and
# Rumelhart, Hinton and Williams made *backpropagation* widely known in 1986. For years,
# though, most people still derived gradients by hand for each new model, where one sign
# error silently ruined training. Theano (2007) made derivatives of whole array programs
# automatic in Python; Chainer (2015) and PyTorch (2017) recorded the graph *as the code
# runs* ("define-by-run"), the design you build here, so any Python control flow is
# differentiable. Before: a page of calculus per new layer, checked by hope. After: write
# the forward pass, call `backward()`, and check every gradient with `gradcheck`.
#
# The plan: `Variable` and `Function` are given; you write the first op (`Mul`), the
# `apply` that records the graph, the other arithmetic, the engine that runs backward,
# then the rest of the ops a neural network needs.

# %%
#| default_exp autograd

# %%
#| export
import contextlib
from collections.abc import Callable, Sequence

import numpy as np

# %% [markdown]
# ## How the tests talk to you, and where your code goes
#
# Each part ends with a locked test cell worth points. Its inputs are random (drawn anew
# when your notebook is graded), and when something is wrong its first line says what, in
# this notebook's terms: which op, which input, which number it expected, and often the
# mistake (a flipped sign, swapped inputs, a missing sum). Gradients are compared with
# *numerical* gradients, computed by nudging each input by ±ε: the same idea as
# `gradcheck` in Part 10, done with numpy alone so nothing you write can fool it.
#
# Cells marked `#| export` form the library. In your workspace, run `nbdev-export` in the
# workspace folder after finishing the module: it writes your code to your own
# `tinytorch/autograd.py`, which later modules import (`tinytorch-course test 01` runs
# this notebook's tests from the command line).

# %%
import warnings

from tinytorch_course.checks import Check
from tinytorch_course.checks_autograd import check_gradients, check_op

# %% [markdown]
# ## Part 1: `Variable`, `Function`, and your first op
#
# A `Variable` wraps a numpy array and carries what autograd needs:
#
# ```text
# ┌─────────────────────────────────────────────────────────────────────┐
# │ Variable                                                            │
# │ data           the numbers: a numpy array, float32 or float64       │
# │ requires_grad  do we want ∂L/∂(this Variable)?                      │
# │ grad           ∂L/∂(this Variable): data's shape and dtype, or None │
# │ grad_fn        the Function call that computed it (None for a leaf) │
# │ name           optional, used by diagrams                           │
# └─────────────────────────────────────────────────────────────────────┘
# ```
#
# A Variable you create is a **leaf** (`grad_fn is None`); one computed by an operation on
# Variables that require grad gets a `grad_fn`, the record of that operation. Only leaves
# keep `.grad` (unless you ask with `retain_grad()`), as in PyTorch. Numbers follow
# PyTorch's rule: Python numbers, lists and integer arrays become **float32**; a floating
# numpy array keeps its dtype; a Python number in an expression never changes a
# Variable's dtype (`x * 2.5` with a float32 `x` is float32). Anything else (a string,
# `None`) is refused with a `TypeError` naming it.
#
# The next cells are given: read them, they are the library's public face. Every
# operator (`+`, `*`, `@`, `x.sum()`, `x[0]`...) calls a `Function` you write.


# %%
#| export
def _as_float_array(data) -> np.ndarray:
    """`data` as a floating numpy array: numbers, lists and integer or boolean arrays
    become float32; floating numpy arrays (and numpy floating scalars) keep their dtype.
    Anything that is not numbers is refused with a `TypeError` naming what it got."""
    if isinstance(data, Variable):
        raise TypeError("Variable(...) got a Variable: pass its .data, or use .detach()")
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
        kinds = sorted({type(item).__name__.rstrip("_") for item in array.flat})
        described += f" holding {' and '.join(kinds)}"
    raise TypeError(
        "Variable data must be numbers (a number, a list of numbers or a numeric numpy "
        f"array), got {described}"
    )


class Variable:
    """A numpy array (`data`) that records the operation that made it (`grad_fn`), so
    that `backward()` can compute the gradient of a result with respect to every
    Variable that has `requires_grad=True`. Names and semantics follow PyTorch's Tensor.
    """

    __slots__ = ("data", "grad", "requires_grad", "grad_fn", "name", "_retains_grad")
    __array_ufunc__ = None  # `numpy_array * variable` calls Variable.__rmul__, not numpy

    def __init__(self, data, requires_grad: bool = False, name: str | None = None):
        if type(data) is not np.ndarray or data.dtype.kind != "f":
            data = _as_float_array(data)
        self.data = data
        self.grad = None
        self.requires_grad = requires_grad
        self.grad_fn = None
        self.name = name
        self._retains_grad = False

    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    size = property(lambda self: self.data.size)
    is_leaf = property(lambda self: self.grad_fn is None, doc="Made by the user, not an op.")

    def __len__(self) -> int:
        return len(self.data)

    def __bool__(self) -> bool:
        """Truth of a one-element Variable; numpy's error for more (never silently True)."""
        return bool(self.data)

    def __repr__(self) -> str:
        text = np.array2string(self.data, separator=", ", prefix="Variable(")
        if self.data.dtype != np.float32:
            text += f", dtype={self.data.dtype}"
        if self.grad_fn is not None:
            text += f", grad_fn=<{type(self.grad_fn).__name__}>"
        elif self.requires_grad:
            text += ", requires_grad=True"
        return f"Variable({text})"

    def item(self) -> float:
        if self.data.size != 1:
            raise ValueError(
                f"item() needs a Variable with 1 element, this one has {self.data.size} "
                f"(shape {self.shape})"
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
                "requires_grad_() can only change leaves; use .detach() to start a new leaf "
                "from this result"
            )
        self.requires_grad = requires_grad
        return self

    def retain_grad(self) -> None:
        """Keep `.grad` on this non-leaf too (by default only leaves keep it)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a Variable that does not require grad")
        self._retains_grad = True

    def zero_grad(self) -> None:
        """Forget the accumulated gradient (`.grad = None`, as PyTorch does by default)."""
        self.grad = None

    def backward(self, gradient=None, retain_graph: bool = False) -> None:
        """Compute the gradient of this Variable with respect to every leaf that requires
        grad, adding it to their `.grad`. A non-scalar needs `gradient` (∂L/∂self)."""
        backpropagate(self, _initial_gradient(self, gradient), retain_graph)

    # operators: each calls a Function defined below
    def __add__(self, other):
        return Add.apply(self, _operand(other))

    def __radd__(self, other):
        return Add.apply(_operand(other), self)

    def __sub__(self, other):
        return Sub.apply(self, _operand(other))

    def __rsub__(self, other):
        return Sub.apply(_operand(other), self)

    def __mul__(self, other):
        return Mul.apply(self, _operand(other))

    def __rmul__(self, other):
        return Mul.apply(_operand(other), self)

    def __truediv__(self, other):
        return Div.apply(self, _operand(other))

    def __rtruediv__(self, other):
        return Div.apply(_operand(other), self)

    def __neg__(self):
        return Neg.apply(self)

    def __pow__(self, exponent):
        return Pow.apply(self, _operand(exponent))

    def __rpow__(self, base):
        return Pow.apply(_operand(base), self)

    def __matmul__(self, other):
        return MatMul.apply(self, _operand(other))

    def __rmatmul__(self, other):
        return MatMul.apply(_operand(other), self)

    def __getitem__(self, index):
        return GetItem.apply(self, _plain_index(index))

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
        `transpose(dim0, dim1)`). A tuple of one axis per dimension: that permutation."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            return self.permute(*axes[0])
        if len(axes) == 2:
            order = list(range(self.ndim))
            first, second = (_checked_axis(a, self.shape, "transpose") for a in axes)
            order[first], order[second] = order[second], order[first]
            axes = tuple(order)
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


def _checked_axis(axis: int, shape: tuple, op: str) -> int:
    """`axis` as a non-negative index into `shape`; one that does not exist is an
    IndexError naming it (never wrapped around silently)."""
    if not -len(shape) <= axis < len(shape):
        raise IndexError(
            f"{op}: axis {axis} is out of range for a Variable of shape {shape} "
            f"(expected an axis in [{-len(shape)}, {len(shape) - 1}])"
        )
    return axis % len(shape)


def _operand(value):
    """The other side of an operator: a Variable or a Python number as it is (numbers do
    not change a Variable's dtype); numpy scalars become Python numbers; anything else a
    constant array by `Variable`'s dtype rules."""
    if isinstance(value, (Variable, int, float)):
        return value
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return value.item()
    return _as_float_array(value)


def _plain_index(index):
    """An index for numpy: Variables inside it become integer arrays."""
    if isinstance(index, Variable):
        return index.data.astype(np.intp)
    if isinstance(index, tuple):
        return tuple(i.data.astype(np.intp) if isinstance(i, Variable) else i for i in index)
    return index


# %% [markdown]
# Every operation is a subclass of `Function` with two static methods: `forward(ctx,
# *inputs)` computes the result from numpy arrays, and `backward(ctx, grad_output)` turns
# the gradient of the result into one gradient per input. `MyOp.apply(*inputs)` calls
# them and builds the graph. The `ctx` object is the graph node itself: what `forward`
# saves there with `ctx.save_for_backward(...)`, `backward` finds in `ctx.saved_tensors`.
#
# ```text
# x * 3   calls   Mul.apply(x, 3)
#
# ┌────────────────────────────────────────────────────────┐
# │ ctx = Mul()              one node of the graph         │
# │ ctx.inputs = (x, 3)      what apply was called with    │
# │ ctx.needs_input_grad     [True, False]                 │
# │ ctx.saved_tensors        (x.data, 3), saved by forward │
# └────────────────────────────────────────────────────────┘
#
# forward(ctx, x.data, 3)  returns the array  ──>  Variable(array, grad_fn=ctx)
# ```
#
# The class and the switch behind `no_grad()` are given below. Tools observe the engine
# from outside, as PyTorch's do: `grad_fn.register_hook(hook)` calls
# `hook(grad_inputs, grad_outputs)` after that node's backward, and `with
# observe_ops(hook):` calls `hook(op, inputs, output)` after every `apply`.

# %%
#| export
_grad_enabled = True  # switched off inside `no_grad()`


def is_grad_enabled() -> bool:
    """Are new operations recorded for backward? (False inside `no_grad()`.)"""
    return _grad_enabled


class set_grad_enabled(contextlib.ContextDecorator):
    """Switch graph recording on or off for a block (`with set_grad_enabled(False):`) or a
    function (`@set_grad_enabled(False)`); nests, and restores the previous state even
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
    """Run code without recording the graph (evaluation, optimizer updates): results do
    not require grad and nothing is saved. `with no_grad():`, `@no_grad()` or `@no_grad`."""

    def __new__(cls, func=None):
        if callable(func):  # used as a bare decorator: @no_grad
            return cls()(func)
        return super().__new__(cls)

    def __init__(self, func=None):
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Record the graph again inside a `no_grad()` block (e.g. to recompute a segment
    during gradient checkpointing). `with enable_grad():`, `@enable_grad()`, `@enable_grad`."""

    def __new__(cls, func=None):
        if callable(func):
            return cls()(func)
        return super().__new__(cls)

    def __init__(self, func=None):
        super().__init__(True)


_FREED = object()  # marks saved values that backward() has already released


class Function:
    """One operation in the graph, and the context (`ctx`) of one call to it.

    Subclasses define `forward(ctx, *inputs)` (numpy arrays in, one numpy array out;
    arguments that are not Variables, such as an axis, pass through unchanged) and
    `backward(ctx, grad_output)` (one gradient, or None, per input of forward). They are
    called as `MyFunction.apply(*inputs)`, which records the graph."""

    __slots__ = ("inputs", "needs_input_grad", "_saved", "__dict__")
    _hooks: tuple = ()  # set per node by register_hook

    @classmethod
    def apply(cls, *inputs) -> Variable:
        """Run forward on the inputs' data and wrap the result in a Variable that
        remembers this call (`grad_fn`) when gradients are needed (Part 2)."""
        return record(cls, inputs)

    def save_for_backward(self, *values) -> None:
        """Keep what backward will need (freed after backward unless retain_graph)."""
        self._saved = values

    @property
    def saved_tensors(self) -> tuple:
        saved = getattr(self, "_saved", ())
        if saved is _FREED:
            raise RuntimeError(
                f"{type(self).__name__}: trying to backward through the graph a second time: "
                "its saved values were freed by the first backward(). Call "
                "backward(retain_graph=True) the first time to backward through it again."
            )
        return saved

    def register_hook(self, hook: Callable) -> None:
        """Call `hook(grad_inputs, grad_outputs)` after this node's backward (PyTorch's
        `grad_fn.register_hook`); a hook that returns a tuple replaces `grad_inputs`."""
        self._hooks = (*self._hooks, hook)

    @staticmethod
    def forward(ctx, *inputs):
        raise NotImplementedError("a Function subclass must define forward(ctx, *inputs)")

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError("a Function subclass must define backward(ctx, grad_output)")

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


@contextlib.contextmanager
def observe_ops(hook: Callable):
    """Within the block, call `hook(op, inputs, output)` after every `Function.apply`:
    the op class, the inputs as given, the Variable returned (its `grad_fn` is the node
    when the call was recorded). Costs nothing outside the block; blocks nest."""
    plain = Function.__dict__["apply"]

    def observed(cls, *inputs):
        output = plain.__func__(cls, *inputs)
        hook(cls, inputs, output)
        return output

    Function.apply = classmethod(observed)
    try:
        yield
    finally:
        Function.apply = plain


# %% [markdown]
# ### Your first op: `Mul`
#
# `backward` receives `grad_output` (∂L/∂out, an array shaped like the output) and returns
# ∂L/∂input for each input: `grad_output` times the *local* derivative. For `out = a * b`,
# ∂out/∂a = b and ∂out/∂b = a, so `forward` must save both:
#
# ```text
# forward:   a = [1, 2], b = [3, 4]          out = a * b = [3, 8]     saves a, b
# backward:  g = ∂L/∂out = [1, 10]           ∂L/∂a = g * b = [3, 40]
#                                            ∂L/∂b = g * a = [1, 20]
# ```
#
# **Your task:** `Mul.forward` (save `a` and `b`, return `a * b`) and `Mul.backward`
# (return the two gradients, in the order of the inputs). The test calls them directly
# with a fresh `ctx = Mul()`, so they work before the rest of the engine exists.


# %% nbgrader={"grade": false, "grade_id": "mul_op", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| exporti
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


# %% nbgrader={"grade": true, "grade_id": "test_mul", "locked": true, "points": 6, "schema_version": 3, "solution": false, "task": false}
from tinytorch_course.checks import Check
from tinytorch_course.checks_autograd import check_op

check = Check("test_mul", points=6)
a, b = check.rng.standard_normal((2, 3)), check.rng.standard_normal((2, 3))
check_op(check, lambda: Mul, np.multiply, [a, b], "Mul", hint="∂(a*b)/∂a = g * b")
### BEGIN HIDDEN TESTS
check_op(check, lambda: Mul, np.multiply, [a[0], 2 * b[0]], "Mul (vectors)")
### END HIDDEN TESTS
check.done()


# %% [markdown]
# ## Part 2: `apply`, recording the graph
#
# `Function.apply(*inputs)` hands its work to `record(op, inputs)`, which does four things:
#
# 1. unwraps each input: a Variable becomes its `.data`, anything else (a number, an
#    axis, an index) passes through as it is; it notes which inputs require grad in
#    `ctx.needs_input_grad` (a list of bools; forward may use it to save less);
# 2. calls `op.forward(ctx, *arrays)` with a fresh `ctx = op()`; a `ValueError` from
#    numpy (shapes that do not broadcast) is re-raised as `_shape_error(op, arrays,
#    error)`, which names the op and the shapes;
# 3. wraps the result (as a numpy array) in a new `Variable`;
# 4. **only if** recording is on (`_grad_enabled`) and some input requires grad: stores
#    `ctx.inputs = inputs`, and makes the result require grad with `grad_fn = ctx`.
#
# Step 4 is what `no_grad()` switches off: inside `with no_grad():` nothing is recorded
# and nothing is kept for backward, which is how you evaluate a model or update weights.
#
# **Your task:** `record(op, inputs)`, returning the new Variable.


# %% nbgrader={"grade": false, "grade_id": "record", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| exporti
def record(op: type, inputs: tuple) -> Variable:
    """Run `op.forward` on the inputs' data and wrap the result in a Variable that
    remembers this call (`grad_fn`, the ctx) when gradients are needed."""
    ctx = op()
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
        data = op.forward(ctx, *arrays)
    except ValueError as error:
        raise _shape_error(op, arrays, error) from None
    if type(data) is not np.ndarray:
        data = np.asarray(data)
    output = Variable(data)
    if _grad_enabled and True in needs:
        ctx.inputs = inputs
        output.requires_grad = True
        output.grad_fn = ctx
    return output
    ### END SOLUTION


def _shape_error(op: type, arrays: Sequence, error: Exception) -> ValueError:
    """A ValueError naming the op and the shapes it was given."""
    shapes = [str(np.shape(a)) for a in arrays if isinstance(a, np.ndarray)]
    if len(shapes) == 1:
        return ValueError(
            f"{op.__name__}: invalid arguments for an input of shape {shapes[0]}: {error}"
        )
    return ValueError(
        f"{op.__name__}: cannot combine inputs of shapes {', '.join(shapes)}: {error}"
    )


# %% nbgrader={"grade": true, "grade_id": "test_function", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
from tinytorch_course.checks import Check

check = Check("test_function", points=10)
a = check.rng.standard_normal(3)
factor = float(check.rng.uniform(1.5, 3.0))
shared = {}


def recorded():
    class Twice(Function):
        """2 * a, saving nothing; notes the type forward received."""

        @staticmethod
        def forward(ctx, value):
            shared["seen"] = type(value).__name__
            return value * 2

    class Scale(Function):
        """a * factor, where factor is a plain number that passes through apply."""

        @staticmethod
        def forward(ctx, value, k):
            return value * k

    shared["Twice"], shared["Scale"] = Twice, Scale
    x = Variable(a.copy(), requires_grad=True)
    y = Twice.apply(x)
    return {
        "type": type(y).__name__,
        "forward got": shared["seen"],
        "data": np.array(y.data),
        "requires_grad": bool(y.requires_grad),
        "grad_fn": type(y.grad_fn).__name__,
        "inputs[0] is x": bool(y.grad_fn is not None and y.grad_fn.inputs[0] is x),
        "needs": [bool(n) for n in y.grad_fn.needs_input_grad] if y.grad_fn else None,
    }


got = check.probe(recorded, "Twice.apply(x)")
got = check.no_raise(got, "Twice.apply(x)")
check.equal(got["type"], "Variable", "the type apply returns")
check.equal(
    got["forward got"],
    "ndarray",
    "the type of what forward receives",
    hint="apply must pass each Variable's .data (a numpy array)",
)
check.close(got["data"], 2 * a, "Twice.apply(x).data")
check.equal(got["requires_grad"], True, "requires_grad of an op on a Variable that requires grad")
check.equal(got["grad_fn"], "Twice", "type(Twice.apply(x).grad_fn)", hint="grad_fn is the ctx")
check.equal(
    got["inputs[0] is x"], True, "ctx.inputs[0] is x", hint="store the inputs apply was called with"
)
check.equal(got["needs"], [True], "ctx.needs_input_grad")


def scaled_call():
    x = Variable(a.copy(), requires_grad=True)
    s = shared["Scale"].apply(x, factor)
    return np.array(s.data), [bool(n) for n in s.grad_fn.needs_input_grad]


scaled = check.no_raise(check.probe(scaled_call, "Scale.apply(x, k)"), "Scale.apply(x, k)")
check.close(scaled[0], a * factor, "Scale.apply(x, k)", hint="a number reaches forward unchanged")
check.equal(scaled[1], [True, False], "needs_input_grad of Scale.apply(x, k)")

constant = check.probe(
    lambda: type(shared["Twice"].apply(Variable(a.copy())).grad_fn).__name__,
    "Twice.apply(a Variable that does not require grad).grad_fn",
)
check.equal(constant, "NoneType", "grad_fn of an op whose inputs do not require grad")


def under_no_grad():
    with no_grad():
        z = shared["Twice"].apply(Variable(a.copy(), requires_grad=True))
    return bool(z.requires_grad), type(z.grad_fn).__name__


check.equal(
    check.probe(under_no_grad, "Twice.apply(x) inside no_grad()"),
    (False, "NoneType"),
    "(requires_grad, type(grad_fn)) of Twice.apply(x) inside no_grad()",
    hint="record nothing when recording is off",
)
### BEGIN HIDDEN TESTS


def mismatched():
    class Pair(Function):
        @staticmethod
        def forward(ctx, p, q):
            return p + q

    return Pair.apply(Variable(np.ones(2)), Variable(np.ones(3)))


check.raises(
    check.probe(mismatched, "Pair.apply(ones(2), ones(3))"),
    ValueError,
    "Pair.apply(ones(2), ones(3))",
)


def scalar_result():
    class Total(Function):
        @staticmethod
        def forward(ctx, p):
            return np.sum(p)

    return type(Total.apply(Variable(a.copy(), requires_grad=True)).data).__name__


check.equal(
    check.probe(scalar_result, "Total.apply(x).data"),
    "ndarray",
    "the type of .data when forward returns a numpy scalar",
)
### END HIDDEN TESTS
check.done()


# %% [markdown]
# ## Part 3: the rest of the arithmetic
#
# Write `g` for `grad_output`:
#
# | op | forward | ∂L/∂a | ∂L/∂b | saves |
# |---|---|---|---|---|
# | `Add` | a + b | g | g | nothing |
# | `Sub` | a - b | g | -g | nothing |
# | `Div` | a / b | g / b | -g * a / b² = -(g / b) * out | b, out |
# | `Neg` | -a | -g | | nothing |
#
# Save only what the derivative needs: `Add` needs nothing, so it keeps nothing alive
# (the memory picture of the opening, one op at a time). When `a` has shape (2, 3) and
# `b` shape (3,), numpy *broadcasts* `b` in forward, and `g` has shape (2, 3), not `b`'s.
# Do not worry about that here: the engine sums each gradient back to its input's shape
# (Part 4). Return the plain formulas.
#
# **Your task:** forward and backward of `Add`, `Sub`, `Div` and `Neg`.


# %% nbgrader={"grade": false, "grade_id": "arithmetic_ops", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| exporti
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


# %% nbgrader={"grade": true, "grade_id": "test_arithmetic", "locked": true, "points": 8, "schema_version": 3, "solution": false, "task": false}
from tinytorch_course.checks import Check
from tinytorch_course.checks_autograd import check_op

check = Check("test_arithmetic", points=8)
a, b = check.rng.standard_normal((2, 3)), check.rng.standard_normal((2, 3))
away = check.rng.uniform(0.5, 2.0, (2, 3)) * check.rng.choice([-1, 1], (2, 3))
check_op(check, lambda: Add, np.add, [a, b], "Add")
check_op(check, lambda: Sub, np.subtract, [a, b], "Sub", hint="∂(a - b)/∂b = -g")
check_op(check, lambda: Div, np.divide, [a, away], "Div", hint="∂(a / b)/∂b = -g * a / b²")
check_op(check, lambda: Neg, np.negative, [a], "Neg")
x = check.rng.uniform(0.5, 2.0, 3).astype(np.float32)
k = float(check.rng.integers(2, 5))
cases = {
    "x + k": (lambda v: v + k, x + k, "Add"),
    "k + x": (lambda v: k + v, k + x, "Add"),
    "x - k": (lambda v: v - k, x - k, "Sub"),
    "k - x": (lambda v: k - v, k - x, "Sub"),
    "x / k": (lambda v: v / k, x / k, "Div"),
    "k / x": (lambda v: k / v, k / x, "Div"),
    "-x": (lambda v: -v, -x, "Neg"),
}
for text, (fn, want, op) in cases.items():

    def run(fn=fn):
        out = fn(Variable(x.copy(), requires_grad=True))
        return np.array(out.data), type(out.grad_fn).__name__

    got = check.no_raise(check.probe(run, text), text)
    check.close(got[0], want, f"{text} for x = {x}, k = {k:g}")
    check.equal(got[1], op, f"the op {text} records (type of its grad_fn)")
### BEGIN HIDDEN TESTS
check_op(check, lambda: Div, np.divide, [away, away[::-1]], "Div (both inputs away from 0)")
check.equal(
    check.probe(lambda: str((Variable(x.copy()) * 2.5 + 1).dtype), "(x * 2.5 + 1).dtype"),
    "float32",
    "the dtype of a float32 Variable times a Python number",
)
### END HIDDEN TESTS
check.done()


# %% [markdown]
# ## Part 4: the engine
#
# ### Broadcasting, undone
#
# In `a + b` with `a` of shape (2, 3) and `b` of shape (3,), numpy uses `b` once per row.
# In backward, every row's gradient flows back into the same `b`, so ∂L/∂b is the *sum*
# over the broadcast axis:
#
# ```text
# forward:   a (2, 3)  +  b (3,)     b is read once per row
#                  out (2, 3)
#
# backward:  ∂L/∂out (2, 3)  ──sum over axis 0──>  ∂L/∂b (3,)
#            ∂L/∂out (2, 3)  ──sum over axis 1, keepdims──>  ∂L/∂c (2, 1)  for c (2, 1)
# ```
#
# Broadcasting adds axes on the left and stretches axes of size 1; `unbroadcast` sums over
# exactly those.
#
# **Your task:** `unbroadcast(grad, shape)`: sum the leading axes that `shape` does not
# have, then (with `keepdims=True`) the axes where `shape` has size 1 but `grad` does not.
# Return `grad` itself when the shapes already match (no copy: this is on the hot path).


# %% nbgrader={"grade": false, "grade_id": "unbroadcast", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| exporti
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


# %% nbgrader={"grade": true, "grade_id": "test_unbroadcast", "locked": true, "points": 6, "schema_version": 3, "solution": false, "task": false}
from tinytorch_course.checks import Check

check = Check("test_unbroadcast", points=6)
g = check.rng.standard_normal((4, 2, 3))
for shape, want in [
    ((4, 2, 3), g),
    ((2, 3), g.sum(axis=0)),
    ((3,), g.sum(axis=(0, 1))),
    ((2, 1), g.sum(axis=(0, 2))[:, None]),
    ((1, 3), g.sum(axis=(0, 1))[None, :]),
    ((4, 1, 3), g.sum(axis=1, keepdims=True)),
    ((), g.sum()),
]:
    got = check.probe(
        lambda shape=shape: np.array(unbroadcast(g.copy(), shape)), f"unbroadcast(g, {shape})"
    )
    check.close(
        got,
        want,
        f"unbroadcast(g of shape (4, 2, 3), {shape})",
        hint="sum the leading axes, then the stretched ones with keepdims=True",
    )
check.equal(
    check.probe(lambda: unbroadcast(g, g.shape) is g, "unbroadcast(g, g.shape) is g"),
    True,
    "unbroadcast(g, g.shape) is g",
    hint="return grad itself when shapes match",
)
check.done()


# %% [markdown]
# ### Calling an op's backward, checked (given)
#
# `_call_backward(fn, grad_output)` runs one node's `backward` and checks what came back, so
# that a mistake in an op is reported where it was made, naming the op and the input: one
# gradient per input; each reduced with `unbroadcast` when it has the broadcast shape,
# refused when its shape cannot come from broadcasting the input; each cast to its input's
# dtype. It also runs the node's hooks (`register_hook`).
#
# One more duty. A gradient that will become some Variable's `.grad` must be an array
# nobody else holds: later `backward()` calls add to `.grad` in place, and two leaves
# sharing one buffer (`Add` returns `grad_output` to both inputs), or a leaf sharing the
# caller's array, would see each other's additions. The engine knows which arrays it made
# itself; for a leaf (or a Variable that retains its grad) it copies the gradient only when
# it may be shared: the array passed in, returned twice, a view, or a saved value. A fresh
# result such as `grad_output @ b.T` is adopted as it is, which saves a copy per parameter
# per step.


# %%
#| exporti
def _call_backward(fn: Function, grad_output: np.ndarray) -> list:
    """Run `fn`'s backward and check what it returns: one gradient (or None) per input of
    forward; each reduced to its input's shape if broadcasting stretched it, cast to its
    input's dtype, and owned by the engine when it goes into a `.grad`."""
    try:
        grads = type(fn).backward(fn, grad_output)
    except ValueError as error:  # numpy's shape errors, said in terms of the op
        raise ValueError(
            f"{type(fn).__name__}.backward failed on a gradient of shape "
            f"{np.shape(grad_output)}: {error}"
        ) from error
    if type(grads) is not tuple:
        grads = tuple(grads) if type(grads) is list else (grads,)
    inputs = fn.inputs
    if len(grads) != len(inputs):
        name = type(fn).__name__
        raise RuntimeError(
            f"{name}.backward returned {len(grads)} gradient(s), but {name}.apply was called "
            f"with {len(inputs)} input(s): return one gradient (or None) per input, in order"
        )
    needs = fn.needs_input_grad
    checked = []
    for index, grad in enumerate(grads):
        if grad is None or not needs[index]:
            checked.append(None)
            continue
        parent = inputs[index]
        data = parent.data
        if type(grad) is not np.ndarray:
            grad = grad.data if isinstance(grad, Variable) else np.asarray(grad)
        if grad.shape != data.shape:
            grad = _reduce_to_shape(fn, index, grad, data.shape)
        if grad.dtype != data.dtype:
            grad = grad.astype(data.dtype)
        elif (parent.grad_fn is None or parent._retains_grad) and _may_be_shared(
            grad, grad_output, grads, index, fn
        ):
            grad = grad.copy()
        checked.append(grad)
    for hook in fn._hooks:
        replaced = hook(tuple(checked), (grad_output,))
        checked = checked if replaced is None else list(replaced)
    return checked


def _may_be_shared(grad: np.ndarray, grad_output, grads: tuple, index: int, fn) -> bool:
    """Could another holder see in-place additions to `grad`? True for a view or a
    read-only array, the incoming gradient itself, an array also returned for another
    input, and a value the node saved or received."""
    if grad.base is not None or not grad.flags.writeable or grad is grad_output:
        return True
    if any(other is grad for position, other in enumerate(grads) if position != index):
        return True
    saved = getattr(fn, "_saved", ())
    return any(value is grad for value in (*saved, *(getattr(x, "data", x) for x in fn.inputs)))


def _reduce_to_shape(fn: Function, index: int, grad: np.ndarray, shape: tuple) -> np.ndarray:
    """`grad` summed back to `shape` when forward broadcast input `index` to grad's shape;
    otherwise the error that says which Function returned what for which input."""
    trailing = grad.shape[grad.ndim - len(shape) :] if grad.ndim >= len(shape) else None
    if trailing is None or any(s != 1 and s != g for s, g in zip(shape, trailing, strict=True)):
        raise ValueError(
            f"{type(fn).__name__}.backward returned a gradient of shape {grad.shape} for "
            f"input {index}, whose shape is {shape}: each gradient must have its input's shape"
        )
    return unbroadcast(grad, shape)


def _initial_gradient(root: Variable, gradient) -> np.ndarray:
    """∂root/∂root: ones for a one-element root, else a copy of `gradient`, checked."""
    if not root.requires_grad:
        raise RuntimeError(
            "backward() on a Variable that does not require grad: no input of the "
            "computation had requires_grad=True (or it ran inside no_grad())"
        )
    if gradient is None:
        if root.data.size != 1:
            raise RuntimeError(
                "grad can be implicitly created only for scalar outputs: this Variable has "
                f"shape {root.shape}; pass backward(gradient=...) with an array of that shape"
            )
        return np.ones_like(root.data)
    if isinstance(gradient, Variable):
        gradient = gradient.data
    gradient = np.array(gradient, dtype=root.data.dtype)  # a copy: the engine owns it
    if gradient.shape != root.shape:
        raise ValueError(
            f"backward(gradient=...) got a gradient of shape {gradient.shape} for a Variable "
            f"of shape {root.shape}: they must match"
        )
    return gradient


# %% [markdown]
# ### Walking the graph backward
#
# A node's gradient is complete only when *every* path from the output has delivered its
# share. In `d = a*2 + a*3`, `a` receives 2 from one path and 3 from the other: ∂d/∂a = 5.
# So the engine first orders the graph, **reverse topological order** (every node before
# the nodes it was computed from), then visits each node once, when all its contributions
# have arrived.
#
# Two classic mistakes this avoids. A recursive walk hits Python's recursion limit (about
# 1,000 frames) on a chain of a few thousand ops; yours uses explicit stacks, so a
# 100,000-op chain works. And a walk that follows every *path* instead of every *node*
# visits a node once per path: a chain of 60 diamonds has 2⁶⁰ paths, your engine does 60 ×
# 3 node visits.
#
# - `count_consumers(root)`: walk the graph once from `root` with an explicit stack and
#   count, for each Variable, how many op inputs consume it: how many gradients it will
#   receive. Follow only inputs that need grad (`fn.needs_input_grad`).
# - `topological_order(root)`: **Kahn's algorithm**. Start with `[root]` as the stack of
#   *ready* Variables. Pop one, append it to the order, and for each parent subtract 1
#   from its count; at 0 all its consumers are done, so it is ready. A ready leaf can be
#   appended at once (it has no parents to wait for), which moves its gradient into
#   `.grad` early instead of holding it in memory.
#
# ```text
# d = b + c,  b = a * 2,  c = a * 3        consumers: d 0, b 1, c 1, a 2
#
# pop d   order [d]             b: 1 -> 0 ready, c: 1 -> 0 ready
# pop c   order [d, c]          a: 2 -> 1
# pop b   order [d, c, b]       a: 1 -> 0, a leaf: order [d, c, b, a]
# ```
#
# - `accumulate_grad(variable, grad)`: the first gradient becomes `.grad` as it is (the
#   engine hands over arrays nobody else holds); later ones are added in place (`+=`), so
#   gradients accumulate across `backward()` calls, as in PyTorch.
# - `backpropagate(root, grad_output, retain_graph)`: a dict maps each Variable to its
#   gradient so far. For each node in order: pop its gradient; a leaf accumulates it;
#   otherwise (also accumulating it if the node `retain_grad()`s) `_call_backward` turns
#   it into input gradients, and `add_input_grads` adds each into the dict (a new array,
#   never `+=` there: the array may be shared). Then, unless `retain_graph`, release what
#   the node saved: set `fn._saved = _FREED`, so that a second backward through it raises
#   a clear error instead of using stale values.
#
# `Variable.backward()` (given) checks its arguments and calls your `backpropagate`.


# %% nbgrader={"grade": false, "grade_id": "engine", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| exporti
def count_consumers(root: Variable) -> dict[Variable, int]:
    """For every Variable that `root` depends on and that requires grad: how many op
    inputs consume it, i.e. how many gradients it will receive. Iterative (an explicit
    stack, no recursion), and each Variable is expanded once."""
    ### BEGIN SOLUTION
    consumers = {root: 0}
    stack = [root]
    while stack:
        fn = stack.pop().grad_fn
        if fn is None:
            continue
        for index, needed in enumerate(fn.needs_input_grad):
            if not needed:
                continue
            parent = fn.inputs[index]
            if parent in consumers:
                consumers[parent] += 1
            else:
                consumers[parent] = 1
                stack.append(parent)
    return consumers
    ### END SOLUTION


def topological_order(root: Variable) -> list[Variable]:
    """Every Variable that `root` depends on and that requires grad, each once, each after
    every Variable computed from it (root first): the order backward visits them.
    Kahn's algorithm; a ready leaf is visited at once."""
    ### BEGIN SOLUTION
    waiting = count_consumers(root)
    order = []
    ready = [root]
    while ready:
        node = ready.pop()
        order.append(node)
        fn = node.grad_fn
        if fn is None:
            continue
        for index, needed in enumerate(fn.needs_input_grad):
            if needed:
                parent = fn.inputs[index]
                waiting[parent] -= 1
                if waiting[parent] == 0:
                    if parent.grad_fn is None:
                        order.append(parent)  # a ready leaf has nothing to wait for
                    else:
                        ready.append(parent)
    return order
    ### END SOLUTION


def accumulate_grad(variable: Variable, grad: np.ndarray) -> None:
    """Add `grad` into `variable.grad`: the first becomes `.grad`, later ones add in place."""
    ### BEGIN SOLUTION
    if variable.grad is None:
        variable.grad = grad
    else:
        variable.grad += grad
    ### END SOLUTION


def backpropagate(root: Variable, grad_output: np.ndarray, retain_graph: bool = False) -> None:
    """Send `grad_output` (∂L/∂root) back through the graph: each Variable's gradient is
    complete when its turn comes in topological order; its grad_fn's backward turns it
    into gradients for its inputs, which are summed per input. Leaves (and Variables that
    retain_grad) accumulate theirs in `.grad`. Saved values are freed unless
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
        add_input_grads(grads, fn, _call_backward(fn, grad))
        if not retain_graph:
            fn._saved = _FREED
    ### END SOLUTION


def add_input_grads(grads: dict, fn: Function, input_grads: list) -> None:
    """Add each input's gradient (None: no gradient) to what `grads` holds for it."""
    ### BEGIN SOLUTION
    for index, input_grad in enumerate(input_grads):
        if input_grad is not None:
            parent = fn.inputs[index]
            grads[parent] = grads[parent] + input_grad if parent in grads else input_grad
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_engine", "locked": true, "points": 18, "schema_version": 3, "solution": false, "task": false}
from tinytorch_course.checks import Check
from tinytorch_course.checks_autograd import check_gradients

check = Check("test_engine", points=18)
x0, y0, b0 = check.rng.uniform(0.5, 2.0, 3)


def opening_example():
    x, y, b = (Variable(np.float64(v), requires_grad=True) for v in (x0, y0, b0))
    (x * y + b).backward()
    return [None if v.grad is None else float(v.grad) for v in (x, y, b)]


got = check.probe(opening_example, "(x.grad, y.grad, b.grad) after z.backward()")
check.close(
    np.array(got, dtype=np.float64),
    [y0, x0, 1.0],
    "(x.grad, y.grad, b.grad) for z = x*y + b",
    hint="∂z/∂x = y, ∂z/∂y = x, ∂z/∂b = 1",
)
diamond_state = {}


def diamond_counts():
    a = Variable(np.float64(x0), requires_grad=True)
    left, right = a * 2, a * 3
    d = left + right
    counts = count_consumers(d)
    order = topological_order(d)
    diamond_state.update(a=a, d=d)
    return {
        "consumers": sorted(int(n) for n in counts.values()),
        "of a": int(counts.get(a, -1)),
        "order": [("d" if v is d else "a" if v is a else "op") for v in order],
    }


got = check.no_raise(
    check.probe(diamond_counts, "count_consumers / topological_order"),
    "count_consumers(d) for d = a*2 + a*3",
)
check.equal(got["of a"], 2, "count_consumers(d)[a] for d = a*2 + a*3 (a feeds two ops)")
check.equal(got["consumers"], [0, 1, 1, 2], "the sorted counts of count_consumers(d)")
check.equal(
    got["order"],
    ["d", "op", "op", "a"],
    "topological_order(d), root first",
    hint="each Variable once, the leaf a after both ops that use it",
)


def diamond_grad():
    diamond_state["d"].backward()
    return float(diamond_state["a"].grad)


check.close(
    check.probe(diamond_grad, "d.backward()"),
    5.0,
    "∂d/∂a for d = a*2 + a*3",
    hint="two paths: 2 + 3",
)
m, v = check.rng.standard_normal((2, 3)), check.rng.standard_normal(3)
c = check.rng.uniform(1.0, 2.0, (2, 1))
check_gradients(
    check,
    lambda: Variable,
    lambda p, q: p * q + q,
    lambda p, q: p * q + q,
    [m, v],
    "m * v + v with v (3,) broadcast over rows",
    hint="unbroadcast",
)
check_gradients(
    check,
    lambda: Variable,
    lambda p, q: p / q - q,
    lambda p, q: p / q - q,
    [m, c],
    "m / c - c with c of shape (2, 1)",
)
w0 = check.rng.standard_normal(2)


def accumulation():
    w = Variable(w0.copy(), requires_grad=True)
    (w * 3).backward(np.ones(2))
    (w * 4).backward(np.ones(2))
    accumulated = np.array(w.grad)
    hidden = w * w
    hidden.retain_grad()
    (hidden * 5).backward(np.ones(2))
    return accumulated, np.array(hidden.grad), (w * 2).grad is None


got = check.no_raise(
    check.probe(accumulation, "gradients across two backward() calls"), "two backward() calls"
)
check.close(
    got[0],
    [7.0, 7.0],
    "w.grad after backward of w*3 then of w*4",
    hint="gradients accumulate: add, do not overwrite",
)
check.close(got[1], [5.0, 5.0], "hidden.grad of a non-leaf that called retain_grad()")
check.equal(got[2], True, "(w * 2).grad is None", hint="a non-leaf keeps no .grad by default")


def freed_graph():
    p = Variable(w0.copy(), requires_grad=True)
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


got = check.no_raise(
    check.probe(freed_graph, "a second backward through a freed graph"), "backward twice"
)
check.equal(
    got[0],
    "RuntimeError",
    "a second q.backward() without retain_graph",
    hint="set fn._saved = _FREED after each node's backward",
)
check.close(got[1], 2 * w0, "p.grad after a refused second backward of p*p")
check.close(got[2], 6 * w0, "p.grad after p*p once, then twice with retain_graph=True first")


def long_chain(length, op):
    start = chain = Variable(np.float64(1.0), requires_grad=True)
    for _ in range(length):
        chain = op(chain)
    chain.backward()
    return float(start.grad)


got = check.probe(lambda: long_chain(5000, lambda t: t + 1.0), "a 5,000-op chain")
check.close(
    got,
    1.0,
    "the gradient through a 5,000-op chain",
    hint="walk the graph with an explicit stack (a list), not recursion",
)


def diamonds(count):
    calls = []

    class Counted(Function):
        @staticmethod
        def forward(ctx, p):
            return p * 1.0

        @staticmethod
        def backward(ctx, grad_output):
            calls.append(1)
            return grad_output

    top = node = Variable(np.float64(1.0), requires_grad=True)
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
got = check.probe(lambda: long_chain(60, lambda t: t * 1.0 + t * 1.0), "60 diamonds")
check.close(got, 2.0**60, "the gradient through 60 diamonds (2**60 paths, 180 nodes)")
### BEGIN HIDDEN TESTS


def add_leaves():
    first = Variable(w0.copy(), requires_grad=True)
    second = Variable(w0[::-1].copy(), requires_grad=True)
    (first + second).backward(np.ones(2))
    first.grad += 1
    return np.array(second.grad)


check.close(
    check.probe(add_leaves, "first.grad += 1 after (first + second).backward()"),
    [1.0, 1.0],
    "second.grad after first.grad += 1 (the two must not share a buffer)",
)
got = check.probe(lambda: long_chain(100_000, lambda t: t * 1.0), "a 100,000-op chain")
check.close(got, 1.0, "the gradient through a 100,000-op chain")
### END HIDDEN TESTS
check.done()


# %% [markdown]
# ## Seeing your graph: `tinytorch.viz`
#
# The opening's pictures come from `tinytorch.viz`, a small module of tools that watch the
# engine from outside through its public hooks: `draw_graph(v)` reads the graph through
# each `grad_fn`'s `inputs`; `trace()` listens with `observe_ops` and `register_hook`;
# `explain(code)` runs code line by line under `trace()`. Pass `names=globals()` so that
# they say `x` where your code says `x`. Here they run on *your* engine (they print a
# hint instead while Parts 1 to 4 are unfinished):

# %%
from tinytorch.viz import draw_graph, trace

try:
    a = Variable(1.0, requires_grad=True)
    with trace(names=globals(), observe=observe_ops):
        b = a * 2
        c = a * 3
        d = b + c
        d.backward()
    print(draw_graph(d, names=globals()))
    print(draw_graph(d, backward=True, names=globals()))
except Exception as error:  # the released notebook runs this before your engine is finished
    print(f"draw_graph and trace run on your engine; finish Parts 1 to 4 first ({error!r})")


# %% [markdown]
# ## Part 5: the rest of the elementwise math
#
# | op | forward | local derivative ∂out/∂a | saves |
# |---|---|---|---|
# | `Pow` | a ** b | b · a ** (b - 1); and ∂out/∂b = out · ln a | a, b, out |
# | `Exp` | e ** a | out | out |
# | `Log` | ln a | 1 / a | a |
# | `Tanh` | tanh a | 1 - out² | out |
# | `Sigmoid` | 1 / (1 + e ** -a) | out · (1 - out) | e = exp(-\|a\|), 1 + e |
# | `ReLU` | max(a, 0) | 1 where a > 0, else 0 | a |
#
# Two numerical traps, both real:
#
# ```text
# sigmoid(-1000) = 1 / (1 + e**1000)      e**1000 overflows: inf, and a warning
# stable form:     e = exp(-|a|)           always in (0, 1]
#                  sigmoid(a) = exp(min(a, 0)) / (1 + e)
#                  sigmoid'(a) = e / (1 + e)**2
# ```
#
# The textbook derivative `out · (1 - out)` is also imprecise: near `out = 1` the
# subtraction `1 - out` keeps few correct digits (in float32, sigmoid(9) rounds to
# 0.9998766, and `1 - out` = 0.00012338 where the true value is 0.00012339: about 4
# correct digits left). `e / (1 + e)**2` is the same number without the subtraction.
#
# For `Pow`, where the exponent is 0 the derivative is 0 (and `a ** -1` may be infinite
# at `a = 0`); `power_derivative` handles both a number and an array exponent. The
# gradient for a `Variable` exponent, `out · ln a`, is taken as 0 where `a = 0`, as
# PyTorch does. Compute each gradient only when `ctx.needs_input_grad` says it is
# needed.
#
# **Your task:** `power_derivative`, and forward/backward of `Pow`, `Exp`, `Log`,
# `Tanh`, `Sigmoid` (stable) and `ReLU`.


# %% nbgrader={"grade": false, "grade_id": "math_ops", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| exporti
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


# %% nbgrader={"grade": true, "grade_id": "test_math_ops", "locked": true, "points": 12, "schema_version": 3, "solution": false, "task": false}
from tinytorch_course.checks import Check
from tinytorch_course.checks_autograd import check_gradients

check = Check("test_math_ops", points=12)
shape = (2, 3)
values, positive = check.rng.standard_normal(shape), check.rng.uniform(0.5, 2.0, shape)
away = check.rng.uniform(0.2, 2.0, shape) * check.rng.choice([-1, 1], shape)
p = float(check.rng.uniform(2.5, 3.5))
for expression, numpy_fn, arrays, what, hint in [
    (lambda a: a**p, lambda a: a**p, [positive], "a ** p", "b * a ** (b - 1)"),
    (lambda a: a**-0.5, lambda a: a**-0.5, [positive], "a ** -0.5", ""),
    (lambda a, b: a**b, lambda a, b: a**b, [positive, values], "a ** b", "∂/∂b = out * ln a"),
    (lambda a: 2**a, lambda a: 2**a, [values], "2 ** a", ""),
    (lambda a: a.exp(), np.exp, [values], "a.exp()", ""),
    (lambda a: a.log(), np.log, [positive], "a.log()", "∂ ln a/∂a = 1 / a"),
    (lambda a: a.tanh(), np.tanh, [values], "a.tanh()", "1 - out², not 1 - out"),
    (lambda a: a.sigmoid(), lambda a: 1 / (1 + np.exp(-a)), [values], "a.sigmoid()", ""),
    (lambda a: a.relu(), lambda a: np.maximum(a, 0), [away], "a.relu()", ""),
]:
    check_gradients(check, lambda: Variable, expression, numpy_fn, arrays, what, hint)
edge = np.array([-1000.0, 0.0, 1000.0])


def sigmoid_at_the_edges():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow warning fails the test
        x = Variable(edge.copy(), requires_grad=True)
        s = x.sigmoid()
        s.backward(np.ones(3))
    return np.array(s.data), np.array(x.grad)


got = check.no_raise(
    check.probe(sigmoid_at_the_edges, "sigmoid at -1000, 0, 1000"),
    "sigmoid at -1000, 0, 1000 (an overflow warning counts as an error)",
)
check.close(got[0], [0.0, 0.5, 1.0], "sigmoid at -1000, 0, 1000")
check.close(got[1], [0.0, 0.25, 0.0], "sigmoid's gradient at -1000, 0, 1000")
### BEGIN HIDDEN TESTS


def at_zero():
    zero = Variable(np.array([0.0, 1.0]), requires_grad=True)
    (zero**0).backward(np.ones(2))
    base = Variable(np.array([0.0, 2.0]), requires_grad=True)
    exponent = Variable(np.array([2.0, 3.0]), requires_grad=True)
    (base**exponent).backward(np.ones(2))
    y = Variable(np.array([0.0, 2.0], dtype=np.float32), requires_grad=True)
    y.relu().backward(np.ones(2, dtype=np.float32))
    return np.array(zero.grad), np.array(exponent.grad), np.array(y.grad), str(y.grad.dtype)


got = check.no_raise(check.probe(at_zero, "a ** 0, a ** b and relu at a = 0"), "at a = 0")
check.close(got[0], [0.0, 0.0], "d(a**0)/da (0 even at a = 0)")
check.close(got[1], [0.0, 8.0 * np.log(2.0)], "d(a**b)/db where a = 0 is taken as 0")
check.close(got[2], [0.0, 1.0], "relu's gradient at 0 and 2 (0 at 0)")
check.equal(got[3], "float32", "the dtype of a float32 Variable's .grad")
### END HIDDEN TESTS
check.done()


# %% [markdown]
# ## Part 6: matrix multiplication
#
# For `C = A @ B` with `A` (n, k) and `B` (k, m), each gradient is the one product
# whose shape fits:
#
# ```text
# C = A @ B                  (n, k) @ (k, m)  ->  (n, m)
# ∂L/∂A = ∂L/∂C @ B.T        (n, m) @ (m, k)  ->  (n, k)
# ∂L/∂B = A.T @ ∂L/∂C        (k, n) @ (n, m)  ->  (k, m)
# ```
#
# `np.matmul` also multiplies vectors and stacks of matrices, and your backward must
# follow it:
#
# - a 1-D `A` (k,) acts as a row (1, k) whose axis is then dropped; a 1-D `B` (k,) acts
#   as a column (k, 1). In backward, put those axes back on `A`, `B` *and* the
#   gradient, use the formulas above, and drop them again;
# - leading (batch) axes broadcast like any elementwise op: `(5, 2, 3) @ (3, 4)` is
#   `(5, 2, 4)`, and the gradient for the (3, 4) matrix comes out as (5, 3, 4). The
#   engine's `unbroadcast` sums it back.
#
# Use `np.swapaxes(x, -1, -2)` for a transpose that works on stacks.
#
# **Your task:** `MatMul.forward` and `MatMul.backward`.


# %% nbgrader={"grade": false, "grade_id": "matmul", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| exporti
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


# %% nbgrader={"grade": true, "grade_id": "test_matmul", "locked": true, "points": 8, "schema_version": 3, "solution": false, "task": false}
from tinytorch_course.checks import Check
from tinytorch_course.checks_autograd import check_gradients

check = Check("test_matmul", points=8)
for a_shape, b_shape in [
    ((2, 3), (3, 4)),
    ((3,), (3, 4)),
    ((2, 3), (3,)),
    ((3,), (3,)),
    ((5, 2, 3), (5, 3, 4)),
    ((5, 2, 3), (3, 4)),
    ((3,), (5, 3, 2)),
]:
    arrays = [check.rng.standard_normal(a_shape), check.rng.standard_normal(b_shape)]
    check_gradients(
        check,
        lambda: Variable,
        lambda a, b: a @ b,
        np.matmul,
        arrays,
        f"a @ b with shapes {a_shape} @ {b_shape}",
        hint="∂L/∂A = g @ B.T, ∂L/∂B = A.T @ g",
    )
### BEGIN HIDDEN TESTS
for a_shape, b_shape in [((4, 1, 2, 3), (2, 3, 2)), ((2, 2, 3), (3,))]:
    arrays = [check.rng.standard_normal(a_shape), check.rng.standard_normal(b_shape)]
    check_gradients(
        check,
        lambda: Variable,
        lambda a, b: a @ b,
        np.matmul,
        arrays,
        f"a @ b with shapes {a_shape} @ {b_shape}",
    )
### END HIDDEN TESTS
check.done()


# %% [markdown]
# ## Part 7: reductions
#
# A reduction's backward *spreads* the output gradient back over the input:
#
# ```text
# x = [[1, 5, 2],          x.sum(axis=1) = [8, 14]     x.max(axis=1) = [5, 7]
#      [7, 0, 7]]
#
# sum:  ∂L/∂x = [[g0, g0, g0],     every element counted once
#                [g1, g1, g1]]
# mean: the same divided by the count of reduced elements (3 here)
# max:  ∂L/∂x = [[0,    g0, 0   ],    only the maximum moved the output;
#                [g1/2, 0,  g1/2]]    a tie shares it equally (as torch.amax)
# ```
#
# With `keepdims=False` the reduced axes are gone from `grad_output`: put them back
# with `np.expand_dims(grad, axis)` (it accepts a tuple of axes), then
# `np.broadcast_to` the input's shape. That is `expand_reduced`, used by all three.
#
# **Your task:** `expand_reduced`, and `Sum`, `Mean`, `Max` (axis `None`, an int or a
# tuple; `keepdims` either way). `forward` receives `axis` and `keepdims` as ordinary
# arguments, so `backward` returns `None` for them: one gradient per input.


# %% nbgrader={"grade": false, "grade_id": "reductions", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| exporti
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
from tinytorch_course.checks import Check
from tinytorch_course.checks_autograd import check_gradients

check = Check("test_reductions", points=10)
data = check.rng.standard_normal((2, 3, 4))
for axis in (None, 0, 1, -1, (0, 2)):
    for keepdims in (False, True):
        for method in ("sum", "mean", "max"):
            check_gradients(
                check,
                lambda: Variable,
                lambda a, m=method, x=axis, k=keepdims: getattr(a, m)(axis=x, keepdims=k),
                lambda a, m=method, x=axis, k=keepdims: getattr(np, m)(a, axis=x, keepdims=k),
                [data],
                f"a.{method}(axis={axis}, keepdims={keepdims}) for a of shape (2, 3, 4)",
            )
low, high = sorted(check.rng.uniform(-2.0, 2.0, 2))
tied = np.array([[low, high, low], [high, low, high]])


def max_with_ties():
    ties = Variable(tied.copy(), requires_grad=True)
    ties.max(axis=1).backward(np.array([1.0, 1.0]))
    return np.array(ties.grad)


check.close(
    check.probe(max_with_ties, "max with ties"),
    [[0, 1, 0], [0.5, 0, 0.5]],
    "max's gradient when two elements tie for the maximum",
    hint="the tied elements share the gradient equally",
)
### BEGIN HIDDEN TESTS
check_gradients(
    check, lambda: Variable, lambda a: a.sum(), np.sum, [np.array(low)], "the sum of a 0-d Variable"
)
check_gradients(
    check,
    lambda: Variable,
    lambda a: a.mean(axis=(0, 1)),
    lambda a: a.mean(axis=(0, 1)),
    [data],
    "a.mean(axis=(0, 1))",
)
### END HIDDEN TESTS
check.done()


# %% [markdown]
# ## Part 8: reshaping and indexing
#
# Reshape and transpose only move numbers around, so their backward moves the gradient
# back: reshape it to the input's shape; transpose it with the inverse permutation
# (`np.argsort(axes)`; `None`, reversing all axes, is its own inverse).
#
# Indexing *picks* numbers, and backward puts each gradient where its number came from
# (zeros elsewhere). When an integer array picks the same element twice, both
# gradients belong to it:
#
# ```text
# x = [10, 20, 30]        x[[0, 0, 2]] = [10, 10, 30]
# grad_output = [1, 1, 1]     ∂L/∂x = [2, 0, 1]     element 0 was picked twice
#
# grad[index] += grad_output        gives [1, 0, 1]: numpy writes element 0 twice
# np.add.at(grad, index, grad_output)  gives [2, 0, 1]: adds once per occurrence
# ```
#
# Basic indexing (integers, slices, `None`, `...`) cannot pick an element twice, so
# plain assignment is enough there, and faster (`_is_basic_index` tells them apart).
#
# **Your task:** `Reshape`, `Transpose` and `GetItem`.


# %% nbgrader={"grade": false, "grade_id": "shape_ops", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| exporti
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


def _is_basic_index(index) -> bool:
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
        if _is_basic_index(ctx.index):
            grad[ctx.index] = grad_output
        else:
            np.add.at(grad, ctx.index, grad_output)  # `+=` would count a repeated index once
        return grad, None
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_shape_ops", "locked": true, "points": 8, "schema_version": 3, "solution": false, "task": false}
from tinytorch_course.checks import Check
from tinytorch_course.checks_autograd import check_gradients

check = Check("test_shape_ops", points=8)
data = check.rng.standard_normal((2, 3, 4))
for expression, numpy_fn, what in [
    (lambda a: a.reshape(4, 6), lambda a: a.reshape(4, 6), "a.reshape(4, 6)"),
    (lambda a: a.reshape((-1,)), lambda a: a.reshape(-1), "a.reshape((-1,))"),
    (lambda a: a.T, lambda a: a.T, "a.T"),
    (lambda a: a.transpose(1, 2, 0), lambda a: a.transpose(1, 2, 0), "a.transpose(1, 2, 0)"),
    (lambda a: a[0, 1:, ::2], lambda a: a[0, 1:, ::2], "a[0, 1:, ::2]"),
    (lambda a: a[:, [0, 2, 2]], lambda a: a[:, [0, 2, 2]], "a[:, [0, 2, 2]]"),
]:
    check_gradients(
        check,
        lambda: Variable,
        expression,
        numpy_fn,
        [data],
        what,
        hint="transpose back with np.argsort(axes); np.add.at for repeats",
    )


def picked_twice():
    picked = Variable(data[0, 0, :3].copy(), requires_grad=True)
    picked[np.array([0, 0, 2])].backward(np.ones(3))
    return np.array(picked.grad)


check.close(
    check.probe(picked_twice, "x[[0, 0, 2]]"),
    [2.0, 0.0, 1.0],
    "the gradient of x[[0, 0, 2]]: element 0 was picked twice",
    hint="np.add.at(grad, index, grad_output) adds once per occurrence",
)
### BEGIN HIDDEN TESTS
mask = data > 0
for expression, numpy_fn, what in [
    (
        lambda a: a[np.arange(2), [1, 2]],
        lambda a: a[np.arange(2), [1, 2]],
        "a[np.arange(2), [1, 2]]",
    ),
    (lambda a: a[mask], lambda a: a[mask], "a[mask]"),
    (lambda a: a.transpose(0, 2), lambda a: np.swapaxes(a, 0, 2), "a.transpose(0, 2)"),
]:
    check_gradients(check, lambda: Variable, expression, numpy_fn, [data], what)
### END HIDDEN TESTS
check.done()


# %% [markdown]
# ## Part 9: log-softmax
#
# Classification losses need log(softmax(a)) along the class axis. Computed as written,
# `exp(1000)` overflows. Subtracting the maximum first changes nothing mathematically
# and keeps every exponent ≤ 0:
#
# ```text
# log_softmax(a) = a - m - log(sum(exp(a - m)))      with m = max(a) along the axis
#
# backward: ∂L/∂a = g - softmax(a) * sum(g)          softmax(a) = exp(out)
# ```
#
# The backward formula follows from ∂out_i/∂a_j = δ_ij - softmax_j, summed against
# `g`. Module 02 builds its cross-entropy loss on this.
#
# **Your task:** `LogSoftmax.forward` and `LogSoftmax.backward` (the function
# `log_softmax(x, axis=-1)` and the method `x.log_softmax()` call it).


# %% nbgrader={"grade": false, "grade_id": "log_softmax", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| exporti
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


# %%
#| export
def log_softmax(x: Variable, axis: int = -1) -> Variable:
    """log(softmax(x)) along `axis`."""
    return LogSoftmax.apply(x, axis)


def exp(x: Variable) -> Variable:
    """e ** x."""
    return Exp.apply(x)


def log(x: Variable) -> Variable:
    return Log.apply(x)


def tanh(x: Variable) -> Variable:
    return Tanh.apply(x)


def sigmoid(x: Variable) -> Variable:
    return Sigmoid.apply(x)


def relu(x: Variable) -> Variable:
    return ReLU.apply(x)


def matmul(a, b) -> Variable:
    """a @ b for Variables (or a Variable and an array)."""
    return MatMul.apply(_operand(a), _operand(b))


# %% nbgrader={"grade": true, "grade_id": "test_log_softmax", "locked": true, "points": 6, "schema_version": 3, "solution": false, "task": false}
from tinytorch_course.checks import Check
from tinytorch_course.checks_autograd import check_gradients

check = Check("test_log_softmax", points=6)
data = check.rng.standard_normal((3, 4))


def numpy_log_softmax(a, axis=-1):
    shifted = a - a.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


check_gradients(
    check,
    lambda: Variable,
    lambda a: log_softmax(a),
    numpy_log_softmax,
    [data],
    "log_softmax(a) along the last axis",
    hint="g - softmax * sum(g) along the axis",
)
check_gradients(
    check,
    lambda: Variable,
    lambda a: a.log_softmax(axis=0),
    lambda a: numpy_log_softmax(a, axis=0),
    [data],
    "a.log_softmax(axis=0)",
)
shift = float(check.rng.uniform(900.0, 1000.0))


def large_inputs():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return np.array(log_softmax(Variable(np.array([[shift, 0.0, -shift]]))).data)


check.close(
    check.probe(large_inputs, f"log_softmax([{shift:.1f}, 0, -{shift:.1f}])"),
    [[0.0, -shift, -2 * shift]],
    f"log_softmax([{shift:.1f}, 0, -{shift:.1f}])",
    hint="subtract the maximum first: exp of a large number overflows",
)
check.done()


# %% [markdown]
# ## Part 10: `gradcheck`, trusting gradients (given)
#
# How do you know a backward is right? Nudge each input element by ±ε and see how the
# output moves:
#
# ```text
# ∂f/∂x_i  ≈  (f(x + ε·e_i) - f(x - ε·e_i)) / 2ε          error O(ε²)
# ```
#
# `gradcheck(fn, inputs)` does that for every element of every input that requires
# grad, in float64 (in float32, ε = 1e-6 would drown in rounding), backpropagates one
# output element at a time to get the full Jacobian from your engine, and compares
# them with PyTorch's defaults (`eps=1e-6, atol=1e-5, rtol=1e-3`). On a mismatch it
# raises `GradcheckError` naming the input, the element, the expected (numerical) and
# the got (backward) value. You can run it on any
# function of Variables, ops you add later included.


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
                    + f": expected {numerical[bad][0]!r} (finite differences), "
                    + f"got {got[bad][0]!r} (backward)"
                )
                if raise_exception:
                    raise GradcheckError(message)
                return False
    return True


# %% [markdown]
# ## Part 11: integration, training with your engine
#
# Everything together: two small models trained with nothing but your `Variable`, its
# ops, `backward()` and a plain gradient-descent loop (`w -= lr * w.grad`, under
# `no_grad()`; module 03 turns this into optimizers):
#
# 1. polynomial regression: fit y = 0.5x² - x + 2 from noisy samples;
# 2. a 2-8-2 tanh network classifying XOR with a log-softmax cross-entropy loss.
#
# ```text
# for step in range(steps):
#     loss = model(x)          forward: records the graph
#     loss.backward()          backward: fills every parameter's .grad
#     with no_grad():
#         w.data -= lr * w.grad
#     w.zero_grad()            gradients accumulate unless cleared
# ```


# %% nbgrader={"grade": true, "grade_id": "test_integration", "locked": true, "points": 8, "schema_version": 3, "solution": false, "task": false}
from tinytorch_course.checks import Check

check = Check("test_integration", points=8)
inputs = check.rng.uniform(-2, 2, 64)
targets = 0.5 * inputs**2 - inputs + 2 + check.rng.normal(0, 0.05, 64)
features = np.stack([inputs**2, inputs, np.ones(64)], axis=1)


def regression():
    coefficients = Variable(np.zeros(3), requires_grad=True)
    losses = []
    for _ in range(400):
        loss = ((Variable(features) @ coefficients - targets) ** 2).mean()
        loss.backward()
        with no_grad():
            coefficients.data -= 0.1 * coefficients.grad
        coefficients.zero_grad()
        losses.append(loss.item())
    return np.array(coefficients.data), losses[0], losses[-1]


got = check.no_raise(check.probe(regression, "400 steps of polynomial regression"), "regression")
check.expect(
    got[2] < 0.01,
    f"after 400 steps the regression loss is {got[2]:.4f}; it should "
    f"fall below 0.01 (it started at {got[1]:.2f})",
)
fit = np.linalg.lstsq(features, targets, rcond=None)[0]
check.close(got[0], fit, "the fitted coefficients of x**2, x, 1", atol=0.05)
xor_inputs = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
xor_labels = np.array([0, 1, 1, 0])
initial = [check.rng.normal(0, 1, (2, 8)), np.zeros(8), check.rng.normal(0, 1, (8, 2)), np.zeros(2)]


def xor():
    W1, b1, W2, b2 = (Variable(p.copy(), requires_grad=True) for p in initial)
    for _ in range(300):
        log_probabilities = log_softmax((Variable(xor_inputs) @ W1 + b1).tanh() @ W2 + b2)
        loss = -log_probabilities[np.arange(4), xor_labels].mean()
        loss.backward()
        with no_grad():
            for parameter in (W1, b1, W2, b2):
                parameter.data -= 1.0 * parameter.grad
                parameter.zero_grad()
    return np.array(log_probabilities.data), loss.item()


got = check.no_raise(check.probe(xor, "300 steps of a 2-8-2 tanh network on XOR"), "XOR")
check.equal(
    got[0].argmax(axis=1), xor_labels, f"the XOR predictions after 300 steps (loss {got[1]:.3f})"
)
check.done()


# %% [markdown]
# ## What you built, and where it goes next
#
# A reverse-mode autograd engine: `Variable` with PyTorch's semantics (`requires_grad`,
# `grad_fn`, leaves, accumulating `.grad`, `retain_grad()`, `detach()`, `no_grad()`);
# `Function` with `apply`/`forward`/`backward`/`ctx` and 19 ops on top of it; an iterative
# engine that visits each node once in reverse topological order, frees saved values
# after use and refuses a second pass through a freed graph; `gradcheck` to trust it, and
# hooks that let tools such as `tinytorch.viz` watch it.
#
# After `nbdev-export`, `import tinytorch as tt` gives `tt.Variable`, `tt.Function`,
# `tt.no_grad` and `tt.gradcheck`, and each later module adds its part: `tt.nn` (02:
# `Module`, `Linear`, activations, losses built on your `log_softmax`), `tt.optim` (03:
# SGD and Adam, updating the `.grad` your engine fills), `tt.data` (04: a training loop
# on real data), `tt.memory` (05: a ledger of the bytes of your live graph, and gradient
# checkpointing). The cell below makes that work before the later modules exist: a part
# not yet exported is an error naming the module that builds it.

# %%
#| export __init__
import importlib as _importlib

# Each submodule of the package, and the course module whose notebook exports it.
_BUILT_BY = {
    "autograd": "01_autograd",
    "viz": "01_autograd",
    "nn": "02_nn",
    "optim": "03_optim",
    "data": "04_training",
    "training": "04_training",
    "memory": "05_memory",
    "conv": "06",
    "attention": "07",
}
_FROM_AUTOGRAD = ("Variable", "Function", "no_grad", "enable_grad", "set_grad_enabled")
_FROM_AUTOGRAD += ("is_grad_enabled", "gradcheck", "GradcheckError")


def _submodule(name: str):
    """`tinytorch.<name>`, imported on first use (PEP 562), or an AttributeError naming the
    course module that builds it when it has not been exported yet."""
    try:
        module = _importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as error:
        if error.name != f"{__name__}.{name}":
            raise
        raise AttributeError(
            f"tinytorch.{name} is not in this package yet: module {_BUILT_BY[name]} builds it "
            "(finish that notebook, then run nbdev-export in your workspace)"
        ) from None
    globals()[name] = module
    return module


def __getattr__(name: str):
    if name in _BUILT_BY:
        return _submodule(name)
    if name in _FROM_AUTOGRAD:
        return getattr(_submodule("autograd"), name)
    raise AttributeError(f"module 'tinytorch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_BUILT_BY, *_FROM_AUTOGRAD})
