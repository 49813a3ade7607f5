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
# Reverse-mode automatic differentiation is old: Seppo Linnainmaa described it in 1970,
# Paul Werbos proposed it for training neural networks (1974), and
# Rumelhart, Hinton and Williams made *backpropagation* widely known in 1986. Yet for
# years people derived gradients by hand for each new model, where one sign error
# silently ruined training. Theano (2007) made derivatives of array programs automatic in
# Python; Chainer (2015) and PyTorch (2017) record the graph *as the code runs*
# ("define-by-run"), the design you build here, so any Python control flow is
# differentiable. Before: a page of calculus per new layer, checked by hope. After: write
# the forward pass, call `backward()`, check every gradient with `gradcheck`.
#
# The plan: `Variable` and `Function` are given; you write the first op (`Mul`), the
# `apply` that records the graph, the other arithmetic, the engine, then the other ops.

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
# when your notebook is graded); a failure's first line says which op, which input, what
# number was expected, and often the mistake (a flipped sign, a missing sum). Gradients
# are compared with numerical ones (as `gradcheck` in Part 10), computed with numpy alone.
#
# Cells marked `#| export` form the library: when the module is done, `nbdev-export` in
# your workspace folder writes your code to your own `tinytorch/autograd.py`, which later
# modules import (`tinytorch-course test 01` runs this notebook's tests from a terminal).

# %% [markdown]
# ## Part 1: `Variable`, `Function`, and your first op
#
# A `Variable` wraps a numpy array, `data` (float32 or float64), and carries what
# autograd needs: `requires_grad` (do we want ∂L/∂ of it?), `grad` (that gradient, shaped
# like `data`, or None), `grad_fn` (the Function call that computed it) and an optional
# `name` for diagrams.
#
# A Variable you create is a **leaf** (`grad_fn is None`); one computed by an operation on
# Variables that require grad gets a `grad_fn`, the record of that operation. Only leaves
# keep `.grad` (unless you ask with `retain_grad()`), as in PyTorch. Numbers follow
# PyTorch's rule: Python numbers, lists and integer arrays become **float32**; a floating
# numpy array keeps its dtype; a Python number in an expression never changes a
# Variable's dtype (`x * 2.5` with a float32 `x` is float32). Anything else (a string,
# `None`) is refused with a `TypeError` naming it.
#
# The next cells are given: read them, they are the library's public face. After
# `Function`, a table gives `Variable` its operators (`+`, `@`, `x.sum()`, `x[0]`...).


