# %% [markdown]
# # Autograd
#
# > A reverse-mode automatic differentiation engine over numpy: `Variable`, `Function`, `backward()`.

# %% [markdown]
# ## What we're building
#
# Every modern deep learning framework rests on one piece of machinery: **reverse-mode
# automatic differentiation**, *autograd*. You write the forward computation; it records
# each operation as it runs, and one call to `backward()` gives you the gradient of the
# result with respect to every input that asked for one. In this module you build that
# engine over numpy, with PyTorch's names, and the rest of the course trains networks
# with it.
#
# Here is what it does with five lines of code. The right-hand column is not drawn by
# hand: it is printed by `explain()`, a tool you export in this module, running the
# engine you are about to write.
#
# ```python
# print(explain("""
# x = Variable([1.0, 2.0], requires_grad=True)
# y = x * 2
# z = y + 3
# loss = z.mean()
# loss.backward()
# """))
# ```
#
# ```text
# Your code:                                      What autograd does:
# ──────────                                      ───────────────────
# x = Variable([1.0, 2.0], requires_grad=True)    Creates leaf x (requires_grad=True)
# y = x * 2                                       Tracks operation: Mul(x, 2) = [2., 4.]   saves [1., 2.], 2 for backward
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
# Three things to notice. Each operation is *recorded* (as a node that remembers its
# inputs), and some save values they will need later (`Mul` keeps `x` and `2`, `Add`
# needs nothing). Nothing is differentiated until `backward()`. And `backward()` walks
# the recorded operations in reverse, each one turning the gradient of its output into
# gradients of its inputs.

# %% [markdown]
# ## The computational graph
#
# When you write `z = x * y + b`, the engine builds this graph, one node per operation.
# Both pictures are printed by `draw_graph()`, another tool of this module, from the
# live `Variable`s:
#
# ```python
# x = Variable(2.0, requires_grad=True)
# y = Variable(3.0, requires_grad=True)
# b = Variable(1.0, requires_grad=True)
# z = x * y + b
# print(draw_graph(z))
# z.backward()
# print(draw_graph(z, backward=True))
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
# Forward, values flow left to right. Backward, gradients flow right to left: `[+]`
# passes `∂z/∂z = 1` unchanged to both of its inputs, and `[×]` multiplies it by the
# *other* input, so `∂z/∂x = y = 3` and `∂z/∂y = x = 2`. That is the chain rule, applied
# one node at a time.

# %% [markdown]
# ## Memory: what training keeps around
#
# Recording the graph costs memory: every value an operation saves for `backward()`
# stays alive until `backward()` has used it. Take a small classifier, an MLP with 784
# inputs, 256 hidden units and 10 outputs (`relu(x @ W1 + b1) @ W2 + b2`, then
# `log_softmax` and a cross-entropy loss), trained on batches of 64 in float32 (4 bytes a
# number):
#
# - parameters: 784·256 + 256 + 256·10 + 10 = 203,530 numbers × 4 B = 814,120 B;
# - saved for backward (measured on this module's engine, parameters not counted
#   twice): the input batch 64·784, the pre-activation that `relu` keeps 64·256, the
#   hidden layer that the second `@` keeps 64·256, and the log-probabilities 64·10:
#   83,584 numbers × 4 B = 334,336 B;
# - gradients: one per parameter, 814,120 B;
# - Adam keeps two running moments per parameter: 2 × 814,120 = 1,628,240 B.
#
# ```text
# ┌───────────────────────────────────────────────────────────────────────┐
# │ Training memory: MLP 784-256-10, batch 64, float32                    │
# ├───────────────────────────────────────────────────────────────────────┤
# │                                                                       │
# │ Forward pass keeps:                                                   │
# │ ┌────────────────────────────────┐ ┌────────────────────────────────┐ │
# │ │ Parameters                     │ │ Saved for backward             │ │
# │ │ W1, b1, W2, b2                 │ │ x, pre-activation, hidden,     │ │
# │ │ 203,530 numbers                │ │ log-probabilities              │ │
# │ │ 0.81 MB                        │ │ 83,584 numbers: 0.33 MB        │ │
# │ └────────────────────────────────┘ └────────────────────────────────┘ │
# │                                                                       │
# │ Backward pass and optimizer add:                                      │
# │ ┌────────────────────────────────┐ ┌────────────────────────────────┐ │
# │ │ Gradients                      │ │ Adam state                     │ │
# │ │ ∂L/∂W1, ∂L/∂b1, ∂L/∂W2, ∂L/∂b2 │ │ two moments per parameter      │ │
# │ │ 203,530 numbers                │ │ 407,060 numbers                │ │
# │ │ 0.81 MB                        │ │ 1.63 MB                        │ │
# │ └────────────────────────────────┘ └────────────────────────────────┘ │
# │                                                                       │
# │ Total: 814,120 × 2 + 334,336 + 1,628,240 = 3,590,816 B = 3.59 MB      │
# │                                                                       │
# └───────────────────────────────────────────────────────────────────────┘
# ```
#
# Inference under `no_grad()` needs the parameters and only the activation being
# computed: no graph, no saved values, no gradients, no optimizer state.

# %% [markdown]
# ## The chain rule, step by step
#
# `f(x) = (x + 2) * 3` at `x = 5`, traced by `trace()` as the engine runs it:
#
# ```python
# x = Variable(5.0, requires_grad=True)
# with trace():
#     y = x + 2
#     z = y * 3
#     z.backward()
# ```
#
# ```text
# Tracks operation: Add(x, 2) = 7
# Tracks operation: Mul(y, 3) = 21   saves 7, 3 for backward
# Backward pass (z.backward()):
#     ∂z/∂z = 1                                 start with gradient 1
#     ∂z/∂y = ∂z/∂z × ∂(y*3)/∂y = 1 × 3 = 3     Mul.backward
#     ∂z/∂x = ∂z/∂y × ∂(x + 2)/∂x = 3 × 1 = 3   Add.backward
# Result: x.grad = 3
# ```
#
# Forward, `y = 7` and `z = 21`; `Mul` saves its two inputs (7 and 3), because the
# derivative of `y * 3` with respect to `y` is the other input, 3. Backward starts from
# `∂z/∂z = 1`, multiplies by each local derivative on the way back, and arrives at
# `x.grad = 3`: indeed `f(x) = 3x + 6`.

# %% [markdown]
# ## At the scale of a large model
#
# The same accounting for a GPT-3-sized model (175 × 10⁹ parameters; 96 layers, hidden
# size 12,288, 96 attention heads, sequences of 2,048 tokens), trained with Adam. This is
# an **estimate** under stated assumptions, not a measurement:
#
# - weights in fp32: 175e9 × 4 B = 700 GB; gradients in fp32: 700 GB; Adam's two
#   moments in fp32: 2 × 700 GB = 1,400 GB;
# - activations of one sequence, using the count of Korthikanti et al. (2022,
#   "Reducing Activation Recomputation in Large Transformer Models") for one
#   transformer layer stored in 16-bit: s·b·h·(34 + 5·a·s/h) bytes with s = 2,048,
#   b = 1, h = 12,288, a = 96: 2.87 GB per layer, × 96 layers = 275.4 GB;
# - activation checkpointing keeps only each layer's input (2·s·b·h bytes = 50.3 MB,
#   × 96 = 4.8 GB) and recomputes one layer at a time during backward (2.87 GB):
#   7.7 GB, paid for with about one extra forward pass.
#
# ```text
# Keeping every activation:                 With activation checkpointing:
# ┌──────────────────────────────────┐      ┌──────────────────────────────────┐
# │ Weights, fp32:           700 GB  │      │ Weights, fp32:           700 GB  │
# │ Gradients, fp32:         700 GB  │      │ Gradients, fp32:         700 GB  │
# │ Adam moments, fp32:    1,400 GB  │      │ Adam moments, fp32:    1,400 GB  │
# │ Activations:           275.4 GB  │      │ Activations:             7.7 GB  │
# ├──────────────────────────────────┤      ├──────────────────────────────────┤
# │ Total:               3,075.4 GB  │      │ Total:               2,807.7 GB  │
# └──────────────────────────────────┘      └──────────────────────────────────┘
# ```
#
# At this size the optimizer state, not the graph, is the largest item for one
# sequence; activations grow with the batch (b) and the sequence length (s² in the
# attention term), and that is where checkpointing (module 05) earns its keep. Every
# number here follows from the formulas above; a memory ledger that measures them on a
# live graph comes in module 05.

# %% [markdown]
# ## Why this matters
#
# Reverse-mode automatic differentiation is old: Seppo Linnainmaa described it in his
# 1970 master's thesis, as a way to compute the derivatives of a long computation at a
# cost proportional to the computation itself. Paul Werbos proposed using it to train
# neural networks (1974), and Rumelhart, Hinton and Williams made *backpropagation*
# widely known in 1986. For years, though, most people still derived gradients by
# hand for each new model and coded them separately, where one sign error silently
# ruined training. Theano (2007) made derivatives of whole array programs automatic in
# Python; Chainer (2015) and then PyTorch (2017) recorded the graph *as the code runs*
# ("define-by-run"), the design you build here, so that any Python control flow is
# differentiable.
#
# What that changed:
#
# - **Any architecture gets gradients for free**: write the forward pass, call
#   `backward()`.
# - **New ideas are cheap to try**: a new layer is a new forward function, not a page
#   of calculus.
# - **Correctness is checkable**: `gradcheck` compares every gradient with finite
#   differences, so an engine like yours can be trusted.
#
# Now let's build it, piece by piece: a `Variable`, the `Function` node, the arithmetic
# ops, the engine that runs backward, then the rest of the ops a neural network needs.