# %%
#| export
class Variable:
    """A numpy array (`data`) that records the operation that made it (`grad_fn`), so
    that `backward()` can compute the gradient of a result with respect to every
    Variable that has `requires_grad=True`. Names and semantics follow PyTorch's Tensor.
    Its operators and methods (`+`, `@`, `sum`, `reshape`...) each apply one `Function`;
    `shape`, `dtype`, `ndim`, `size` read `data`."""

    __slots__ = ("data", "grad", "requires_grad", "grad_fn", "name", "_retains_grad")
    __array_ufunc__ = None  # `numpy_array * variable` calls Variable.__rmul__, not numpy

    def __init__(self, data, requires_grad: bool = False, name: str | None = None):
        if type(data) is not np.ndarray or data.dtype.kind != "f":
            data = _as_float_array(data)
        self.data, self.requires_grad, self.name = data, requires_grad, name
        self.grad = self.grad_fn = None
        self._retains_grad = False

    @property
    def is_leaf(self) -> bool:
        """Made by the user, not by an op (`grad_fn is None`): only leaves keep `.grad`."""
        return self.grad_fn is None

    def backward(self, gradient=None, retain_graph: bool = False) -> None:
        """Compute the gradient of this Variable with respect to every leaf that requires
        grad, adding it to their `.grad`. A non-scalar needs `gradient` (∂L/∂self)."""
        backpropagate(self, _initial_gradient(self, gradient), retain_graph)

    def retain_grad(self) -> None:
        """Keep `.grad` on this non-leaf too (by default only leaves keep it)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a Variable that does not require grad")
        self._retains_grad = True

    def zero_grad(self) -> None:
        """Forget the accumulated gradient (`.grad = None`, as PyTorch does by default)."""
        self.grad = None

    def detach(self) -> "Variable":
        """The same data as a new leaf that does not require grad: gradients stop here."""
        return Variable(self.data)

    def requires_grad_(self, requires_grad: bool = True) -> "Variable":
        """Make this leaf require grad (or not); returns it."""
        if not self.is_leaf:
            raise RuntimeError(
                "requires_grad_() can only change leaves; use .detach() to "
                "start a new leaf from this result"
            )
        self.requires_grad = requires_grad
        return self


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
# The class, the switch behind `no_grad()` and two hooks through which tools watch the
# engine from outside (`grad_fn.register_hook`, `observe_ops`) are given below.

# %%
#| export
_FREED = object()  # marks saved values that backward() has already released


class Function:
    """One operation in the graph, and the context (`ctx`) of one call to it. Subclasses
    define `forward(ctx, *inputs)` (numpy arrays in, one array out) and `backward(ctx,
    grad_output)` (one gradient or None per input); `MyFunction.apply(*inputs)` runs them."""

    __slots__ = ("inputs", "needs_input_grad", "_saved", "__dict__")
    _hooks: tuple = ()  # set per node by register_hook

    @classmethod
    def apply(cls, *inputs) -> Variable:
        """Run forward and record the call in the graph (`record`, Part 2)."""
        return record(cls, inputs)

    def save_for_backward(self, *values) -> None:
        """Keep what backward will need (freed after backward unless retain_graph)."""
        self._saved = values

    @property
    def saved_tensors(self) -> tuple:
        """What forward saved; an error once backward() has freed it."""
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


_grad_enabled = True  # switched off inside `no_grad()`


def is_grad_enabled() -> bool:
    """Are new operations recorded for backward? (False inside `no_grad()`.)"""
    return _grad_enabled


class set_grad_enabled(contextlib.ContextDecorator):
    """Switch graph recording on or off for a block or a function; nests, and restores the
    previous state even after an exception. `no_grad()` and `enable_grad()` fix the mode."""

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


class _GradMode(set_grad_enabled):
    """set_grad_enabled with a fixed mode (`_mode`), also usable as a bare decorator."""

    def __new__(cls, func=None):
        if callable(func):  # used as a bare decorator: @no_grad
            return cls()(func)
        return super().__new__(cls)

    def __init__(self, func=None):
        super().__init__(self._mode)


class no_grad(_GradMode):
    """Run code without recording the graph (evaluation, optimizer updates): results do
    not require grad and nothing is saved. `with no_grad():`, `@no_grad()` or `@no_grad`."""

    _mode = False


class enable_grad(_GradMode):
    """Record the graph again inside a `no_grad()` block (e.g. to recompute a segment
    during gradient checkpointing). `with enable_grad():`, `@enable_grad()`, `@enable_grad`."""

    _mode = True


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


# %%
#| export
def _named(name: str, doc: str, method: Callable) -> Callable:
    """`method` as `Variable.name` with `doc`, for help() and tracebacks (not `<lambda>`)."""
    method.__name__, method.__qualname__, method.__doc__ = name, f"Variable.{name}", doc
    method.__code__ = method.__code__.replace(co_name=name)
    return method


_METHODS = {
    "__add__": ("self + other", lambda self, other: Add.apply(self, _operand(other))),
    "__radd__": ("other + self", lambda self, other: Add.apply(_operand(other), self)),
    "__sub__": ("self - other", lambda self, other: Sub.apply(self, _operand(other))),
    "__rsub__": ("other - self", lambda self, other: Sub.apply(_operand(other), self)),
    "__mul__": ("self * other", lambda self, other: Mul.apply(self, _operand(other))),
    "__rmul__": ("other * self", lambda self, other: Mul.apply(_operand(other), self)),
    "__truediv__": ("self / other", lambda self, other: Div.apply(self, _operand(other))),
    "__rtruediv__": ("other / self", lambda self, other: Div.apply(_operand(other), self)),
    "__pow__": ("self ** exponent", lambda self, exponent: Pow.apply(self, _operand(exponent))),
    "__rpow__": ("base ** self", lambda self, base: Pow.apply(_operand(base), self)),
    "__matmul__": ("self @ other", lambda self, other: MatMul.apply(self, _operand(other))),
    "__rmatmul__": ("other @ self", lambda self, other: MatMul.apply(_operand(other), self)),
    "__neg__": ("-self", lambda self: Neg.apply(self)),
    "__getitem__": ("self[index]", lambda self, index: GetItem.apply(self, _plain_index(index))),
    "exp": ("e ** self", lambda self: Exp.apply(self)),
    "log": ("The natural logarithm of self", lambda self: Log.apply(self)),
    "tanh": ("tanh(self)", lambda self: Tanh.apply(self)),
    "sigmoid": ("1 / (1 + e ** -self)", lambda self: Sigmoid.apply(self)),
    "relu": ("max(self, 0)", lambda self: ReLU.apply(self)),
    "sum": (
        "The sum over `axis` (None: every axis); `keepdims` keeps reduced axes as 1",
        lambda self, axis=None, keepdims=False: Sum.apply(self, axis, keepdims),
    ),
    "mean": (
        "The mean over `axis` (None: every axis); `keepdims` keeps reduced axes as 1",
        lambda self, axis=None, keepdims=False: Mean.apply(self, axis, keepdims),
    ),
    "max": (
        "The maximum over `axis` (None: every axis); ties share the gradient equally",
        lambda self, axis=None, keepdims=False: Max.apply(self, axis, keepdims),
    ),
    "log_softmax": ("log(softmax(self))", lambda self, axis=-1: LogSoftmax.apply(self, axis)),
    "reshape": ("self in a new shape", lambda self, *shape: Reshape.apply(self, _one_tuple(shape))),
    "permute": ("axes permuted", lambda self, *axes: Transpose.apply(self, _one_tuple(axes))),
    "numpy": ("`data` itself, shared, not copied", lambda self: self.data),
    "__len__": ("The length of the first axis", lambda self: len(self.data)),
    "__bool__": ("bool(data): one element only (numpy's rule)", lambda self: bool(self.data)),
}
_PROPERTIES = {  # read from `data`, as on a numpy array
    "shape": ("The shape of `data`", lambda self: self.data.shape),
    "ndim": ("The number of axes of `data`", lambda self: self.data.ndim),
    "dtype": ("The dtype of `data` (float32 or float64)", lambda self: self.data.dtype),
    "size": ("The number of elements of `data`", lambda self: self.data.size),
    "T": ("The axes reversed (numpy's `.T`)", lambda self: Transpose.apply(self, None)),
}
for _name, (_doc, _method) in _METHODS.items():
    setattr(Variable, _name, _named(_name, _doc, _method))
for _name, (_doc, _method) in _PROPERTIES.items():
    setattr(Variable, _name, property(_named(_name, _doc, _method), doc=_doc))


def _transpose(self, *axes) -> Variable:
    """No axes: reverse all axes (numpy's `.T`). Two axes: swap them (PyTorch's
    `transpose(dim0, dim1)`). A tuple of one axis per dimension: that permutation."""
    if len(axes) == 2:
        order = list(range(self.ndim))
        first, second = (_checked_axis(a, self.shape, "transpose") for a in axes)
        order[first], order[second] = order[second], order[first]
        axes = (tuple(order),)
    return Transpose.apply(self, _one_tuple(axes) or None)


def _item(self) -> float:
    """The one element of `data` as a Python number."""
    if self.data.size != 1:
        raise ValueError(
            f"item() needs a Variable with 1 element, this one has "
            f"{self.data.size} (shape {self.shape})"
        )
    return self.data.item()


def _repr(self) -> str:
    """`Variable([21.], grad_fn=<Mul>)`: the data, its dtype if not float32, and the op
    that made it (or `requires_grad=True` for a leaf that requires grad)."""
    text = np.array2string(self.data, separator=", ", prefix="Variable(")
    if self.data.dtype != np.float32:
        text += f", dtype={self.data.dtype}"
    if self.grad_fn is not None:
        text += f", grad_fn=<{type(self.grad_fn).__name__}>"
    elif self.requires_grad:
        text += ", requires_grad=True"
    return f"Variable({text})"


for _name, _method in [("transpose", _transpose), ("item", _item), ("__repr__", _repr)]:
    setattr(Variable, _name, _named(_name, _method.__doc__, _method))


def _one_tuple(args: tuple) -> tuple:
    """`f(2, 3)` and `f((2, 3))` alike: the arguments as one tuple."""
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else args


def _checked_axis(axis: int, shape: tuple, op: str) -> int:
    """`axis` as an index into `shape`, or an IndexError naming it (never wrapped around)."""
    if not -len(shape) <= axis < len(shape):
        raise IndexError(
            f"{op}: axis {axis} is out of range for a Variable of shape {shape} "
            f"(expected an axis in [{-len(shape)}, {len(shape) - 1}])"
        )
    return axis % len(shape)


def _as_float_array(data) -> np.ndarray:
    """`data` as a floating numpy array by Variable's dtype rules (Part 1), or a TypeError."""
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