# %%
#| default_exp autograd

# %%
#| export
import contextlib
import io
import sys
from collections.abc import Callable, Sequence

import numpy as np

# %% [markdown]
# ## How the tests talk to you
#
# Each part ends with a locked test cell worth points. When something is wrong it says
# what, in this notebook's terms: which op, which input, which shape, which number it
# expected. The next cell defines the small checking helpers those tests use (they are
# not part of the library). Two of them compare your gradients with *numerical*
# gradients, computed by nudging each input by ±ε and watching the output change: the
# same idea as `gradcheck` in Part 10, written with numpy alone so that nothing you
# write can fool it.

# %%
import warnings


def expect(condition, message: str) -> None:
    """Fail a test with `message` (an AssertionError that says what is wrong)."""
    if not condition:
        raise AssertionError(message)


def floats(values, dtype=np.float64) -> np.ndarray:
    """A floating numpy array: a Variable of it does not need Part 1's `as_float_array`,
    so each part's test depends only on the parts it tests."""
    return np.array(values, dtype=dtype)


def show(value) -> str:
    return np.array2string(np.asarray(value, dtype=np.float64), precision=5, separator=", ")


def expect_close(got, expected, what: str, rtol: float = 1e-5, atol: float = 1e-8) -> None:
    got, expected = np.asarray(got), np.asarray(expected)
    expect(got.shape == expected.shape, f"{what} has shape {got.shape}, expected {expected.shape}")
    expect(
        np.allclose(got, expected, rtol=rtol, atol=atol),
        f"{what} is {show(got)}, expected {show(expected)}",
    )