def _operand(value):
    """The other side of an operator: a Variable or Python number as it is, a numpy scalar
    as a Python number (numbers keep a Variable's dtype), anything else a constant array."""
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
# **Your task:** `Mul.forward` (save `a` and `b`, return `a * b`) and `Mul.backward` (the
# two gradients, in the order of the inputs). The test calls them with a fresh
# `ctx = Mul()`, so they work before the rest of the engine exists.


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
import numpy as np
from tinytorch_course.checks import Check
from tinytorch_course import checks_autograd as ag

check = Check("test_mul", points=6)
a, b = check.rng.standard_normal((2, 3)), check.rng.standard_normal((2, 3))
ag.check_op(check, lambda: Mul, np.multiply, [a, b], "Mul", hint="∂(a*b)/∂a = g * b")
ag.check_op(check, lambda: Mul, np.multiply, [a[0], 2 * b[0]], "Mul (vectors)")
check.done()


# %% [markdown]
# ## Part 2: `apply`, recording the graph
#
# `Function.apply(*inputs)` hands its work to `record(op, inputs)`, which does four things:
#
# 1. unwraps each input: a Variable becomes its `.data`, anything else (a number, an
#    axis, an index) passes through; it notes which inputs require grad in
#    `ctx.needs_input_grad` (a list of bools; forward may use it to save less);
# 2. calls `op.forward(ctx, *arrays)` with a fresh `ctx = op()`, re-raising a numpy
#    `ValueError` (shapes that do not broadcast) as `_shape_error(op, arrays, error)`;
# 3. wraps the result (as a numpy array) in a new `Variable`;
# 4. **only if** recording is on (`_grad_enabled`) and some input requires grad: stores
#    `ctx.inputs = inputs`, and makes the result require grad with `grad_fn = ctx`.
#
# Step 4 is what `no_grad()` switches off, to evaluate a model or update weights.
# **Your task:** `record(op, inputs)`, returning the new Variable.


# %% nbgrader={"grade": false, "grade_id": "record", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| exporti
def record(op: type, inputs: tuple) -> Variable:
    """Run `op.forward` on the inputs' data and wrap the result in a Variable that
    remembers this call (`grad_fn`, the ctx) when gradients are needed."""
    ctx = op()
    ### BEGIN SOLUTION
    arrays, needs = [], []
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
        problem = f"invalid arguments for an input of shape {shapes[0]}"
    else:
        problem = f"cannot combine inputs of shapes {', '.join(shapes)}"
    return ValueError(f"{op.__name__}: {problem}: {error}")


# %% nbgrader={"grade": true, "grade_id": "test_function", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
from tinytorch_course.checks import Check
from tinytorch_course import checks_autograd as ag

check = Check("test_function", points=10)
# Two tiny Functions (Twice: 2 * a; Scale: a * k, k a number) check each step of `record`;
# then that nothing is recorded without requires_grad or under no_grad().
ag.check_record(check, lambda: globals())
ag.check_record_errors(check, lambda: globals())
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
# Save only what the derivative needs: `Add` keeps nothing alive (the opening's memory
# picture, one op at a time). When `a` is (2, 3) and `b` is (3,), numpy *broadcasts* `b`
# and `g` is (2, 3), not `b`'s shape: return the plain formulas anyway, the engine sums
# each gradient back to its input's shape (Part 4). **Your task:** forward and backward
# of `Add`, `Sub`, `Div` and `Neg`.


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
from tinytorch_course import checks_autograd as ag
from tinytorch_course.checks import Check

check = Check("test_arithmetic", points=8)
# Add, Sub, Div, Neg called directly on random (2, 3) arrays; then x + k, k + x, x - k,
# k - x, x / k, k / x and -x: their values and the op each records.
ag.check_arithmetic(check, lambda: globals())
ag.check_arithmetic_more(check, lambda: globals())
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
# Broadcasting adds axes on the left and stretches axes of size 1. **Your task:**
# `unbroadcast(grad, shape)`: sum the leading axes that `shape` does not have, then (with
# `keepdims=True`) the axes where `shape` has size 1 but `grad` does not. Return `grad`
# itself when the shapes already match (no copy: this is on the hot path).