def numerical_gradients(numpy_fn, arrays, grad_output, eps: float = 1e-6) -> list:
    """What each input's gradient must be: central differences of
    sum(grad_output * numpy_fn(*arrays)), in float64, with numpy alone."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    gradients = []
    for array in arrays:
        gradient = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            original = array[index]
            array[index] = original + eps
            up = np.sum(grad_output * numpy_fn(*arrays))
            array[index] = original - eps
            down = np.sum(grad_output * numpy_fn(*arrays))
            array[index] = original
            gradient[index] = (up - down) / (2 * eps)
        gradients.append(gradient)
    return gradients


def check_op_backward(op, numpy_fn, arrays, seed: int = 0) -> None:
    """Call `op.apply` and then `op.backward` directly (no engine needed) on float64
    inputs, and compare the result and each gradient with numpy and finite differences."""
    name = op.__name__
    variables = [Variable(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
    out = op.apply(*variables)
    expect(
        isinstance(out, Variable),
        f"{name}.apply returned {type(out).__name__}, expected a Variable",
    )
    expect_close(out.data, numpy_fn(*arrays), f"{name}.forward's result")
    expect(out.grad_fn is not None, f"{name}.apply(...) of inputs that require grad has no grad_fn")
    grad_output = np.random.default_rng(seed).standard_normal(out.shape)
    grads = op.backward(out.grad_fn, grad_output)
    grads = grads if isinstance(grads, tuple) else (grads,)
    expect(
        len(grads) == len(arrays),
        f"`{name}.backward` returned {len(grads)} gradient(s); it must return one per input ({len(arrays)})",
    )
    expected = numerical_gradients(numpy_fn, arrays, grad_output)
    for index, (grad, want) in enumerate(zip(grads, expected, strict=True)):
        expect(
            grad is not None,
            f"`{name}.backward` returned None for input {index}, which requires grad",
        )
        grad = np.asarray(grad)
        expect(
            grad.shape == want.shape,
            f"`{name}.backward` returned a gradient of shape {grad.shape} for input {index}, "
            f"whose shape is {want.shape}",
        )
        expect(
            np.allclose(grad, want, rtol=1e-4, atol=1e-6),
            f"`{name}.backward` returned {show(grad)} for input {index}; the chain rule gives "
            f"{show(want)} (with grad_output = {show(grad_output)})",
        )


def check_gradients(expression, numpy_fn, arrays, what: str, seed: int = 0) -> None:
    """Through the whole engine: Variables in, `expression`, backward(random gradient),
    then every input's .grad against finite differences of the numpy version."""
    variables = [Variable(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
    out = expression(*variables)
    expect(isinstance(out, Variable), f"{what} returned {type(out).__name__}, expected a Variable")
    expect_close(out.data, numpy_fn(*arrays), f"the value of {what}")
    grad_output = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(grad_output)
    expected = numerical_gradients(numpy_fn, arrays, grad_output)
    for index, (variable, want) in enumerate(zip(variables, expected, strict=True)):
        expect(
            variable.grad is not None,
            f"after backward() through {what}, input {index} has no .grad",
        )
        expect(
            variable.grad.shape == want.shape,
            f"after backward() through {what}, input {index}.grad has shape {variable.grad.shape}, "
            f"but the input's shape is {want.shape}: did you reduce over the broadcast axes?",
        )
        expect(
            np.allclose(variable.grad, want, rtol=1e-4, atol=1e-6),
            f"the gradient of {what} for input {index} is {show(variable.grad)}, "
            f"expected {show(want)}",
        )


def raises(error_type, action, *fragments: str) -> str:
    """Run `action`; expect it to raise `error_type` whose message holds each fragment."""
    try:
        action()
    except error_type as error:
        message = str(error)
        for fragment in fragments:
            expect(
                fragment in message,
                f"the error message should mention {fragment!r}; it was: {message}",
            )
        return message
    raise AssertionError(f"expected {error_type.__name__}, but nothing was raised")


# %% [markdown]
# ## Part 1: `Variable`, an array that remembers where it came from
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
# A Variable you create yourself is a **leaf** (`grad_fn is None`); one computed by an
# operation on Variables that require grad gets a `grad_fn`, the record of that
# operation. Only leaves keep `.grad` (unless you ask with `retain_grad()`), exactly as
# in PyTorch.
#
# Numbers follow one rule, PyTorch's: Python numbers, lists and integer arrays become
# **float32**; a floating numpy array keeps its dtype (float64 stays float64). And a
# Python number in an expression never changes a Variable's dtype: `x * 2.5` with a
# float32 `x` is float32.
#
# The `Variable` class below is given: read it, it is the whole public face of the
# library. Every operator on it (`+`, `*`, `@`, `x.sum()`, `x[0]`...) calls a `Function`
# that you write in Parts 2 to 9. Your first job is smaller: `as_float_array`, which
# turns whatever the user passed into a floating numpy array, or refuses it clearly.
#
# **Your task:** implement `as_float_array(data)`: use `np.asarray`; keep floating
# numpy arrays and numpy floating scalars as they are; turn integer and boolean data,
# Python numbers and lists into float32; raise `TypeError` naming the type for anything
# else (a string, `None`, a dict).


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
        kinds = sorted({type(item).__name__.rstrip("_") for item in array.flat})
        described += f" holding {' and '.join(kinds)}"
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
        `transpose(dim0, dim1)`). A tuple of one axis per dimension: that permutation
        (numpy's `transpose(axes)`, also `permute`)."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            return self.permute(*axes[0])
        if len(axes) == 2:
            order = list(range(self.ndim))
            first, second = (checked_axis(a, self.shape, "transpose") for a in axes)
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


def checked_axis(axis: int, shape: tuple, op: str) -> int:
    """`axis` as a non-negative index into `shape`; an axis that does not exist is an
    IndexError naming it (never wrapped around silently)."""
    if not -len(shape) <= axis < len(shape):
        raise IndexError(
            f"{op}: axis {axis} is out of range for a Variable of shape {shape} "
            f"(expected an axis in [{-len(shape)}, {len(shape) - 1}])"
        )
    return axis % len(shape)


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
# ### Test: Variable (6 points)

# %% nbgrader={"grade": true, "grade_id": "test_variable", "locked": true, "points": 6, "schema_version": 3, "solution": false, "task": false}
for data, described in [
    (3, "the number 3"),
    ([1, 2, 3], "a list of ints"),
    ([1.5, 2.5], "a list of floats"),
    (np.arange(3), "an integer array"),
    (np.array([True, False]), "a boolean array"),
]:
    dtype = Variable(data).dtype
    expect(
        dtype == np.float32,
        f"Variable({described}) holds {dtype}; numbers, lists and integer arrays become float32",
    )
for dtype in (np.float64, np.float32, np.float16):
    got = Variable(np.zeros(2, dtype=dtype)).dtype
    expect(
        got == dtype,
        f"a numpy array of {np.dtype(dtype)} became {got}: floating arrays keep their dtype",
    )
v = Variable([[1, 2, 3], [4, 5, 6]])
expect(
    isinstance(v.data, np.ndarray),
    f"Variable.data is a {type(v.data).__name__}, expected a numpy array",
)
expect(
    v.shape == (2, 3) and v.ndim == 2,
    f"Variable([[1, 2, 3], [4, 5, 6]]) has shape {v.shape}, expected (2, 3)",
)
raises(TypeError, lambda: Variable("abc"), "str")
raises(TypeError, lambda: Variable(None), "None")
### BEGIN HIDDEN TESTS
expect(Variable(np.float64(2.5)).dtype == np.float64, "a numpy float64 scalar keeps float64")
expect(Variable(np.array(4, dtype=np.int8)).dtype == np.float32, "an int8 array becomes float32")
raises(TypeError, lambda: Variable({"a": 1}), "dict")
raises(TypeError, lambda: Variable(["a", "b"]), "str")
raises(TypeError, lambda: Variable(np.array(["x"])), "<U1")
expect(Variable(2.0, name="w").name == "w", "Variable(..., name='w').name should be 'w'")
### END HIDDEN TESTS
print("✓ test_variable passed (6 points)")


# %% [markdown]
# ## Part 2: `Function`, one node of the graph
#
# Every operation is a subclass of `Function` with two static methods: `forward(ctx,
# *inputs)` computes the result from numpy arrays, and `backward(ctx, grad_output)`
# turns the gradient of the result into one gradient per input. You never call them
# directly: `MyOp.apply(*inputs)` does, and builds the graph on the way. The `ctx`
# object is the graph node itself: what `forward` saves there, `backward` finds again.
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
# `apply` does four things:
#
# 1. unwraps each input: a Variable becomes its `.data`, anything else (a number, an
#    axis, an index) passes through as it is; it notes which inputs require grad in
#    `ctx.needs_input_grad` (forward may use it to save less);
# 2. calls `cls.forward(ctx, *arrays)`; a `ValueError` from numpy (shapes that do not
#    broadcast) is re-raised by `shape_error`, which names the op and the shapes;
# 3. wraps the result in a new `Variable`;
# 4. **only if** recording is on (`is_grad_enabled()`) and some input requires grad:
#    stores `ctx.inputs`, and makes the result require grad with `grad_fn = ctx`.
#
# Step 4 is what `no_grad()` switches off: inside `with no_grad():` nothing is recorded
# and nothing is kept for backward, which is how you evaluate a model or update its
# weights. The cell below gives you `no_grad()`, `enable_grad()` and
# `is_grad_enabled()`, all backed by one module-level flag.
#
# **Your task:** the body of `Function.apply`, inside the marked region. Leave the two
# lines after it: they let `trace()` (Part 4) watch your engine work.

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
    is saved for backward (evaluation, optimizer updates). `with no_grad():`, or as a
    decorator, `@no_grad()` or `@no_grad`."""

    def __new__(cls, func=None):
        if callable(func):  # used as a bare decorator: @no_grad
            return cls()(func)
        return super().__new__(cls)

    def __init__(self, func=None):
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Record the graph again inside a `no_grad()` block (e.g. to recompute a segment
    during gradient checkpointing). `with enable_grad():`, `@enable_grad()` or `@enable_grad`."""

    def __new__(cls, func=None):
        if callable(func):
            return cls()(func)
        return super().__new__(cls)

    def __init__(self, func=None):
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
    shapes = [str(np.shape(a)) for a in arrays if isinstance(a, np.ndarray)]
    if len(shapes) == 1:
        return ValueError(
            f"{op.__name__}: invalid arguments for an input of shape {shapes[0]}: {error}"
        )
    return ValueError(
        f"{op.__name__}: cannot combine inputs of shapes {', '.join(shapes)}: {error}"
    )


# %% [markdown]
# ### Test: Function.apply (10 points)
#
# These tests define two tiny Functions of their own, so they only need `apply`.


# %% nbgrader={"grade": true, "grade_id": "test_function", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
class Twice(Function):
    """2 * a, saving nothing."""

    @staticmethod
    def forward(ctx, a):
        Twice.seen = type(a)
        return a * 2

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output * 2


class Scale(Function):
    """a * factor, where factor is a plain number that passes through apply."""

    @staticmethod
    def forward(ctx, a, factor):
        return a * factor

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output * 2, None


x = Variable(floats([1.0, 2.0]), requires_grad=True)
y = Twice.apply(x)
expect(isinstance(y, Variable), f"Function.apply returned {type(y).__name__}, expected a Variable")
expect(
    Twice.seen is np.ndarray,
    f"forward received a {Twice.seen.__name__}; apply must pass Variables' .data (numpy arrays)",
)
expect_close(y.data, [2.0, 4.0], "Twice.apply(x)")
expect(y.requires_grad, "the result of an op on a Variable that requires grad must require grad")
expect(
    isinstance(y.grad_fn, Twice), f"y.grad_fn should be the Twice node (ctx), it is {y.grad_fn!r}"
)
expect(not y.is_leaf, "a computed Variable is not a leaf")
expect(y.grad_fn.inputs[0] is x, "ctx.inputs must hold the inputs apply was called with (x itself)")
expect(
    list(y.grad_fn.needs_input_grad) == [True],
    f"needs_input_grad is {y.grad_fn.needs_input_grad}, expected [True]",
)
s = Scale.apply(x, 3)
expect_close(s.data, [3.0, 6.0], "Scale.apply(x, 3): a number must reach forward unchanged")
expect(
    list(s.grad_fn.needs_input_grad) == [True, False],
    f"needs_input_grad of Scale.apply(x, 3) is {s.grad_fn.needs_input_grad}, expected [True, False]",
)
constant = Twice.apply(Variable(floats([1.0])))
expect(
    not constant.requires_grad and constant.grad_fn is None,
    "an op on Variables that do not require grad records nothing (grad_fn None)",
)
with no_grad():
    z = Twice.apply(x)
expect(
    not z.requires_grad and z.grad_fn is None, "inside no_grad(), apply must not record the graph"
)
expect(is_grad_enabled(), "no_grad() must switch recording back on when the block ends")
### BEGIN HIDDEN TESTS


class Pair(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a + b


raises(
    ValueError,
    lambda: Pair.apply(Variable(np.ones(2)), Variable(np.ones(3))),
    "Pair",
    "(2,)",
    "(3,)",
)
expect(
    isinstance(
        Twice.apply(Variable(np.ones(2, dtype=np.float64), requires_grad=True)).data, np.ndarray
    ),
    "apply must return a Variable holding an ndarray",
)
### END HIDDEN TESTS
print("✓ test_function passed (10 points)")


# %% [markdown]
# ## Part 3: arithmetic, each backward beside its forward
#
# Each op's `backward` receives `grad_output` (∂L/∂out, an array shaped like the
# output) and returns ∂L/∂input for each input: `grad_output` times the *local*
# derivative. For the five arithmetic ops (write `g` for `grad_output`):
#
# | op | forward | ∂L/∂a | ∂L/∂b | saves |
# |---|---|---|---|---|
# | `Add` | a + b | g | g | nothing |
# | `Sub` | a - b | g | -g | nothing |
# | `Mul` | a * b | g * b | g * a | a, b |
# | `Div` | a / b | g / b | -g * a / b² = -(g / b) * out | b, out |
# | `Neg` | -a | -g | | nothing |
#
# `ctx.save_for_backward(...)` keeps what backward needs, and `ctx.saved_tensors` gives
# it back. Save only what the derivative needs: `Add` needs nothing, so it keeps
# nothing alive (that is the memory picture of the opening, one op at a time).
#
# When `a` has shape (2, 3) and `b` shape (3,), numpy *broadcasts* `b` in forward, and
# `g * a` has shape (2, 3), not `b`'s. Do not worry about that here: the engine sums each
# gradient back to its input's shape (Part 4). Return the plain formulas.
#
# **Your task:** forward and backward of `Add`, `Sub`, `Mul`, `Div` and `Neg`.


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
rng = np.random.default_rng(1)
a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
nonzero = rng.uniform(0.5, 2.0, (2, 3)) * rng.choice([-1, 1], (2, 3))
check_op_backward(Add, np.add, [a, b])
check_op_backward(Sub, np.subtract, [a, b])
check_op_backward(Mul, np.multiply, [a, b])
check_op_backward(Div, np.divide, [a, nonzero])
check_op_backward(Neg, np.negative, [a])
x = Variable(floats([1.0, 2.0, 4.0], np.float32), requires_grad=True)
for text, got, want, op in [
    ("x + 1", x + 1, [2.0, 3.0, 5.0], Add),
    ("1 + x", 1 + x, [2.0, 3.0, 5.0], Add),
    ("x - 1", x - 1, [0.0, 1.0, 3.0], Sub),
    ("1 - x", 1 - x, [0.0, -1.0, -3.0], Sub),
    ("x * 2", x * 2, [2.0, 4.0, 8.0], Mul),
    ("2 * x", 2 * x, [2.0, 4.0, 8.0], Mul),
    ("x / 2", x / 2, [0.5, 1.0, 2.0], Div),
    ("2 / x", 2 / x, [2.0, 1.0, 0.5], Div),
    ("-x", -x, [-1.0, -2.0, -4.0], Neg),
]:
    expect_close(got.data, want, text)
    expect(
        isinstance(got.grad_fn, op),
        f"{text} should be recorded as {op.__name__}, its grad_fn is {got.grad_fn!r}",
    )
### BEGIN HIDDEN TESTS
expect(
    (x * 2.5 + 1).dtype == np.float32, "a Python number must not change a float32 Variable's dtype"
)
expect_close((np.array([1.0, 1.0, 1.0]) * x).data, [1.0, 2.0, 4.0], "numpy array * Variable")
check_op_backward(Div, np.divide, [nonzero, nonzero])
### END HIDDEN TESTS
print("✓ test_arithmetic passed (12 points)")


# %% [markdown]
# ## Part 4: the engine
#
# ### Broadcasting, undone
#
# In `a + b` with `a` of shape (2, 3) and `b` of shape (3,), numpy uses `b` once per
# row. In backward, every row's gradient flows back into the same `b`, so ∂L/∂b is the
# *sum* over the broadcast axis:
#
# ```text
# forward:   a (2, 3)  +  b (3,)     b is read once per row
#                  out (2, 3)
#
# backward:  ∂L/∂out (2, 3)  ──sum over axis 0──>  ∂L/∂b (3,)
#            ∂L/∂out (2, 3)  ──sum over axis 1, keepdims──>  ∂L/∂c (2, 1)  for c of shape (2, 1)
# ```
#
# Broadcasting adds axes on the left and stretches axes of size 1; `unbroadcast` sums
# over exactly those.
#
# **Your task:** `unbroadcast(grad, shape)`: sum the leading axes that `shape` does not
# have, then (with `keepdims=True`) the axes where `shape` has size 1 but `grad` does
# not. Return `grad` itself when the shapes already match (no copy: this is on the hot
# path).


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


# %% [markdown]
# ### Calling an op's backward, checked (given)
#
# `call_backward(fn, grad_output)` runs one node's `backward` and checks what came
# back, so that a mistake in an op is reported where it was made, naming the op and
# the input, instead of surfacing as a wrong number far away: one gradient per input;
# each gradient reduced with `unbroadcast` when it has the broadcast shape, refused when
# its shape cannot come from broadcasting the input; each cast to its input's dtype.
# It is given; read it, your engine calls it.


# %%
#| export
def call_backward(fn: Function, grad_output: np.ndarray) -> list:
    """Run `fn`'s backward and check what it returns: one gradient (or None) per input
    of forward; each reduced to its input's shape if broadcasting stretched it, and
    cast to its input's dtype. A wrong count or shape is an error naming the Function."""
    try:
        grads = type(fn).backward(fn, grad_output)
    except ValueError as error:  # numpy's shape errors, said in terms of the op
        raise ValueError(
            f"{type(fn).__name__}.backward failed on a gradient of shape {np.shape(grad_output)}: {error}"
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


# %% [markdown]
# ### Walking the graph backward
#
# The gradient of a node is complete only when *every* path from the output has
# delivered its share. In `d = a*2 + a*3`, `a` receives 2 from one path and 3 from the
# other, and ∂d/∂a = 5. So the engine first orders the graph, **reverse topological
# order**: every node comes before the nodes it was computed from. Then it visits each
# node exactly once, when all its contributions have arrived:
#
# ```text
# a = Variable(1.0, requires_grad=True)      order: d, then b and c, then a
# b = a * 2
# c = a * 3            d ──> b ──> a         d passes 1 to b and to c
# d = b + c            d ──> c ──> a         b passes 2 to a, c passes 3: a.grad = 5
# ```
#
# Two classic mistakes this avoids. A recursive walk hits Python's recursion limit
# (about 1,000 frames) on a chain of a few thousand ops; yours uses explicit stacks,
# so a 100,000-op chain works. And a walk that follows every *path* instead of every
# *node* visits a node once per path: a chain of 60 diamonds has 2⁶⁰ paths, while
# your engine does 60 × 3 node visits.
#
# Four small functions do the work:
#
# - `count_consumers(root)`: walk the graph once from `root` with an explicit stack and
#   count, for each Variable, how many op inputs consume it: how many gradients it will
#   receive. Follow only inputs that need grad (`fn.needs_input_grad`).
# - `topological_order(root)`: **Kahn's algorithm**. Start with `[root]` as the stack
#   of *ready* Variables. Pop one, append it to the order, and for each parent
#   subtract 1 from its count; at 0 all its consumers are done, so it is ready. A
#   ready leaf can be appended at once (it has no parents to wait for), which moves
#   its gradient into `.grad` early instead of holding it in memory.
#
# ```text
# d = b + c,  b = a * 2,  c = a * 3        consumers: d 0, b 1, c 1, a 2
#
# pop d   order [d]             b: 1 -> 0 ready, c: 1 -> 0 ready
# pop c   order [d, c]          a: 2 -> 1
# pop b   order [d, c, b]       a: 1 -> 0, a leaf: order [d, c, b, a]
# ```
#
# - `accumulate_grad(variable, grad)`: the first gradient becomes `.grad`, later ones
#   are added in place, so gradients accumulate across `backward()` calls, as in
#   PyTorch. Careful with the first one: the array an op's backward returned may also
#   have gone to another input (`Add` returns `grad_output` twice), or be a read-only
#   view (`np.broadcast_to`). Two leaves sharing one buffer would see each other's
#   later additions. So copy it (`np.array(grad, dtype=...)`), unless `is_unshared`
#   (given) says nothing else refers to it: then adopting it saves a copy per
#   parameter per step.
# - `backpropagate(root, grad_output, retain_graph)`: a dict maps each Variable to its
#   gradient so far. For each node in order: pop its gradient; a leaf accumulates it;
#   otherwise (also accumulating it if the node `retain_grad()`s) `call_backward` turns
#   it into input gradients, and `add_input_grads` adds each into the dict (a new
#   array, never `+=` there: the array may be shared). Then, unless `retain_graph`,
#   release what the node saved: set `fn._saved = _FREED`, so that a second backward
#   through it raises a clear error instead of using stale values.
#
# `Variable.backward()` (given in Part 1) checks its arguments with `initial_gradient`
# and calls your `backpropagate`.


# %% nbgrader={"grade": false, "grade_id": "engine", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
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
    """Every Variable that `root` depends on and that requires grad, each once, in an
    order where each comes after every Variable computed from it (root first): the
    order in which backward can visit them.

    Kahn's algorithm: a Variable is *ready* once all its consumers have been visited,
    because then its gradient is complete. A ready leaf is visited at once, so that
    its gradient moves into `.grad` instead of waiting in memory."""
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
                        order.append(parent)  # a ready leaf has nothing to wait for: visit it now
                    else:
                        ready.append(parent)
    return order
    ### END SOLUTION


def accumulate_grad(variable: Variable, grad: np.ndarray) -> None:
    """Add `grad` into `variable.grad`. The first gradient becomes `.grad`: a copy,
    unless nothing else refers to the array (then it is adopted as is, which saves a
    copy per parameter per step); later ones are added in place."""
    ### BEGIN SOLUTION
    if variable.grad is None:
        variable.grad = grad if is_unshared(grad) else np.array(grad, dtype=variable.data.dtype)
    else:
        variable.grad += grad
    ### END SOLUTION


def is_unshared(grad) -> bool:
    """True when `grad` is a plain array that owns its memory and that nobody but the
    caller of `accumulate_grad` refers to: no other Variable's `.grad` or `.data`, no
    view, no saved value. Then `.grad` may take it without a copy, because nothing else
    can see the in-place additions that follow. (PyTorch decides the same way, by
    reference count; the count to expect is measured below, as it differs between
    Python versions.)"""
    return (
        type(grad) is np.ndarray and grad.base is None and sys.getrefcount(grad) <= _UNSHARED_REFS
    )


def _references_to_an_unshared_array() -> int:
    """What `sys.getrefcount` reports inside `is_unshared`, called from
    `accumulate_grad`, called with a local variable, for an array nothing else holds."""

    def accumulate(grad):
        return probe(grad)

    def probe(grad):
        return sys.getrefcount(grad)

    local = np.empty(0)
    return accumulate(local)


_UNSHARED_REFS = _references_to_an_unshared_array()


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
        add_input_grads(grads, fn, call_backward(fn, grad))
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


# %% [markdown]
# ### Test: the engine (18 points)
#
# Broadcasting, shared subgraphs, accumulation, freed graphs, and graph sizes that break
# recursive engines.

# %% nbgrader={"grade": true, "grade_id": "test_engine", "locked": true, "points": 18, "schema_version": 3, "solution": false, "task": false}
g = np.arange(6.0).reshape(2, 3)
expect_close(unbroadcast(g, (2, 3)), g, "unbroadcast(g, its own shape)")
expect_close(unbroadcast(g, (3,)), g.sum(axis=0), "unbroadcast(g of shape (2, 3), (3,))")
expect_close(
    unbroadcast(g, (2, 1)), g.sum(axis=1, keepdims=True), "unbroadcast(g of shape (2, 3), (2, 1))"
)
expect_close(
    unbroadcast(g, (1, 3)), g.sum(axis=0, keepdims=True), "unbroadcast(g of shape (2, 3), (1, 3))"
)
expect_close(unbroadcast(g, ()), g.sum(), "unbroadcast(g of shape (2, 3), ())")

# the opening's example: z = x*y + b
x, y, b = (Variable(floats(v), requires_grad=True) for v in (2.0, 3.0, 1.0))
z = x * y + b
z.backward()
for name, leaf, want in (("x", x, 3.0), ("y", y, 2.0), ("b", b, 1.0)):
    expect(leaf.grad is not None, f"after z.backward(), {name}.grad is None")
    expect_close(leaf.grad, want, f"∂z/∂{name} for z = x*y + b at x=2, y=3, b=1")

# a diamond: each node once, in reverse topological order
a = Variable(floats(1.0), requires_grad=True)
left, right = a * 2, a * 3
d = left + right
consumers = count_consumers(d)
expect(
    len(consumers) == 4
    and consumers.get(a) == 2
    and consumers.get(left) == 1
    and consumers.get(d) == 0,
    "count_consumers(d) for d = a*2 + a*3 should count d: 0, a*2: 1, a*3: 1, a: 2 (a feeds two ops); "
    f"got {sorted(consumers.values())}",
)
order = topological_order(d)
expect(
    len(order) == 4 and len({id(v) for v in order}) == 4,
    f"topological_order of d = a*2 + a*3 has {len(order)} entries; expected the 4 Variables d, a*2, a*3, a once each",
)
position = {id(v): i for i, v in enumerate(order)}
expect(
    position[id(d)] == 0 and position[id(a)] == 3,
    "topological_order must start at the root (d) and end at the leaf (a)",
)
d.backward()
expect_close(a.grad, 5.0, "∂d/∂a for d = a*2 + a*3 (two paths: 2 + 3)")

# broadcasting, reduced by the engine
rng = np.random.default_rng(2)
check_gradients(
    lambda m, v: m * v + v,
    lambda m, v: m * v + v,
    [rng.standard_normal((2, 3)), rng.standard_normal(3)],
    "m * v + v with v broadcast over rows",
)
check_gradients(
    lambda m, c: m / c - c,
    lambda m, c: m / c - c,
    [rng.standard_normal((2, 3)), rng.uniform(1, 2, (2, 1))],
    "m / c - c with c of shape (2, 1)",
)

# accumulation across backward() calls, and retain_grad
w = Variable(floats([1.0, 2.0]), requires_grad=True)
(w * 3).backward(np.ones(2))
(w * 4).backward(np.ones(2))
expect_close(w.grad, [7.0, 7.0], "w.grad after backward of w*3 then of w*4 (gradients accumulate)")
hidden = w * w
hidden.retain_grad()
out = hidden * 5
out.backward(np.ones(2))
expect_close(hidden.grad, [5.0, 5.0], "hidden.grad of a non-leaf that called retain_grad()")
expect((w * 2).grad is None, "a non-leaf keeps no .grad unless it calls retain_grad()")

# a freed graph refuses a second backward
p = Variable(floats([1.0, 2.0]), requires_grad=True)
q = p * p
q.backward(np.ones(2))
raises(RuntimeError, lambda: q.backward(np.ones(2)), "retain_graph")
expect_close(p.grad, [2.0, 4.0], "p.grad after a refused second backward (must not change)")
r = p * p
r.backward(np.ones(2), retain_graph=True)
r.backward(np.ones(2))
expect_close(
    p.grad,
    3 * np.array([2.0, 4.0]),
    "p.grad after one backward of p*p, then two more with retain_graph=True the first time",
)

# graph sizes that break recursive or path-following engines
chain = start = Variable(floats(1.0), requires_grad=True)
for _ in range(5000):
    chain = chain + 1.0
try:
    chain.backward()
except RecursionError:
    raise AssertionError(
        "backward() through a 5,000-op chain hit Python's recursion limit: walk the graph "
        "with an explicit stack (a list you push to and pop from), not with recursion"
    ) from None
expect_close(
    start.grad,
    1.0,
    "the gradient through a 5,000-op chain (a recursive engine overflows the stack)",
)


class Counted(Function):
    """x * 1, counting how often its backward runs."""

    calls = 0

    @staticmethod
    def forward(ctx, a):
        return a * 1.0

    @staticmethod
    def backward(ctx, grad_output):
        Counted.calls += 1
        return grad_output


diamond = top = Variable(floats(1.0), requires_grad=True)
for _ in range(12):  # small first: an engine that follows every path makes 2**13 calls here
    diamond = Counted.apply(diamond) + Counted.apply(diamond)
diamond.backward()
expect(
    Counted.calls == 24,
    f"in a chain of 12 diamonds (24 Counted nodes), Counted.backward ran {Counted.calls} times: "
    "each node's backward must run once, after all paths into it have delivered their gradient",
)
expect_close(top.grad, 2.0**12, "the gradient through 12 diamonds (2**12 paths)")
diamond = top = Variable(floats(1.0), requires_grad=True)
for _ in range(60):
    diamond = diamond * 1.0 + diamond * 1.0
diamond.backward()
expect_close(top.grad, 2.0**60, "the gradient through 60 diamonds (2**60 paths, 180 nodes)")
### BEGIN HIDDEN TESTS
first, second = (
    Variable(floats([1.0, 2.0]), requires_grad=True),
    Variable(floats([3.0, 4.0]), requires_grad=True),
)
(first + second).backward(np.ones(2))
expect(
    not np.shares_memory(first.grad, second.grad),
    "the two inputs of an Add got .grad arrays that share memory: copy the first gradient unless it is unshared",
)
chain = start = Variable(floats(1.0), requires_grad=True)
for _ in range(100_000):
    chain = chain * 1.0
chain.backward()
expect_close(start.grad, 1.0, "the gradient through a 100,000-op chain")
raises(
    RuntimeError,
    lambda: Variable(floats([1.0, 2.0]), requires_grad=True).__mul__(2).backward(),
    "scalar",
)
raises(
    ValueError,
    lambda: (Variable(floats([1.0, 2.0]), requires_grad=True) * 2).backward(np.ones(3)),
    "(3,)",
    "(2,)",
)
raises(RuntimeError, lambda: Variable(floats([1.0])).backward(), "require")
triple = Variable(floats(2.0), requires_grad=True)
(triple * triple * triple).backward()
expect_close(triple.grad, 12.0, "d(x*x*x)/dx at 2")
### END HIDDEN TESTS
print("✓ test_engine passed (18 points)")


# %% [markdown]
# ## Seeing your graph: `draw_graph`, `trace`, `explain` (given)
#
# The diagrams in the opening were printed by these three tools, running on the
# reference engine, and a test re-runs them so the text you read cannot drift from
# what the code does. Now they run on *yours*:
#
# - `draw_graph(v)` draws the graph that computed `v`; `draw_graph(v, backward=True)`
#   the gradients flowing back. Labels are Variable names, else the names in your code,
#   else the expression (long ones become `t1`, `t2`, ...).
# - `with trace(): ...` prints each operation as your `Function.apply` records it and,
#   after `backward()`, each chain-rule step with its numbers.
# - `explain(code, **leaves)` runs code line by line under `trace()` and prints it
#   beside what autograd did: the opening's first picture.
#
# They are library code, not exercises: read them if you like layout algorithms.

# %%
#| export
_INFIX = {"Add": " + ", "Sub": " - ", "Mul": "*", "Div": "/", "Pow": "**", "MatMul": " @ "}
_SYMBOLS = {
    "Add": "+",
    "Sub": "-",
    "Mul": "×",
    "Div": "÷",
    "Pow": "**",
    "MatMul": "@",
    "Neg": "neg",
}
_ONE_OPERAND = {"Sum", "Mean", "Max", "Reshape", "Transpose", "GetItem", "LogSoftmax"}
_METHOD_STYLE = {"Sum": "sum", "Mean": "mean", "Max": "max", "LogSoftmax": "log_softmax"}
_TIGHT = {"Mul", "Div", "Pow", "Neg", "Transpose", "GetItem", "Reshape", *_METHOD_STYLE}


def format_value(value) -> str:
    """A number as `7` or `0.333333`; a larger array as `[...]` with 4 significant digits."""
    array = np.asarray(value)
    if array.size == 1:
        return f"{array.item():g}"
    if array.size <= 6:
        return np.array2string(array, precision=4, separator=", ", suppress_small=True)
    return f"<array of shape {array.shape}>"


def operands(op: type, inputs: Sequence) -> list:
    """The inputs of a call to `op` that are values (Variables, numbers, arrays), not
    settings such as an axis, a shape or an index."""
    if op.__name__ in _ONE_OPERAND:
        return list(inputs[:1])
    return [
        x
        for x in inputs
        if isinstance(x, (Variable, np.ndarray, int, float)) and not isinstance(x, bool)
    ]


def names_in(frame) -> dict[int, str]:
    """The variable names that refer to Variables in `frame` (a caller's code), so that
    drawings and traces can say `y` where the code says `y`."""
    if frame is None:
        return {}
    return names_from_scopes(frame.f_locals, frame.f_globals)


def names_from_scopes(*scopes: dict) -> dict[int, str]:
    """{id(variable): name} for the Variables in these namespaces (first name wins)."""
    found: dict[int, str] = {}
    for scope in scopes:
        for name, value in list(scope.items()):
            if isinstance(value, Variable) and not name.startswith("_"):
                found.setdefault(id(value), name)
    return found


class Labels:
    """How to write a Variable in a diagram: its `name`, else the name your code gave
    it, else the expression that computed it (`x*y + b`), else its value."""

    longest = 24  # an expression longer than this is called t1, t2, ... instead

    def __init__(self, names: dict[int, str]):
        self.names = dict(names)
        self.temporaries = 0

    def name(self, value) -> str | None:
        if isinstance(value, Variable):
            return value.name or self.names.get(id(value))
        return None

    def label(self, value) -> str:
        if not isinstance(value, Variable):
            return format_value(value)
        if self.name(value):
            return self.name(value)
        if value.grad_fn is not None and hasattr(value.grad_fn, "inputs"):
            text = self.expression(value)
            if len(text) > self.longest:
                self.temporaries += 1
                text = self.names[id(value)] = f"t{self.temporaries}"
            return text
        return format_value(value.data)

    def expression(self, variable: Variable) -> str:
        """The op that made `variable`, written with its operands' labels: `x*y + b`."""
        fn = variable.grad_fn
        op = type(fn).__name__
        args = operands(type(fn), fn.inputs)
        texts = [self._operand_text(op, a, position) for position, a in enumerate(args)]
        if op in _INFIX and len(texts) == 2:
            return _INFIX[op].join(texts)
        if op == "Neg":
            return f"-{texts[0]}"
        if op in _METHOD_STYLE:
            axis = fn.inputs[1] if len(fn.inputs) > 1 else None
            return f"{texts[0]}.{_METHOD_STYLE[op]}({'' if axis is None else f'axis={axis}'})"
        if op == "Transpose":
            return f"{texts[0]}.T"
        if op == "GetItem":
            return f"{texts[0]}[...]"
        if op == "Reshape":
            return f"{texts[0]}.reshape{tuple(fn.inputs[1])}"
        name = op.lower() if op in ("Exp", "Log", "Tanh", "Sigmoid", "ReLU") else op
        return f"{name}({', '.join(texts)})"

    def _operand_text(self, op: str, value, position: int) -> str:
        text = self.label(value)
        is_infix = (
            self.name(value) is None
            and isinstance(value, Variable)
            and value.grad_fn is not None
            and type(value.grad_fn).__name__ in _INFIX
        )
        binds_tighter = op in _TIGHT or (op == "Sub" and position == 1)
        return f"({text})" if is_infix and binds_tighter else text

    def derivative(self, of: str, value) -> str:
        """`∂z/∂x`, with parentheses around an expression: `∂z/∂(x*y)`."""
        text = self.label(value)
        return f"∂{of}/∂{text}" if text.isidentifier() else f"∂{of}/∂({text})"


# %%
#| export
class GraphDrawing:
    """Lays out the graph that made a Variable as text: each op's operands stacked on the
    left, joined by a bracket to the op, whose result flows to the right. A sub-result
    used twice is drawn once, then referred to by its label."""

    def __init__(self, root: Variable, labels: Labels, backward: bool = False, max_ops: int = 40):
        self.root, self.labels, self.backward = root, labels, backward
        self.max_ops, self.drawn = max_ops, set()
        self.of = labels.name(root) or "L"
        self.stub, self.arrow = (" ←──", "←── ") if backward else (" ──", "──> ")

    def render(self) -> str:
        lines, _ = self.block(self.root)
        return "\n".join(line.rstrip() for line in lines)

    def node_text(self, value, is_root: bool = False) -> str:
        if self.backward:
            text = self.labels.derivative(self.of, value)
            if is_root and value.data.size == 1:
                return f"{text} = 1"
            grad = value.grad if isinstance(value, Variable) else None
            return f"{text} = {format_value(grad)}" if grad is not None and grad.size == 1 else text
        name = self.labels.name(value)
        if name and isinstance(value, Variable) and value.grad_fn is not None:
            return f"{name} = {self.labels.expression(value)}"
        return self.labels.label(value)

    def children(self, variable: Variable) -> list:
        fn = variable.grad_fn
        args = operands(type(fn), fn.inputs)
        if self.backward:  # only what receives a gradient
            args = [a for a in args if isinstance(a, Variable) and a.requires_grad]
        return args

    def block(self, value) -> tuple[list[str], int]:
        """(lines, the row where this value's arrow leaves to the right)."""
        is_op = (
            isinstance(value, Variable)
            and value.grad_fn is not None
            and hasattr(value.grad_fn, "inputs")
        )
        if is_op and id(value) in self.drawn:  # drawn already: refer to it
            label = self.labels.label(value)
            return [self.labels.derivative(self.of, value) if self.backward else label], 0
        if not is_op:
            return [self.node_text(value)], 0
        self.drawn.add(id(value))
        if len(self.drawn) > self.max_ops:
            raise ValueError(
                f"draw_graph draws up to {self.max_ops} operations and this graph has more: "
                "draw a smaller part of it (pass draw_graph(..., max_ops=N) to raise the limit)"
            )
        symbol = (
            f"[{_SYMBOLS.get(type(value.grad_fn).__name__, type(value.grad_fn).__name__.lower())}]"
        )
        result = f"{symbol}{self.arrow}{self.node_text(value, value is self.root)}"
        blocks = [self.block(child) for child in self.children(value)]
        if len(blocks) == 1:
            lines, anchor = blocks[0]
            lines = list(lines)
            lines[anchor] += f"{self.stub}{result}"
            return lines, anchor
        return self.join(blocks, "──" + result)

    def join(self, blocks: list[tuple[list[str], int]], result: str) -> tuple[list[str], int]:
        """Stack operand blocks, right-aligned, and bracket their arrows into one op."""
        widths = [max(max(map(len, lines)), len(lines[a]) + len(self.stub)) for lines, a in blocks]
        column = max(widths)
        rows: list[str] = []
        anchors: list[int] = []
        for index, ((lines, anchor), width) in enumerate(zip(blocks, widths, strict=True)):
            if index:
                rows.append("")
            indent = " " * (column - width)
            for row, line in enumerate(lines):
                if row == anchor:
                    anchors.append(len(rows))
                    rows.append(indent + (line + self.stub).ljust(width, "─"))
                else:
                    rows.append(indent + line.ljust(width))
        first, last = anchors[0], anchors[-1]
        junction = (first + last) // 2
        for row in range(len(rows)):
            rows[row] = rows[row].ljust(column)
            if row == first:
                rows[row] += "┐"
            elif row == last:
                rows[row] += "┘"
            elif first < row < last:
                middle = row in anchors
                rows[row] += (
                    ("┼" if middle else "├") if row == junction else ("┤" if middle else "│")
                )
            if row == junction:
                rows[row] += result
        return rows, junction


def draw_graph(root: Variable, backward: bool = False, max_ops: int = 40) -> str:
    """The graph that computed `root`, drawn as text. `backward=True` draws the
    gradients flowing back instead (∂root/∂ each Variable that requires grad).
    Labels are Variable names, else the names in your code, else expressions."""
    labels = Labels(names_in(sys._getframe(1)))
    return GraphDrawing(root, labels, backward, max_ops).render()


# %%
#| export
class trace:
    """`with trace():` prints each operation as autograd records it and, after
    `backward()`, each step of the chain rule with its numbers.

        x = Variable(5.0, requires_grad=True)
        with trace():
            y = x + 2
            z = y * 3
            z.backward()
    """

    def __init__(self, file=None, scope: dict | None = None):
        self.file, self.scope = file, scope
        self.outputs: dict[Function, Variable] = {}
        self.steps: list[tuple] = []
        self._frame = None
        self._previous = None

    def __enter__(self) -> "trace":
        global _tracer
        self._frame = sys._getframe(1)
        self._previous, _tracer = _tracer, self
        return self

    def __exit__(self, *exc_info) -> bool:
        global _tracer
        _tracer, self._previous = self._previous, None
        self._frame = None
        return False

    def say(self, text: str) -> None:
        print(text, file=self.file or sys.stdout)

    def labels(self) -> Labels:
        """Names from the code between the `with trace():` line and the running op:
        the outermost (your) frame first; the engine's own frames are skipped."""
        if self.scope is not None:
            return Labels(names_from_scopes(self.scope))
        engine_files = {
            code.co_filename
            for code in (
                Variable.backward.__code__,
                Function.apply.__func__.__code__,
                trace.labels.__code__,
            )
        }
        frames, frame = [], sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_filename not in engine_files or frame is self._frame:
                frames.append(frame)
            if frame is self._frame:
                break
            frame = frame.f_back
        scopes = [f.f_locals for f in reversed(frames)]
        if self._frame is not None:
            scopes.append(self._frame.f_globals)
        return Labels(names_from_scopes(*scopes))

    def record_operation(self, ctx: Function, inputs: tuple, output: Variable) -> None:
        labels = self.labels()
        op = type(ctx).__name__
        args = ", ".join(labels.label(x) for x in operands(type(ctx), inputs))
        if output.grad_fn is None:
            self.say(f"Computes without tracking: {op}({args}) = {format_value(output.data)}")
            return
        self.outputs[ctx] = output
        line = f"Tracks operation: {op}({args}) = {format_value(output.data)}"
        saved = getattr(ctx, "_saved", ())
        if saved:
            line += f"   saves {', '.join(format_value(v) for v in saved)} for backward"
        self.say(line)

    def begin_backward(self, root: Variable, seed: np.ndarray) -> None:
        self.steps = [("seed", root, seed)]

    def record_backward(self, fn: Function, grad_output: np.ndarray, grads: list) -> None:
        self.steps.append((fn, grad_output, grads))

    def end_backward(self, root: Variable) -> None:
        labels = self.labels()
        of = labels.name(root) or "L"
        _, _, seed = self.steps[0]
        start = (
            "start with gradient 1" if np.all(seed == 1) else "the gradient passed to backward()"
        )
        rows = [(f"∂{of}/∂{of} = {format_value(seed)}", start)]
        reached = set()
        for fn, grad_output, grads in self.steps[1:]:
            output = self.outputs.get(fn)
            op = type(fn).__name__
            for value, grad in zip(fn.inputs, grads, strict=True):
                if grad is None:
                    continue
                equals = "+=" if id(value) in reached else "="
                reached.add(id(value))
                target = labels.derivative(of, value)
                if (
                    output is not None
                    and np.size(grad_output) == 1
                    and np.size(grad) == 1
                    and grad_output != 0
                ):
                    local = np.asarray(grad).item() / np.asarray(grad_output).item()
                    outer = labels.derivative(of, output)
                    inner = f"∂({labels.expression(output)})/∂{labels.label(value)}"
                    numbers = f"{format_value(grad_output)} × {format_value(local)} = {format_value(grad)}"
                    text = f"{target} {equals} {outer} × {inner} = {numbers}"
                else:
                    text = f"{target} {equals} {format_value(grad)}"
                rows.append((text, f"{op}.backward"))
        width = max(len(text) for text, _ in rows)
        self.say(f"Backward pass ({labels.label(root)}.backward()):")
        for text, note in rows:
            self.say(f"    {text.ljust(width)}   {note}")
        for variable in topological_order(root):
            if variable.is_leaf and variable.grad is not None:
                self.say(f"Result: {labels.label(variable)}.grad = {format_value(variable.grad)}")
        self.steps = []


def explain(code: str, **leaves) -> str:
    """Run `code` (one statement per line) with `trace()` on and return each line of it
    beside what autograd did for it. Keyword arguments become leaf Variables with
    `requires_grad=True`; `Variable` and `np` are available to the code.

        print(explain("y = x + 2\nz = y * 3\nz.backward()", x=5.0))
    """
    scope = {"Variable": Variable, "np": np}
    scope.update({name: Variable(value, requires_grad=True) for name, value in leaves.items()})
    tracer = trace(scope=scope)
    rows = [
        (
            f"{name} = Variable({value!r}, requires_grad=True)",
            f"Creates leaf {name} (requires_grad=True)",
        )
        for name, value in leaves.items()
    ]
    for line in code.strip().splitlines():
        before = {name: value for name, value in scope.items()}
        tracer.file = io.StringIO()
        with tracer:
            exec(line, scope)
        said = tracer.file.getvalue().splitlines()
        for name, value in scope.items():
            if (
                isinstance(value, Variable)
                and before.get(name) is not value
                and value.grad_fn is None
            ):
                said.append(
                    f"Creates leaf {name}"
                    + (" (requires_grad=True)" if value.requires_grad else "")
                )
        rows.append((line, said[0] if said else ""))
        rows.extend(("", more) for more in said[1:])
    width = max(len("Your code:"), *(len(code_line) for code_line, _ in rows)) + 4
    lines = [
        f"{'Your code:'.ljust(width)}What autograd does:",
        f"{'─' * 10}".ljust(width) + "─" * 19,
    ]
    lines += [f"{code_line.ljust(width)}{said}".rstrip() for code_line, said in rows]
    return "\n".join(lines)


# %% [markdown]
# Your own graph, drawn and traced by your engine (it prints a hint instead while Parts
# 1 to 4 are unfinished):

# %%
try:
    a = Variable(1.0, requires_grad=True)
    with trace():
        b = a * 2
        c = a * 3
        d = b + c
        d.backward()
    print(draw_graph(d))
    print(draw_graph(d, backward=True))
except Exception as error:  # the released notebook runs this before your engine is finished
    print(
        f"draw_graph and trace run on your engine; finish Parts 1 to 4 first ({type(error).__name__})."
    )


# %% [markdown]
# ## Part 5: the rest of the elementwise math
#
# | op | forward | local derivative ∂out/∂a | saves |
# |---|---|---|---|
# | `Pow` | a ** b | b · a ** (b - 1); and ∂out/∂b = out · ln a | a, b, out |
# | `Exp` | e ** a | out | out |
# | `Log` | ln a | 1 / a | a |
# | `Tanh` | tanh a | 1 - out² | out |
# | `Sigmoid` | 1 / (1 + e ** -a) | out · (1 - out) | see below |
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
rng = np.random.default_rng(3)
shape = (2, 3)
values, positive = rng.standard_normal(shape), rng.uniform(0.5, 2.0, shape)
away_from_zero = rng.uniform(0.2, 2.0, shape) * rng.choice([-1, 1], shape)
check_gradients(lambda a: a**3, lambda a: a**3, [values], "a ** 3")
check_gradients(lambda a: a**-0.5, lambda a: a**-0.5, [positive], "a ** -0.5")
check_gradients(
    lambda a, b: a**b, lambda a, b: a**b, [positive, values], "a ** b (a Variable exponent)"
)
check_gradients(lambda a: 2**a, lambda a: 2**a, [values], "2 ** a")
check_gradients(lambda a: a.exp(), np.exp, [values], "a.exp()")
check_gradients(lambda a: a.log(), np.log, [positive], "a.log()")
check_gradients(lambda a: a.tanh(), np.tanh, [values], "a.tanh()")
check_gradients(lambda a: a.sigmoid(), lambda a: 1 / (1 + np.exp(-a)), [values], "a.sigmoid()")
check_gradients(lambda a: a.relu(), lambda a: np.maximum(a, 0), [away_from_zero], "a.relu()")
with warnings.catch_warnings():
    warnings.simplefilter("error")  # an overflow warning fails the test
    x = Variable(floats([-1000.0, 0.0, 1000.0]), requires_grad=True)
    s = x.sigmoid()
    s.backward(np.ones(3))
expect_close(s.data, [0.0, 0.5, 1.0], "sigmoid at -1000, 0, 1000 (must not overflow)")
expect_close(x.grad, [0.0, 0.25, 0.0], "sigmoid's gradient at -1000, 0, 1000")
### BEGIN HIDDEN TESTS
zero = Variable(floats([0.0, 1.0]), requires_grad=True)
(zero**0).backward(np.ones(2))
expect_close(zero.grad, [0.0, 0.0], "d(a**0)/da (0 even at a = 0)")
base = Variable(floats([0.0, 2.0]), requires_grad=True)
exponent = Variable(floats([2.0, 3.0]), requires_grad=True)
(base**exponent).backward(np.ones(2))
expect_close(exponent.grad, [0.0, 8.0 * np.log(2.0)], "d(a**b)/db where a = 0 is taken as 0")
y = Variable(np.array([0.0, 2.0], dtype=np.float32), requires_grad=True)
y.relu().backward(np.ones(2, dtype=np.float32))
expect_close(y.grad, [0.0, 1.0], "relu's gradient at 0 is 0")
expect(y.grad.dtype == np.float32, "a float32 Variable gets a float32 .grad")
### END HIDDEN TESTS
print("✓ test_math_ops passed (10 points)")


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
rng = np.random.default_rng(4)
for a_shape, b_shape in [
    ((2, 3), (3, 4)),
    ((3,), (3, 4)),
    ((2, 3), (3,)),
    ((3,), (3,)),
    ((5, 2, 3), (5, 3, 4)),
    ((5, 2, 3), (3, 4)),
    ((3,), (5, 3, 2)),
]:
    check_gradients(
        lambda a, b: a @ b,
        np.matmul,
        [rng.standard_normal(a_shape), rng.standard_normal(b_shape)],
        f"a @ b with shapes {a_shape} @ {b_shape}",
    )
check_gradients(
    lambda a: matmul(a, np.ones((3, 2))),
    lambda a: a @ np.ones((3, 2)),
    [rng.standard_normal((2, 3))],
    "matmul(a, a constant array)",
)
raises(
    ValueError,
    lambda: Variable(np.ones((2, 3))) @ Variable(np.ones((4, 5))),
    "MatMul",
    "(2, 3)",
    "(4, 5)",
)
### BEGIN HIDDEN TESTS
check_gradients(
    lambda a, b: a @ b,
    np.matmul,
    [rng.standard_normal((4, 1, 2, 3)), rng.standard_normal((2, 3, 2))],
    "a @ b with shapes (4, 1, 2, 3) @ (2, 3, 2)",
)
check_gradients(
    lambda a, b: a @ b,
    np.matmul,
    [rng.standard_normal((2, 2, 3)), rng.standard_normal(3)],
    "a @ b with shapes (2, 2, 3) @ (3,)",
)
### END HIDDEN TESTS
print("✓ test_matmul passed (8 points)")


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
rng = np.random.default_rng(5)
data = rng.standard_normal((2, 3, 4))
for axis in (None, 0, 1, -1, (0, 2)):
    for keepdims in (False, True):
        for method in ("sum", "mean", "max"):
            check_gradients(
                lambda a, m=method, x=axis, k=keepdims: getattr(a, m)(axis=x, keepdims=k),
                lambda a, m=method, x=axis, k=keepdims: getattr(np, m)(a, axis=x, keepdims=k),
                [data],
                f"a.{method}(axis={axis}, keepdims={keepdims}) for a of shape (2, 3, 4)",
            )
ties = Variable(floats([[1.0, 5.0, 2.0], [7.0, 0.0, 7.0]]), requires_grad=True)
ties.max(axis=1).backward(np.array([1.0, 1.0], dtype=np.float32))
expect_close(
    ties.grad,
    [[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]],
    "max's gradient when two elements tie for the maximum (they share it)",
)
### BEGIN HIDDEN TESTS
scalar = Variable(floats(3.0), requires_grad=True)
scalar.sum().backward()
expect_close(scalar.grad, 1.0, "sum of a 0-d Variable")
check_gradients(
    lambda a: a.mean(axis=(0, 1)), lambda a: a.mean(axis=(0, 1)), [data], "a.mean(axis=(0, 1))"
)
### END HIDDEN TESTS
print("✓ test_reductions passed (10 points)")


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
# plain assignment is enough there, and faster (`is_basic_index` tells them apart).
#
# **Your task:** `Reshape`, `Transpose` and `GetItem`.


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
rng = np.random.default_rng(6)
data = rng.standard_normal((2, 3, 4))
check_gradients(lambda a: a.reshape(4, 6), lambda a: a.reshape(4, 6), [data], "a.reshape(4, 6)")
check_gradients(lambda a: a.reshape((-1,)), lambda a: a.reshape(-1), [data], "a.reshape((-1,))")
check_gradients(lambda a: a.T, lambda a: a.T, [data], "a.T")
check_gradients(
    lambda a: a.transpose(1, 0, 2), lambda a: a.transpose(1, 0, 2), [data], "a.transpose(1, 0, 2)"
)
check_gradients(lambda a: a[0, 1:, ::2], lambda a: a[0, 1:, ::2], [data], "a[0, 1:, ::2]")
check_gradients(
    lambda a: a[:, [0, 2, 2]],
    lambda a: a[:, [0, 2, 2]],
    [data],
    "a[:, [0, 2, 2]] (a repeated index)",
)
picked = Variable(floats([10.0, 20.0, 30.0]), requires_grad=True)
picked[np.array([0, 0, 2])].backward(np.ones(3, dtype=np.float32))
expect_close(
    picked.grad,
    [2.0, 0.0, 1.0],
    "the gradient of x[[0, 0, 2]]: element 0 was picked twice, so it gets 2",
)
### BEGIN HIDDEN TESTS
check_gradients(
    lambda a: a[np.arange(2), [1, 2]],
    lambda a: a[np.arange(2), [1, 2]],
    [data],
    "a[np.arange(2), [1, 2]]",
)
check_gradients(lambda a: a[a.data > 0], lambda a: a[data > 0], [data], "a[mask]")
check_gradients(
    lambda a: a.transpose(0, 2),
    lambda a: np.swapaxes(a, 0, 2),
    [data],
    "a.transpose(0, 2) (swap two axes, as in PyTorch)",
)
### END HIDDEN TESTS
print("✓ test_shape_ops passed (8 points)")


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


# %% nbgrader={"grade": true, "grade_id": "test_log_softmax", "locked": true, "points": 6, "schema_version": 3, "solution": false, "task": false}
rng = np.random.default_rng(7)
data = rng.standard_normal((3, 4))


def numpy_log_softmax(a, axis=-1):
    shifted = a - a.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


check_gradients(
    lambda a: log_softmax(a), numpy_log_softmax, [data], "log_softmax(a) along the last axis"
)
check_gradients(
    lambda a: a.log_softmax(axis=0),
    lambda a: numpy_log_softmax(a, axis=0),
    [data],
    "a.log_softmax(axis=0)",
)
with warnings.catch_warnings():
    warnings.simplefilter("error")
    big = log_softmax(Variable(floats([[1000.0, 0.0, -1000.0]])))
expect_close(
    big.data, [[0.0, -1000.0, -2000.0]], "log_softmax([1000, 0, -1000]) (must not overflow)"
)
### BEGIN HIDDEN TESTS
expect_close(
    np.exp(log_softmax(Variable(data)).data).sum(axis=-1),
    np.ones(3),
    "softmax rows sum to 1",
    rtol=1e-6,
)
### END HIDDEN TESTS
print("✓ test_log_softmax passed (6 points)")


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
# the got (backward) value. The tests of `tests/test_autograd_*.py` run it on every op.


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

# %% nbgrader={"grade": true, "grade_id": "test_integration", "locked": true, "points": 12, "schema_version": 3, "solution": false, "task": false}
# 1. polynomial regression: y = 0.5 x**2 - x + 2, fitted with gradient descent
rng = np.random.default_rng(8)
inputs = rng.uniform(-2, 2, 64)
targets = 0.5 * inputs**2 - inputs + 2 + rng.normal(0, 0.05, 64)
features = Variable(np.stack([inputs**2, inputs, np.ones(64)], axis=1))
coefficients = Variable(np.zeros(3), requires_grad=True)
losses = []
for _ in range(400):
    loss = ((features @ coefficients - targets) ** 2).mean()
    loss.backward()
    with no_grad():
        coefficients.data -= 0.1 * coefficients.grad
    coefficients.zero_grad()
    losses.append(loss.item())
expect(
    losses[-1] < 0.01,
    f"after 400 steps the regression loss is {losses[-1]:.4f}; it should fall below 0.01 (it started at {losses[0]:.2f})",
)
expect_close(
    coefficients.data, [0.5, -1.0, 2.0], "the fitted coefficients of x**2, x, 1", atol=0.05
)

# 2. a 2-8-2 tanh network learns XOR with a log-softmax cross-entropy loss
rng = np.random.default_rng(0)
xor_inputs = Variable(floats([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]))
xor_labels = np.array([0, 1, 1, 0])
W1 = Variable(rng.normal(0, 1, (2, 8)), requires_grad=True)
b1 = Variable(np.zeros(8), requires_grad=True)
W2 = Variable(rng.normal(0, 1, (8, 2)), requires_grad=True)
b2 = Variable(np.zeros(2), requires_grad=True)
for _ in range(300):
    log_probabilities = log_softmax((xor_inputs @ W1 + b1).tanh() @ W2 + b2)
    loss = -log_probabilities[np.arange(4), xor_labels].mean()
    loss.backward()
    with no_grad():
        for parameter in (W1, b1, W2, b2):
            parameter.data -= 1.0 * parameter.grad
            parameter.zero_grad()
predictions = log_probabilities.data.argmax(axis=1).tolist()
expect(
    predictions == xor_labels.tolist(),
    f"after 300 steps the network predicts {predictions} for XOR, expected {xor_labels.tolist()} (loss {loss.item():.3f})",
)
print(f"regression loss {losses[0]:.2f} -> {losses[-1]:.4f}; XOR loss {loss.item():.4f}")
print("✓ test_integration passed (12 points)")


# %% [markdown]
# ## What you built, and where it goes next
#
# You built a reverse-mode autograd engine:
#
# - `Variable` with PyTorch's semantics: `requires_grad`, `grad_fn`, leaves,
#   accumulating `.grad`, `retain_grad()`, `detach()`, `no_grad()`;
# - `Function` with `apply`/`forward`/`backward`/`ctx`, and 19 ops on top of it, each
#   reducing broadcast gradients back to its input's shape;
# - an iterative engine that visits each node once in reverse topological order, frees
#   saved values after use, and refuses a second pass through a freed graph;
# - tools to check and see it: `gradcheck`, `draw_graph`, `trace`, `explain`.
#
# It is the `tinytorch.autograd` package every later module imports:
#
# - **02 nn**: `Module`, `Linear`, activations, `Sequential`, and losses built on your
#   ops (cross-entropy on your `log_softmax`);
# - **03 optim**: SGD with momentum and weight decay, and Adam, updating the `.grad`
#   your engine fills;
# - **04 training**: data loading and a training loop on a real dataset;
# - **05 memory**: a ledger of parameter, activation, gradient and graph bytes measured
#   on your live graph, and gradient checkpointing, trading compute for the memory the
#   opening estimated.