# %% nbgrader={"grade": false, "grade_id": "unbroadcast", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| exporti
def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum `grad` over the axes that broadcasting added or stretched, back to `shape`."""
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
from tinytorch_course import checks_autograd as ag
from tinytorch_course.checks import Check

check = Check("test_unbroadcast", points=6)
# A (4, 2, 3) gradient reduced to (4, 2, 3), (2, 3), (3,), (2, 1), (1, 3), (4, 1, 3) and
# (); and `unbroadcast(g, g.shape) is g`.
ag.check_unbroadcast(check, lambda: globals())
check.done()


# %% [markdown]
# ### Calling an op's backward, checked (given)
#
# `_call_backward(fn, grad_output)` runs one node's `backward`, then its hooks. Its checks
# (`_checked_grads`) report a mistake in an op where it was made, naming op and input: one
# gradient per input, each summed back with `unbroadcast` (or refused when its shape
# cannot come from broadcasting the input) and cast to its input's dtype.
#
# A gradient that becomes a `.grad` must be an array nobody else holds: later `backward()`
# calls add to it in place, and two leaves sharing one buffer (`Add` returns `grad_output`
# to both) would see each other's additions. So for a leaf (or a Variable that retains its
# grad) the engine copies a gradient that may be shared (the array passed in, one returned
# twice, a view, a saved value) and adopts a fresh result such as `grad_output @ b.T`.


# %%
#| exporti
def _call_backward(fn: Function, grad_output: np.ndarray) -> list:
    """Run `fn`'s backward, check what it returned (`_checked_grads`), run its hooks."""
    try:
        grads = type(fn).backward(fn, grad_output)
    except ValueError as error:  # numpy's shape errors, said in terms of the op
        raise ValueError(
            f"{type(fn).__name__}.backward failed on a gradient of shape "
            f"{np.shape(grad_output)}: {error}"
        ) from error
    grads = _checked_grads(fn, grads, grad_output)
    for hook in fn._hooks:
        replaced = hook(tuple(grads), (grad_output,))
        grads = grads if replaced is None else list(replaced)
    return grads


def _checked_grads(fn: Function, grads, grad_output: np.ndarray) -> list:
    """What `fn`'s backward returned, as the engine keeps it: one array (or None) per input,
    of its input's shape and dtype, and held by nobody else if it will become a `.grad`."""
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
    for index, needed in enumerate(fn.needs_input_grad):
        grad = grads[index]
        if grad is None or not needed:
            checked.append(None)
            continue
        parent = inputs[index]
        data = parent.data
        if type(grad) is not np.ndarray:
            grad = grad.data if isinstance(grad, Variable) else np.asarray(grad)
        if grad.shape != data.shape:
            grad = _reduce_to_shape(fn, index, grad, data.shape)
        if grad.dtype != data.dtype:
            grad = grad.astype(data.dtype)  # a new array
        elif (parent.grad_fn is None or parent._retains_grad) and _may_be_shared(
            grad, grad_output, grads, index, fn
        ):
            grad = grad.copy()
        checked.append(grad)
    return checked


def _may_be_shared(grad: np.ndarray, grad_output, grads: tuple, index: int, fn) -> bool:
    """Could another holder see in-place additions to `grad`?"""
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
    """∂root/∂root: ones for a one-element root, else `gradient`, checked; the caller's
    array is copied only if it would become the root's own `.grad` (later calls add to it)."""
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
    accumulates = root.grad_fn is None or root._retains_grad  # into root.grad, in place
    gradient = np.array(gradient, dtype=root.data.dtype, copy=True if accumulates else None)
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
# So the engine visits the graph in **reverse topological order** (every node before the
# nodes it was computed from): each node once, when all its contributions have arrived.
#
# Two classic mistakes this avoids. A recursive walk hits Python's recursion limit (about
# 1,000 frames) on a chain of a few thousand ops; explicit stacks make a 100,000-op chain
# work. And a walk that follows every *path* visits a node once per path: a chain of 60
# diamonds has 2⁶⁰ paths, your engine does 60 × 3 node visits.
#
# - `count_consumers(root)`: walk the graph once from `root` with an explicit stack and
#   count, for each Variable, how many op inputs consume it: how many gradients it will
#   receive. Follow only inputs that need grad (`fn.needs_input_grad`): in `2 * a` the
#   constant comes first and has none, but `a` after it does.
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
#   gradient so far. For each node in order: pop its gradient (a node may have none, when
#   every backward that reached it returned None for it: skip it); a leaf accumulates it;
#   otherwise (also accumulating it if the node `retain_grad()`s) `_call_backward` turns
#   it into input gradients, and `add_input_grads` adds each into the dict (a new array,
#   never `+=`: it may be shared). Then, unless `retain_graph`, set `fn._saved = _FREED`:
#   a second backward through the node then raises a clear error, not using stale values.
#
# `Variable.backward()` (given) checks its arguments and calls your `backpropagate`.


# %% nbgrader={"grade": false, "grade_id": "engine", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| exporti
def count_consumers(root: Variable) -> dict[Variable, int]:
    """For every Variable that `root` depends on and that requires grad: how many op
    inputs consume it (how many gradients it will receive). An explicit stack."""
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
    """Every Variable that `root` depends on and that requires grad, once, after every
    Variable computed from it (root first): Kahn's algorithm."""
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
    """Send `grad_output` (∂L/∂root) back through the graph in topological order, into the
    `.grad` of leaves (and retain_grad() Variables); free saved values unless `retain_graph`."""
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
from tinytorch_course import checks_autograd as ag

check = Check("test_engine", points=18)
# The opening's z = x*y + b; a diamond d = a*2 + a*3 (count_consumers, topological_order,
# ∂d/∂a); broadcasting reduced by the engine; accumulation over two backward() calls and
# retain_grad(); a refused second backward through a freed graph; a 5,000-op chain, and
# chains of 12 and 60 diamonds (each node's backward once).
ag.check_engine(check, lambda: globals())
ag.check_engine_at_scale(check, lambda: globals())
check.done()


# %% [markdown]
# ## Seeing your graph: `tinytorch.viz`
#
# The opening's pictures come from `tinytorch.viz`, which watches the engine through its
# hooks: `draw_graph(v)` follows each `grad_fn`'s `inputs`, `trace()` listens with
# `observe_ops` and `register_hook`, `explain(code)` runs code under `trace()`;
# `names=globals()` makes them say `x` where your code does. Here they run on *your* engine:

# %%
try:
    from tinytorch.viz import draw_graph, trace

    a = Variable(1.0, requires_grad=True)
    with trace(names=globals(), observe=observe_ops):
        b, c = a * 2, a * 3
        d = b + c
        d.backward()
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
# For `Pow`, the derivative is 0 where the exponent is 0 and 1 where it is 1, even at
# `a = 0` (where `a ** -1` is infinite and `0 ** 0` is 1), for a number or an array
# exponent (`power_derivative`). A `Variable` exponent's gradient, `out · ln a`, is 0
# where `a = 0`, computed without `ln 0` (numpy warns). Compute each gradient only when
# `ctx.needs_input_grad` says it is needed. **Your task:** `power_derivative`, and
# forward/backward of `Pow`, `Exp`, `Log`, `Tanh`, `Sigmoid` (stable) and `ReLU`.


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
        # 1 / (1 + e**-a) for a >= 0, e**a / (1 + e**a) for a < 0: no exponent is positive
        e = np.exp(-np.abs(a))
        denominator = 1 + e
        ctx.save_for_backward(e, denominator)
        return np.exp(np.minimum(a, 0)) / denominator
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        # e / (1 + e)**2, the same for a and -a; out * (1 - out) loses digits near out = 1
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
from tinytorch_course import checks_autograd as ag
from tinytorch_course.checks import Check

check = Check("test_math_ops", points=12)
# a ** p, a ** -0.5, a ** b, 2 ** a, exp, log, tanh, sigmoid and relu through the engine
# on random data (gradients against finite differences); sigmoid at -1000, 0, 1000; then
# a ** 0, a ** 1, a ** b and relu at a = 0 (a numpy warning counts as an error).
ag.check_math_ops(check, lambda: globals())
ag.check_at_zero(check, lambda: globals())
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
# Use `np.swapaxes(x, -1, -2)` for a transpose that works on stacks. As in Part 5,
# compute a gradient only when `ctx.needs_input_grad` asks for it and return None for the
# other: for `x @ W` with a data batch `x`, that skips a whole matrix product.
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
            b, grad = b[:, None], grad[..., None]
        if a_is_vector:
            a, grad = a[None, :], grad[..., None, :]
        grad_a = np.matmul(grad, np.swapaxes(b, -1, -2)) if ctx.needs_input_grad[0] else None
        grad_b = np.matmul(np.swapaxes(a, -1, -2), grad) if ctx.needs_input_grad[1] else None
        if a_is_vector and grad_a is not None:
            grad_a = grad_a[..., 0, :]
        if b_is_vector and grad_b is not None:
            grad_b = grad_b[..., 0]
        return grad_a, grad_b  # batch axes that broadcasting added are summed by the engine
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_matmul", "locked": true, "points": 8, "schema_version": 3, "solution": false, "task": false}
from tinytorch_course import checks_autograd as ag
from tinytorch_course.checks import Check

check = Check("test_matmul", points=8)
# a @ b for (2, 3) @ (3, 4), (3,) @ (3, 4), (2, 3) @ (3,), (3,) @ (3,), (5, 2, 3) @
# (5, 3, 4), (5, 2, 3) @ (3, 4) and (3,) @ (5, 3, 2); then MatMul.backward with only one
# input needing grad (the other gradient must be None).
ag.check_matmul(check, lambda: globals())
ag.check_matmul(check, lambda: globals(), hidden=True)
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
# With `keepdims=False` the reduced axes are gone from `grad_output`: `expand_reduced`
# puts them back (`np.expand_dims` accepts a tuple of axes), then `np.broadcast_to`s.
#
# **Your task:** `expand_reduced`, and `Sum`, `Mean`, `Max` (axis `None`, an int or a
# tuple; `keepdims` either way). `forward` receives `axis` and `keepdims` as ordinary
# arguments, so `backward` returns `None` for them: one gradient per input.


# %% nbgrader={"grade": false, "grade_id": "reductions", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| exporti
def expand_reduced(grad: np.ndarray, shape: tuple, axis, keepdims: bool) -> np.ndarray:
    """The gradient of a reduction's output broadcast back to the input's `shape`."""
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
from tinytorch_course import checks_autograd as ag
from tinytorch_course.checks import Check

check = Check("test_reductions", points=10)
# sum, mean and max of a (2, 3, 4) array over axis None, 0, 1, -1 and (0, 2), keepdims
# False and True; then max along axis 1 with two tied maxima in a row.
ag.check_reductions(check, lambda: globals())
ag.check_reductions(check, lambda: globals(), hidden=True)
check.done()


# %% [markdown]
# ## Part 8: reshaping and indexing
#
# Reshape and transpose only move numbers around, so their backward moves the gradient
# back: reshape it to the input's shape; transpose it with the inverse permutation
# (`np.argsort(axes)`; `None`, reversing all axes, is its own inverse).
#
# Indexing *picks* numbers; backward puts each gradient where its number came from (zeros
# elsewhere). An element an integer array picks twice gets both gradients:
#
# ```text
# x = [10, 20, 30]        x[[0, 0, 2]] = [10, 10, 30]
# grad_output = [1, 1, 1]     ∂L/∂x = [2, 0, 1]     element 0 was picked twice
#
# grad[index] += grad_output        gives [1, 0, 1]: numpy writes element 0 twice
# np.add.at(grad, index, grad_output)  gives [2, 0, 1]: adds once per occurrence
# ```
#
# Basic indexing (integers, slices, `None`, `...`) cannot pick an element twice: plain
# assignment is enough there, and faster (`_is_basic_index` tells). Integer arrays and
# boolean masks go through `np.add.at`. **Your task:** `Reshape`, `Transpose`, `GetItem`.


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
from tinytorch_course import checks_autograd as ag
from tinytorch_course.checks import Check

check = Check("test_shape_ops", points=8)
# reshape(4, 6), reshape((-1,)), .T, transpose(1, 2, 0), a[0, 1:, ::2], a[:, [0, 2, 2]];
# then x[[0, 0, 2]], whose element 0 is picked twice.
ag.check_shape_ops(check, lambda: globals())
ag.check_shape_ops(check, lambda: globals(), hidden=True)
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
# `g`. Module 02 builds its cross-entropy loss on this. **Your task:** `LogSoftmax`'s
# forward and backward (`log_softmax(x, axis=-1)` and `x.log_softmax()` call it).


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
from tinytorch_course import checks_autograd as ag
from tinytorch_course.checks import Check

check = Check("test_log_softmax", points=6)
# log_softmax(a) along the last axis and a.log_softmax(axis=0) on a random (3, 4)
# array; then log_softmax([s, 0, -s]) with s near 1000 (an overflow warning fails).
ag.check_log_softmax(check, lambda: globals())
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
# `gradcheck(fn, inputs)` does that for every element of every input that requires grad,
# in float64 (in float32, ε = 1e-6 would drown in rounding), and compares with the full
# Jacobian from your engine (one backward per output element) at PyTorch's defaults
# (`eps=1e-6, atol=1e-5, rtol=1e-3`). A mismatch raises `GradcheckError` naming the
# input, the element, the expected (numerical) and the got (backward) value. Use it on
# any function of Variables, ops you add later included.


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
    """Compare backward()'s gradients of `fn(*inputs)` with central finite differences
    (float64): True, or GradcheckError at the first mismatch (False if not raise_exception)."""
    inputs = [inputs] if isinstance(inputs, Variable) else list(inputs)
    for i, v in enumerate(inputs):
        if isinstance(v, Variable):
            inputs[i] = Variable(v.data.astype(np.float64), requires_grad=v.requires_grad)
    checked = [i for i, v in enumerate(inputs) if isinstance(v, Variable) and v.requires_grad]
    if not checked:
        raise ValueError("gradcheck needs at least one input Variable with requires_grad=True")
    output = fn(*inputs)
    if not isinstance(output, Variable):
        raise TypeError(f"gradcheck: fn returned {type(output).__name__}, expected a Variable")
    analytical = {i: np.zeros((output.size, inputs[i].size)) for i in checked}
    for row, seed in enumerate(np.eye(output.size)):  # one backward per output element
        for i in checked:
            inputs[i].grad = None
        if output.requires_grad:
            output.backward(seed.reshape(output.shape), retain_graph=True)
        for i in checked:
            if inputs[i].grad is not None:
                analytical[i][row] = inputs[i].grad.reshape(-1)
    for i in checked:
        data = inputs[i].data
        for column, element in enumerate(np.ndindex(data.shape)):
            original = data[element]
            with no_grad():
                data[element] = original + eps
                plus = np.array(fn(*inputs).data, dtype=np.float64).reshape(-1)
                data[element] = original - eps
                minus = np.array(fn(*inputs).data, dtype=np.float64).reshape(-1)
            data[element] = original
            numerical = (plus - minus) / (2 * eps)
            got = analytical[i][:, column]
            bad = np.abs(got - numerical) > atol + rtol * np.abs(numerical)
            if bad.any() and not raise_exception:
                return False
            if bad.any():
                out = np.unravel_index(int(np.argmax(bad)), output.shape)
                raise GradcheckError(
                    f"gradcheck failed for input {i} (shape {data.shape}) at element {element}"
                    + (f", output element {out}" if output.ndim else "")
                    + f": expected {numerical[bad][0]!r} (finite differences), "
                    + f"got {got[bad][0]!r} (backward)"
                )
    return True


# %% [markdown]
# ## Part 11: integration, training with your engine
#
# Everything together: two small models trained with your engine and plain gradient
# descent (module 03 turns the loop into optimizers): a polynomial fit of
# y = 0.5x² - x + 2 to noisy samples, and a 2-8-2 tanh network classifying XOR with a
# log-softmax cross-entropy loss.
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
from tinytorch_course import checks_autograd as ag

check = Check("test_integration", points=8)
# 400 steps of regression on y = 0.5x² - x + 2 (loss below 0.01, coefficients within 0.05
# of least squares), then 300 steps of a 2-8-2 tanh network that must classify XOR.
ag.check_training(check, lambda: globals())
check.done()


# %% [markdown]
# ## What you built, and where it goes next
#
# A reverse-mode autograd engine: `Variable` with PyTorch's semantics (leaves,
# accumulating `.grad`, `retain_grad()`, `detach()`, `no_grad()`); `Function` with
# `apply`/`forward`/`backward`/`ctx` and 19 ops; an iterative engine that visits each node
# once in reverse topological order and frees saved values after use; `gradcheck`; and
# hooks that let tools such as `tinytorch.viz` watch it.
#
# After `nbdev-export`, `import tinytorch as tt` gives `tt.Variable`, `tt.no_grad`,
# `tt.gradcheck`..., and each later module adds its part: `tt.nn` (02: layers and losses
# on your `log_softmax`), `tt.optim` (03: SGD and Adam, using the `.grad` your engine
# fills), `tt.data` (04: training on real data), `tt.memory` (05: the bytes of your live
# graph, and checkpointing). A part not exported yet is an error naming its module.
