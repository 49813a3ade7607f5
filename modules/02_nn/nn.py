# %% [markdown]
# # Neural network layers and losses
#
# > Module, Parameter, Linear, activations, Sequential, MSE and cross-entropy, on your engine.

# %% [markdown]
# ## What we're building today
#
# Module 01 gave you `Variable`: numbers that remember how they were computed, so that
# `loss.backward()` can fill in every gradient. A neural network is a pile of such
# numbers (its *parameters*) and a recipe for using them (its *forward pass*). This
# module packages both so that a whole network behaves like one object:
#
# ```
#     Your code:                               What happens behind the scenes:
#     ──────────                               ───────────────────────────────
#
#     model = Sequential(                      each Linear draws weight (out, in) and
#         Linear(784, 256), ReLU(),            bias (out,) from U(-1/√in, +1/√in),
#         Linear(256, 10))                     like PyTorch's default initialisation
#
#     model.named_parameters()                 walks the attributes: "0.weight",
#                                              "0.bias", "2.weight", "2.bias"
#
#     logits = model(x)                        x @ Wᵀ + b, relu, x @ Wᵀ + b: graph
#                                              nodes recorded by your engine
#
#     loss = cross_entropy(logits, y)          log-softmax with the row maximum
#                                              subtracted first: no overflow
#
#     loss.backward()                          .grad filled for all 4 parameters
#     model.zero_grad()                        every .grad back to None
# ```

# %% [markdown]
# ## The computational graph of one layer
#
# `Linear` computes `y = x @ Wᵀ + b` for a batch `x` of N rows. Written with your
# engine's operations, the forward pass records this graph:
#
# ```
# Forward pass (build the graph):
#
#     x  (N, in) ─────────┐
#                         ├──[@]──> x @ Wᵀ (N, out) ──┐
#     Wᵀ (in, out) ───────┘                           ├──[+]──> y (N, out)
#                                     b (out,) ───────┘
#                                (b is broadcast over the N rows)
#
# Backward pass (apply the chain rule, shapes check every step):
#
#     ∂L/∂x = ∂L/∂y @ W         (N, out) @ (out, in) = (N, in)
#     ∂L/∂W = (∂L/∂y)ᵀ @ x      (out, N) @ (N, in)   = (out, in)
#     ∂L/∂b = ∂L/∂y summed over the N rows           = (out,)
# ```
#
# Your engine could run this graph as it stands: `x @ self.weight.T + self.bias` records
# three nodes (a transpose, a matmul, an add), and their backward passes produce exactly
# these three gradients. `Linear` is the layer a network spends most of its time in, so
# in Part 3 you write it as *one* `Function` whose backward is the three lines above:
# one node instead of three, and `∂L/∂W` computed directly in the `(out, in)` layout of
# the weight instead of as `(in, out)` followed by a transposed copy.

# %% [markdown]
# ## Memory layout of a real network
#
# The parameters live as long as the model; the activations (each layer's output) exist
# once per batch and are what the backward pass reads. This table is the output of
# `describe(model, (128, 784))` for the MLP 784-256-128-10 in float32, a function you
# get at the end of this module (it runs a forward pass and measures each layer):
#
# <!-- describe:mlp -->
# ```
# ┌───────┬────────┬────────────────────┬─────────────┬────────────┬───────────┐
# │ layer │ type   │ parameters         │ param bytes │ output     │ out bytes │
# ├───────┼────────┼────────────────────┼─────────────┼────────────┼───────────┤
# │ 0     │ Linear │ weight (256, 784)  │     802,816 │ (128, 256) │   131,072 │
# │       │        │ bias (256,)        │       1,024 │            │           │
# │ 1     │ ReLU   │                    │           0 │ (128, 256) │   131,072 │
# │ 2     │ Linear │ weight (128, 256)  │     131,072 │ (128, 128) │    65,536 │
# │       │        │ bias (128,)        │         512 │            │           │
# │ 3     │ ReLU   │                    │           0 │ (128, 128) │    65,536 │
# │ 4     │ Linear │ weight (10, 128)   │       5,120 │ (128, 10)  │     5,120 │
# │       │        │ bias (10,)         │          40 │            │           │
# ├───────┼────────┼────────────────────┼─────────────┼────────────┼───────────┤
# │ total │        │ 235,146 parameters │     940,584 │            │   398,336 │
# └───────┴────────┴────────────────────┴─────────────┴────────────┴───────────┘
# ```
# <!-- /describe:mlp -->
#
# Training adds a gradient of the same size as each parameter (another 940,584
# bytes here) and, in module 03, the optimizer's own state.

# %% [markdown]
# ## Cross-entropy, step by step with real numbers
#
# A classifier outputs one *logit* per class; cross-entropy turns them into
# probabilities with softmax and charges `-log(probability of the right class)`.
# Computing `exp` first overflows for large logits (`exp(1000)` is `inf` in float64 and
# `exp(89)` already is in float32). Subtracting the row maximum first changes nothing
# mathematically (softmax is shift-invariant) and keeps every `exp` in (0, 1]:
#
# <!-- trace:cross_entropy -->
# ```
# logits z = [2.0, 1.0, 0.1], target class 0
#
#   m = max(z)                    = 2.0
#   z - m                         = [0.0, -1.0, -1.9]
#   exp(z - m)                    = [1.0, 0.367879, 0.149569]
#   s = sum(exp(z - m))           = 1.517448
#   log_softmax = z - m - log(s)  = [-0.417030, -1.417030, -2.317030]
#   loss = -log_softmax[0]        = 0.417030
#
# Backward: ∂loss/∂z = softmax(z) - onehot(target)
#   softmax = exp(log_softmax)    = [0.659001, 0.242433, 0.098566]
#   ∂loss/∂z                      = [-0.340999, 0.242433, 0.098566]
#
# logits z = [1000.0, 0.0, -1000.0], target class 1
#   naive: exp(z) = [inf, 1.0, 0.0]  ->  loss = inf
#   shifted: loss = 1000.000000
# ```
# <!-- /trace:cross_entropy -->
#
# The gradient `softmax - onehot` is the reason cross-entropy gets a `Function` of its
# own below: one graph node whose backward is a subtraction, instead of a chain of
# log-softmax, indexing, mean and negation nodes.

# %% [markdown]
# ## Real-world context: one layer at large-model scale
#
# The same `Linear` is most of a transformer. In GPT-3 (Brown et al., 2020; d_model =
# 12,288, 96 layers) each layer's feed-forward block is `Linear(12288, 49152)` followed
# by `Linear(49152, 12288)`. The parameter count is `in × out + out`:
#
# <!-- scale:gpt3 -->
# ```
# ┌──────────────────────┬─────────────────┬─────────────────┐
# │ layer                │ parameters      │ float32 bytes   │
# ├──────────────────────┼─────────────────┼─────────────────┤
# │ Linear(12288, 49152) │     604,028,928 │   2,416,115,712 │
# │ Linear(49152, 12288) │     603,992,064 │   2,415,968,256 │
# │ both, × 96 layers    │ 115,970,015,232 │ 463,880,060,928 │
# └──────────────────────┴─────────────────┴─────────────────┘
# ```
# <!-- /scale:gpt3 -->
#
# About 116 of GPT-3's 175 billion parameters sit in these two layer types, and one
# 2,048-token sequence makes a (2048, 49152) activation of 402,653,184 bytes per layer.
# The code you write next is the same code at a smaller `in` and `out`.

# %% [markdown]
# ## Why this matters: before and after `Module`
#
# ```
#     Before (numpy by hand):                  After (Module + autograd):
#     ───────────────────────                  ──────────────────────────
#     W1, b1, W2, b2 = init(...)               model = Sequential(Linear(4, 8),
#     h = np.maximum(x @ W1.T + b1, 0)                            ReLU(), Linear(8, 3))
#     out = h @ W2.T + b2                      loss = cross_entropy(model(x), y)
#     dout = softmax(out) - onehot(y)          loss.backward()
#     dW2 = dout.T @ h; db2 = dout.sum(0)      for p in model.parameters():
#     dh = (dout @ W2) * (h > 0)                   p.data -= lr * p.grad
#     dW1 = dh.T @ x;  db1 = dh.sum(0)
#     W1 -= lr * dW1;  b1 -= lr * db1  ...     new layer: one line, no new calculus
#
#     a new layer means new calculus           a mistake is an error naming the
#     and a silent bug when a shape is off     layer and both shapes
# ```
#
# Now let's build it.

# %%
#| default_exp nn

# %%
#| export
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

from tinytorch.autograd import Function, Variable, no_grad

# %% [markdown]
# ## Part 1: `Parameter` and `Module`
#
# A `Parameter` is a `Variable` that a model owns and trains: it always has
# `requires_grad=True`. A `Module` finds its parameters by looking at its own
# attributes, the way PyTorch's `nn.Module` does, so that you never list them by hand:
#
# ```
#   model (Sequential)
#    ├── "0" ──> Linear ──┬── "weight" ──> Parameter (256, 784)    "0.weight"
#    │                    └── "bias"   ──> Parameter (256,)        "0.bias"
#    ├── "1" ──> ReLU        (no parameters)
#    └── "2" ──> Linear ──┬── "weight" ──> Parameter (10, 256)     "2.weight"
#                         └── "bias"   ──> Parameter (10,)         "2.bias"
# ```
#
# `named_parameters()` walks the attributes in the order they were assigned
# (`vars(self)` keeps that order) and yields `(dotted name, parameter)`:
#
# - an attribute holding a `Parameter` yields `prefix + name`;
# - an attribute holding a `Module` yields that module's own parameters, with
#   `name + "."` added to the prefix;
# - an attribute holding a list or tuple of Modules yields each one's parameters with
#   the prefix `name.i.`;
# - a parameter reached twice (two layers sharing one weight) is yielded once, under
#   the first name, so an optimizer never updates it twice.
#
# The given helper `_children()` already does the attribute part: it yields
# `(name, value)` for every attribute that is a `Parameter` or a `Module`, with lists
# of Modules expanded to `name.0`, `name.1`, ... Your `named_parameters` recurses into
# the Modules, builds the dotted names and skips repeats (a set of `id(parameter)`).
# Then write `zero_grad` (every `.grad` to `None`, as PyTorch 2 does by default) and
# `train(mode)` (set `training` on this module and every sub-module, which the given
# `named_modules()` lists; `eval()` is `train(False)`). `state_dict` and `load_state_dict`
# are given; they use your `named_parameters` and a checker you write in Part 2.


# %% nbgrader={"grade": false, "grade_id": "nn_module", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class Parameter(Variable):
    """A `Variable` that a `Module` owns and trains: `requires_grad` is always True."""

    def __init__(self, data, name: str | None = None):
        super().__init__(data, requires_grad=True, name=name)


class Module:
    """Base class of every layer and model.

    Subclasses assign `Parameter`s and sub-`Module`s as attributes in `__init__` and
    define `forward`; calling the module calls `forward`. Parameters are found by
    walking the attributes, so they never have to be listed by hand.
    """

    training: bool = True

    def forward(self, *inputs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *inputs, **kwargs):
        return self.forward(*inputs, **kwargs)

    def _children(self) -> Iterator[tuple[str, Module | Parameter]]:
        """(attribute name, value) for every attribute that is a Parameter or a Module,
        in assignment order; a list or tuple of Modules counts as `name.0`, `name.1`, ..."""
        for name, value in vars(self).items():
            if isinstance(value, (Parameter, Module)):
                yield name, value
            elif (
                isinstance(value, (list, tuple))
                and value
                and all(isinstance(v, Module) for v in value)
            ):
                for index, item in enumerate(value):
                    yield f"{name}.{index}", item

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Yield (dotted name, parameter) for every parameter of this module and its
        sub-modules, each parameter once, in the order the attributes were assigned."""
        ### BEGIN SOLUTION
        seen: set[int] = set()

        def walk(module: Module, prefix: str) -> Iterator[tuple[str, Parameter]]:
            for name, value in module._children():
                if isinstance(value, Parameter):
                    if id(value) not in seen:
                        seen.add(id(value))
                        yield prefix + name, value
                else:
                    yield from walk(value, prefix + name + ".")

        yield from walk(self, prefix)
        ### END SOLUTION

    def parameters(self) -> list[Parameter]:
        """Every parameter of this module and its sub-modules (see `named_parameters`)."""
        return [parameter for _, parameter in self.named_parameters()]

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """Yield (dotted name, module) for this module ("" for itself) and every sub-module."""
        yield prefix.rstrip("."), self
        for name, value in self._children():
            if isinstance(value, Module):
                yield from value.named_modules(prefix + name + ".")

    def zero_grad(self) -> None:
        """Forget the gradients of all parameters: set every `.grad` to None (as PyTorch 2
        does by default), so the next `backward()` starts from nothing."""
        ### BEGIN SOLUTION
        for parameter in self.parameters():
            parameter.grad = None
        ### END SOLUTION

    def train(self, mode: bool = True) -> Module:
        """Put this module and every sub-module in training mode (or evaluation mode
        with `mode=False`); returns the module so calls can be chained."""
        ### BEGIN SOLUTION
        for _, module in self.named_modules():
            module.training = mode
        ### END SOLUTION
        return self

    def eval(self) -> Module:
        """Evaluation mode: `train(False)`."""
        return self.train(False)

    def state_dict(self) -> dict[str, np.ndarray]:
        """A snapshot of the parameters: {dotted name: copy of the array} (Part 2)."""
        return {name: parameter.data.copy() for name, parameter in self.named_parameters()}

    def load_state_dict(self, state: dict) -> None:
        """Copy every array of `state` into the parameter of the same name, in place.

        Strict: raises `KeyError` listing every missing, unexpected or mis-shaped key
        (found by `state_dict_problems`, Part 2) and changes nothing when anything is wrong.
        """
        problems = state_dict_problems(self, state)
        if problems:
            raise KeyError(f"load_state_dict into {type(self).__name__}: " + "; ".join(problems))
        for name, parameter in self.named_parameters():
            np.copyto(parameter.data, np.asarray(state[name]))

    def __repr__(self) -> str:
        children = [(n, v) for n, v in self._children() if isinstance(v, Module)]
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, child in children:
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines + [")"])

    def extra_repr(self) -> str:
        """The arguments shown inside this module's repr, e.g. `in_features=4, ...`."""
        return ""


# %% [markdown]
# The test below builds small models out of `Module`s. Each assertion says what a user
# of your `Module` would notice going wrong.


# %% nbgrader={"grade": true, "grade_id": "test_nn_module", "locked": true, "points": 15, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from tinytorch_course.checks import Check

check = Check("test_nn_module", points=15)
_objects = {}


def _classes():
    class Pair(Module):
        def __init__(self):
            self.first = Parameter(np.ones(3, dtype=np.float32))
            self.scale = 2.0  # not a parameter: a plain number
            self.cache = Variable(np.zeros(2, dtype=np.float32))  # not a Parameter either
            self.second = Parameter(np.zeros((2, 2), dtype=np.float32))

    class Outer(Module):
        def __init__(self):
            self.bias = Parameter(np.zeros(1, dtype=np.float32))
            self.inner = Pair()
            self.blocks = [Pair(), Pair()]

    _objects.update(Pair=Pair, Outer=Outer)
    return [name for name, _ in Pair().named_parameters()]


check.equal(
    check.probe(_classes, "named_parameters() of Pair"),
    ["first", "second"],
    "names from named_parameters() of a module with Parameters first and second, a float and "
    "a plain Variable",
    hint="only Parameters (and sub-modules' Parameters) are parameters",
)


def _nested():
    outer = _objects["outer"] = _objects["Outer"]()
    return [name for name, _ in outer.named_parameters()]


check.equal(
    check.probe(_nested, "named_parameters() of Outer"),
    [
        "bias",
        "inner.first",
        "inner.second",
        "blocks.0.first",
        "blocks.0.second",
        "blocks.1.first",
        "blocks.1.second",
    ],
    "dotted names of nested modules (and modules in a list), in assignment order",
)


def _identity():
    outer = _objects["outer"]
    parameters = outer.parameters()
    return [type(p).__name__ for p in parameters], parameters[1] is outer.inner.first


_types, _same = check.no_raise(check.probe(_identity, "parameters()"), "parameters()")
check.equal(_types, ["Parameter"] * 7, "types of the items of parameters()")
check.equal(
    _same,
    True,
    "parameters()[1] is outer.inner.first",
    hint="return the module's own Parameter objects, not copies",
)


def _zero_grad():
    outer = _objects["outer"]
    for p in outer.parameters():
        p.grad = np.ones_like(p.data)
    outer.zero_grad()
    return [type(p.grad).__name__ for p in outer.parameters()]


check.equal(
    check.probe(_zero_grad, "zero_grad()"),
    ["NoneType"] * 7,
    "types of every .grad after zero_grad()",
    hint="set every .grad to None",
)


def _modes():
    outer = _objects["outer"]
    returned = outer.eval() is outer
    after_eval = [outer.training, outer.inner.training, outer.blocks[1].training]
    outer.train()
    after_train = [outer.training, outer.inner.training, outer.blocks[0].training]
    outer.train(False)
    after_false = [outer.training, outer.blocks[0].training]
    return returned, after_eval, after_train, after_false


_returned, _eval, _train, _false = check.no_raise(check.probe(_modes, "eval(), train()"), "modes")
check.equal(_returned, True, "outer.eval() is outer", hint="return self")
check.equal(
    _eval,
    [False] * 3,
    "training flags (outer, inner, blocks[1]) after eval()",
    hint="switch every sub-module, including modules in lists",
)
check.equal(_train, [True] * 3, "training flags (outer, inner, blocks[0]) after train()")
check.equal(_false, [False] * 2, "training flags (outer, blocks[0]) after train(False)")


def _tied():
    shared = _objects["Pair"]()
    tied = _objects["Outer"]()
    tied.inner = shared
    tied.blocks = [shared]
    prefixed = [n for n, _ in _objects["Outer"]().named_parameters(prefix="model.")][0]
    return [name for name, _ in tied.named_parameters()], prefixed


_names, _prefixed = check.no_raise(check.probe(_tied, "shared sub-module"), "tied")
check.equal(
    _names,
    ["bias", "inner.first", "inner.second"],
    "names with a shared sub-module",
    hint="a parameter reached twice is listed once, under its first name",
)
check.equal(_prefixed, "model.bias", "first name from named_parameters(prefix='model.')")


def _modes_again():
    class Wrap(Module):
        def __init__(self):
            self.outer = _objects["Outer"]()

    wrap, other = Wrap(), _objects["Outer"]()
    wrap.eval()
    wrap.eval()
    twice_eval = [wrap.outer.training, wrap.outer.inner.training, other.training]
    wrap.train()
    wrap.train(True)
    return twice_eval, [wrap.outer.training, wrap.outer.blocks[1].training]


_twice_eval, _twice_train = check.no_raise(check.probe(_modes_again, "eval() twice"), "modes")
check.equal(
    _twice_eval,
    [False, False, True],
    "training flags (wrap.outer, wrap.outer.inner, another Outer) after wrap.eval() twice",
    hint="set training = mode on this model's modules only (an instance attribute, not a "
    "toggle, not the class)",
)
check.equal(
    _twice_train,
    [True, True],
    "training flags (wrap.outer, wrap.outer.blocks[1]) after train() twice",
)
check.done()

# %% [markdown]
# ## Part 2: saving and restoring weights: `state_dict`
#
# A trained model is its parameters. `state_dict()` returns a snapshot:
# `{dotted name: numpy array copy}`. `load_state_dict(state)` writes such a snapshot back
# into the live parameters, *in place*, so that an optimizer that holds the same
# `Parameter` objects keeps working. Loading is strict: every mismatch is a bug in the
# caller's code, and a silent partial load is the worst kind of bug, so it stops with
# an error that names each key and both shapes:
#
# ```
#     state_dict from disk          model.named_parameters()
#     ────────────────────          ────────────────────────
#     "0.weight" (256, 784)  ──────> "0.weight" (256, 784)     copied in place
#     "0.bias"   (256,)      ──────> "0.bias"   (256,)         copied in place
#     "2.weight" (10, 128)    ──X──> "2.weight" (10, 256)      error: shape
#                                    "2.bias"   (10,)          error: missing
#     "3.weight" (10, 10)     ──X──                            error: unexpected
# ```
#
# PyTorch's `state_dict()` returns tensors that share memory with the model; ours
# returns copies, so a snapshot taken before training stays what it was.


# %% nbgrader={"grade": false, "grade_id": "nn_state_dict", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def state_dict_problems(module: Module, state: dict) -> list[str]:
    """Every way `state` does not fit `module`: missing keys, unexpected keys, and
    arrays whose shape differs from the parameter's, each naming the key (and shapes)."""
    problems: list[str] = []
    ### BEGIN SOLUTION
    parameters = dict(module.named_parameters())
    for name, parameter in parameters.items():
        if name not in state:
            problems.append(f"missing key {name!r} (parameter of shape {parameter.shape})")
            continue
        shape = np.shape(state[name])
        if shape != parameter.shape:
            problems.append(
                f"key {name!r}: state has shape {shape}, the parameter has shape {parameter.shape}"
            )
    for name in state:
        if name not in parameters:
            problems.append(
                f"unexpected key {name!r} (shape {np.shape(state[name])}): no such parameter"
            )
    ### END SOLUTION
    return problems


# %% nbgrader={"grade": true, "grade_id": "test_nn_state_dict", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from tinytorch_course.checks import Check

check = Check("test_nn_state_dict", points=10)
_first0 = check.rng.standard_normal(3).astype(np.float32)
_objects = {}


def _snapshot():
    class Pair(Module):
        def __init__(self):
            self.first = Parameter(_first0.copy())
            self.second = Parameter(np.zeros((2, 2), dtype=np.float32))

    class Outer(Module):
        def __init__(self):
            self.bias = Parameter(np.zeros(1, dtype=np.float32))
            self.inner = Pair()

    model = _objects["model"] = Outer()
    snapshot = _objects["snapshot"] = model.state_dict()
    model.inner.first.data += 5
    kept = model.inner.first
    model.load_state_dict(snapshot)
    return list(snapshot), snapshot["inner.first"], model.inner.first is kept, kept.data


_keys, _saved, _same, _loaded = check.no_raise(check.probe(_snapshot, "state_dict()"), "state")
check.equal(_keys, ["bias", "inner.first", "inner.second"], "keys of state_dict()")
check.equal(
    _saved,
    _first0,
    "state_dict()['inner.first'] after the parameter changed",
    hint="state_dict() returns copies",
)
check.equal(
    _same,
    True,
    "the Parameter object after load_state_dict is the one before",
    hint="copy values into the existing Parameters, in place",
)
check.equal(_loaded, _first0, "inner.first after load_state_dict(snapshot)")


def _bad_load():
    bad = dict(_objects["snapshot"])
    bad["inner.second"] = np.zeros((3, 3), dtype=np.float32)
    del bad["bias"]
    bad["extra.weight"] = np.zeros(4, dtype=np.float32)
    model = _objects["model"]
    model.inner.first.data[:] = 7
    try:
        model.load_state_dict(bad)
    finally:
        _objects["after"] = model.inner.first.data.copy()


_error = check.probe(_bad_load, "load_state_dict with a missing, a mis-shaped, an unexpected key")
check.raises(_error, KeyError, "load_state_dict(bad)")
check.mentions(
    _error,
    ["'bias'", "'inner.second'", "(3, 3)", "(2, 2)", "'extra.weight'"],
    "load_state_dict(bad)",
    hint="list every missing, unexpected and mis-shaped key (with both shapes)",
)
check.equal(
    check.probe(lambda: _objects["after"], "parameters after a failed load"),
    np.full(3, 7, dtype=np.float32),
    "inner.first after a failed load_state_dict",
)


def _flat_load():
    flat = dict(_objects["snapshot"])
    flat["inner.second"] = np.zeros(4, dtype=np.float32)  # 4 values, but shape (4,)
    return state_dict_problems(_objects["model"], flat)


_flat = check.probe(_flat_load, "state_dict_problems with a (4,) array for a (2, 2) key")
check.no_raise(_flat, "state_dict_problems(model, state with 'inner.second' of shape (4,))")
check.equal(
    len(_flat),
    1,
    f"number of problems for one array of shape (4,) where (2, 2) is expected, got {_flat}",
    hint="compare shapes, not sizes",
)
check.done()

# %% [markdown]
# ## Part 3: `Linear` and its initialisation
#
# `Linear(in_features, out_features)` holds `weight` of shape `(out, in)` (PyTorch's
# layout, so state dicts carry over) and `bias` of shape `(out,)`, and computes
# `x @ weight.T + bias`.
#
# **Why the initial values matter.** Each output sums `in` products `x_j · w_j`. If the
# weights were drawn with a fixed spread, that sum's variance would grow with `in`, and
# after a few layers activations (and gradients) would explode or vanish. Scaling the
# spread by `1/√in` keeps it level. PyTorch's default is `kaiming_uniform_(a=√5)`:
#
# ```
#   gain  = √(2 / (1 + a²)) = √(2 / 6) = 1/√3
#   std   = gain / √in
#   bound = √3 · std         = 1/√in        weight ~ U(-bound, +bound)
#   bias  ~ U(-1/√in, +1/√in)
#
#   Linear(784, 256): bound = 1/√784 = 1/28 ≈ 0.0357
# ```
#
# Draw from the `np.random.Generator` passed as `generator` (or a fresh
# `np.random.default_rng()` if none), weight first, then bias, so that the same seed
# gives the same layer. Store both as `dtype` (float32 unless asked otherwise).
#
# **Forward and backward as one `Function`.** `LinearFunction.forward(ctx, x, weight, bias)`
# returns `x @ weight.T + bias` (bias may be `None`) and saves `x` and `weight`;
# `backward(ctx, grad_output)` returns the three gradients of the diagram at the top:
# `grad_output @ weight`, `grad_output.T @ x`, and `grad_output` summed over the batch
# rows. A batch may have more than one leading axis (a sequence model feeds `(B, T, in)`):
# reshape `x` and `grad_output` to 2-D rows `(B·T, …)` first, so that each product is one
# 2-D matrix product (numpy runs a stack of `B` smaller products several times slower),
# and reshape `out` and the input's gradient back. Compute a gradient only when
# `ctx.needs_input_grad` says that input needs one: the input batch of the first layer
# never does, and its gradient is the largest matmul of the backward pass.
#
# In `Linear.forward`, check the input's last dimension before multiplying: numpy's own
# error ("matmul: Input operand 1 has a mismatch in its core dimension 0 ...") names
# neither the layer nor what was expected. Raise a `ValueError` naming the layer and both
# shapes; a 0-d input (a bare number, which has no last dimension) is a `ValueError` too.
# (A dtype check, given, refuses a float64 batch into a float32 layer, which numpy would
# silently compute in float64.)


# %% nbgrader={"grade": false, "grade_id": "nn_linear", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def _as_variable(x) -> Variable:
    return x if isinstance(x, Variable) else Variable(x)


class LinearFunction(Function):
    """x @ weight.T + bias as one graph node, with the gradients written out."""

    @staticmethod
    def forward(ctx, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
        ### BEGIN SOLUTION
        n = math.prod(x.shape[:-1])  # (…, in) → (n, in): one 2-D matrix product
        x_rows = x.reshape(n, x.shape[-1])
        ctx.save_for_backward(x_rows, weight)
        ctx.x_shape = x.shape
        out = x_rows @ weight.T
        if bias is not None:
            out += bias
        return out.reshape(*x.shape[:-1], weight.shape[0])
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output: np.ndarray):
        ### BEGIN SOLUTION
        x_rows, weight = ctx.saved_tensors
        needs_x, needs_weight, needs_bias = ctx.needs_input_grad
        rows = grad_output.reshape(len(x_rows), len(weight))  # (…, out) → (n, out)
        grad_x = (rows @ weight).reshape(ctx.x_shape) if needs_x else None
        grad_weight = rows.T @ x_rows if needs_weight else None
        grad_bias = rows.sum(axis=0) if needs_bias else None
        return grad_x, grad_weight, grad_bias
        ### END SOLUTION


class Linear(Module):
    """`y = x @ weight.T + bias`, with weight (out_features, in_features) and PyTorch's
    default initialisation U(-1/√in, 1/√in), drawn from `generator`."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        generator: np.random.Generator | None = None,
        dtype=np.float32,
    ):
        self.in_features, self.out_features = in_features, out_features
        rng = generator if generator is not None else np.random.default_rng()
        ### BEGIN SOLUTION
        bound = 1.0 / np.sqrt(in_features) if in_features > 0 else 0.0
        weight = rng.uniform(-bound, bound, size=(out_features, in_features))
        self.weight = Parameter(weight.astype(dtype))
        if bias:
            self.bias = Parameter(rng.uniform(-bound, bound, size=out_features).astype(dtype))
        else:
            self.bias = None
        ### END SOLUTION

    def forward(self, x) -> Variable:
        x = _as_variable(x)
        if x.dtype != self.weight.dtype:
            raise TypeError(
                f"{self!r}: input dtype {x.dtype} differs from weight dtype {self.weight.dtype}; "
                f"convert the input (x.astype(np.{self.weight.dtype}))"
            )
        ### BEGIN SOLUTION
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"{self!r}: input of shape {x.shape} does not fit weight of shape "
                f"{self.weight.shape}: the input's last dimension must be {self.in_features}"
            )
        return LinearFunction.apply(x, self.weight, self.bias)
        ### END SOLUTION

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


# %% nbgrader={"grade": true, "grade_id": "test_nn_linear", "locked": true, "points": 18, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from tinytorch_course.checks import Check

check = Check("test_nn_linear", points=18)
_seed = int(check.rng.integers(1 << 30))
_n_in, _n_out = int(check.rng.integers(20, 200)), int(check.rng.integers(5, 50))
_objects = {}


def _init():
    layer = _objects["layer"] = Linear(_n_in, _n_out, generator=np.random.default_rng(_seed))
    again = Linear(_n_in, _n_out, generator=np.random.default_rng(_seed))
    names = [n for n, _ in layer.named_parameters()]
    return names, layer.weight.data, layer.bias.data, again.weight.data


_names, _weight, _bias, _again = check.no_raise(
    check.probe(_init, f"Linear({_n_in}, {_n_out})"), f"Linear({_n_in}, {_n_out})"
)
check.equal(_names, ["weight", "bias"], "Linear's parameter names")
check.equal(_weight.shape, (_n_out, _n_in), "weight shape (out_features, in_features)")
check.equal(_bias.shape, (_n_out,), "bias shape (out_features,)")
check.equal([str(_weight.dtype), str(_bias.dtype)], ["float32", "float32"], "parameter dtypes")
_rng = np.random.default_rng(_seed)
_bound = 1.0 / np.sqrt(_n_in)
_want_w = _rng.uniform(-_bound, _bound, size=(_n_out, _n_in)).astype(np.float32)
_want_b = _rng.uniform(-_bound, _bound, size=_n_out).astype(np.float32)
_hint = "weight first, then bias, each generator.uniform(-1/√in, 1/√in, size=...)"
check.equal(_weight, _want_w, "weight drawn from the generator", hint=_hint)
check.equal(_bias, _want_b, "bias drawn from the generator", hint=_hint)
check.equal(_again, _weight, "weight of a second layer from the same seed")
_x = check.rng.standard_normal((5, _n_in)).astype(np.float32)
_upstream = check.rng.standard_normal((5, _n_out)).astype(np.float32)


def _forward_backward():
    from tinytorch.autograd import Variable as Leaf

    layer = _objects["layer"]
    x = Leaf(_x, requires_grad=True)
    y = layer(x)
    y.backward(_upstream)
    return y.data, layer.weight.grad, layer.bias.grad, x.grad


_y, _gw, _gb, _gx = check.no_raise(check.probe(_forward_backward, "forward and backward"), "Linear")
check.close(
    _y,
    _x @ _want_w.T + _want_b,
    "Linear output",
    rtol=1e-5,
    atol=1e-5,
    hint="y = x @ weight.T + bias",
)
check.close(
    _gw,
    _upstream.T @ _x,
    "weight.grad",
    rtol=1e-4,
    atol=1e-4,
    hint="∂L/∂W = grad_outputᵀ @ x, shape (out, in)",
)
check.close(
    _gb,
    _upstream.sum(axis=0),
    "bias.grad",
    rtol=1e-4,
    atol=1e-5,
    hint="∂L/∂b sums grad_output over the batch",
)
check.close(
    _gx, _upstream @ _want_w, "x.grad", rtol=1e-4, atol=1e-5, hint="∂L/∂x = grad_output @ W"
)
_x3 = check.rng.standard_normal((2, 3, _n_in))


def _batch_of_rank_3():
    from tinytorch.autograd import Variable as Leaf

    layer = Linear(_n_in, _n_out, generator=np.random.default_rng(_seed), dtype=np.float64)
    x = Leaf(_x3, requires_grad=True)
    y = layer(x)
    y.backward(np.ones(y.shape))
    return y.data, layer.weight.grad, layer.bias.grad, x.grad


_y3, _gw3, _gb3, _gx3 = check.no_raise(
    check.probe(_batch_of_rank_3, "a (2, 3, in) batch"), "rank 3"
)
check.equal(_y3.shape, (2, 3, _n_out), "output shape for a (2, 3, in) batch")
check.close(
    _gw3,
    np.ones((6, _n_out)).T @ _x3.reshape(6, _n_in),
    "weight.grad, (2, 3, in) batch",
    hint="flatten the batch axes before grad_outputᵀ @ x",
)
check.close(_gb3, np.full(_n_out, 6.0), "bias.grad, (2, 3, in) batch")
check.close(
    _gx3,
    np.broadcast_to(np.ones(_n_out) @ _want_w.astype(np.float64), (2, 3, _n_in)),
    "x.grad, (2, 3, in) batch",
    rtol=1e-5,
    atol=1e-6,
    hint="∂L/∂x = grad_output @ W has the input's shape (2, 3, in)",
)
check.raises(
    check.probe(lambda: _objects["layer"](np.zeros((5, _n_in + 1), np.float32)), "a wide input"),
    ValueError,
    f"Linear({_n_in}, {_n_out}) on an input of shape (5, {_n_in + 1})",
    hint="check the input's last dimension against in_features",
)


def _no_bias():
    layer = Linear(3, 2, bias=False, generator=np.random.default_rng(2))
    out = layer(np.ones((1, 3), np.float32))
    out.sum().backward()
    return (
        layer.bias is None,
        [n for n, _ in layer.named_parameters()],
        layer.weight.data,
        out.data,
        layer.weight.grad,
    )


_none, _names, _w, _out, _gw = check.no_raise(check.probe(_no_bias, "bias=False"), "bias=False")
check.equal((_none, _names), (True, ["weight"]), "bias=False: (bias is None, names)")
check.close(_out, _w.sum(1, keepdims=True).T, "Linear(3, 2, bias=False) on ones")
check.close(_gw, np.ones((2, 3)), "weight.grad of Linear(3, 2, bias=False) after sum().backward()")


def _edges():
    one = Linear(1, 3, generator=np.random.default_rng(5))
    empty = Linear(0, 2, generator=np.random.default_rng(5))
    single = one(np.ones(1, np.float32))  # one sample of shape (in_features,)
    return one.weight.data, empty.bias.data, single.data


_w1, _b0, _single = check.no_raise(check.probe(_edges, "Linear(1, 3), Linear(0, 2)"), "edges")
_edge_rng = np.random.default_rng(5)
check.equal(_w1, _edge_rng.uniform(-1, 1, size=(3, 1)).astype(np.float32), "Linear(1, 3).weight")
check.equal(_b0, np.zeros(2, np.float32), "Linear(0, 2).bias (bound 0 without inputs)")
check.equal(_single.shape, (3,), "shape of Linear(1, 3) on one sample of shape (1,)")
check.raises(
    check.probe(lambda: Linear(1, 3)(np.float32(2.0)), "Linear(1, 3) on a 0-d input"),
    ValueError,
    "Linear(1, 3) on a 0-d input",
    hint="a 0-d input has no last dimension: refuse it like a wrong width",
)
check.done()

# %% [markdown]
# Part 3 asks for a `ValueError` that names the layer and both shapes when the input's
# width does not fit:

# %% nbgrader={"grade": true, "grade_id": "test_nn_linear_messages", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from tinytorch_course.checks import Check

check = Check("test_nn_linear_messages", points=2)
_n_in = int(check.rng.integers(20, 200))
_error = check.probe(
    lambda: Linear(_n_in, 7)(np.zeros((5, _n_in + 3), np.float32)), "a too wide input"
)
check.raises(_error, ValueError, f"Linear({_n_in}, 7) on an input of shape (5, {_n_in + 3})")
check.mentions(
    _error,
    ["Linear", f"(5, {_n_in + 3})", f"(7, {_n_in})"],
    f"Linear({_n_in}, 7) on an input of shape (5, {_n_in + 3})",
    hint="name the layer, the input's shape and the weight's shape",
)
check.done()

# %% [markdown]
# ## Part 4: activations and `Sequential`
#
# Without a non-linearity between them, two `Linear` layers collapse into one
# (`(x @ W1ᵀ) @ W2ᵀ = x @ (W2 W1)ᵀ`). The activations wrap the engine's element-wise
# operations as modules, so that they can sit in a `Sequential`:
#
# ```
#    ReLU     max(x, 0)          gradient 1 where x > 0, else 0
#    Tanh     tanh(x)            gradient 1 - tanh(x)²
#    Sigmoid  1 / (1 + e^(-x))   gradient σ(x)(1 - σ(x))
# ```
#
# `Sequential(*layers)` stores its layers as attributes named `"0"`, `"1"`, ... (so
# parameter names are `"0.weight"` as in PyTorch) and its `forward` feeds each layer's
# output into the next.


# %% nbgrader={"grade": false, "grade_id": "nn_sequential", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class ReLU(Module):
    """max(x, 0), element-wise."""

    def forward(self, x) -> Variable:
        return _as_variable(x).relu()


class Tanh(Module):
    """tanh(x), element-wise."""

    def forward(self, x) -> Variable:
        return _as_variable(x).tanh()


class Sigmoid(Module):
    """1 / (1 + exp(-x)), element-wise."""

    def forward(self, x) -> Variable:
        return _as_variable(x).sigmoid()


class Sequential(Module):
    """Layers applied one after another; layer i is the attribute named `str(i)`."""

    def __init__(self, *layers: Module):
        for index, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(
                    f"Sequential: layer {index} is a {type(layer).__name__}, not a Module"
                )
            setattr(self, str(index), layer)

    def __len__(self) -> int:
        return sum(1 for name in vars(self) if name.isdigit())

    def __getitem__(self, index: int | slice) -> Module:
        """Layer `index` (negative counts from the end); a slice gives a Sequential of
        those layers (the same layer objects, so they share parameters)."""
        positions = range(len(self))[index]
        if isinstance(positions, range):
            return Sequential(*(getattr(self, str(i)) for i in positions))
        return getattr(self, str(positions))

    def __iter__(self) -> Iterator[Module]:
        # vars() keeps assignment order, which is index order: one pass, no lookups.
        return (layer for name, layer in vars(self).items() if name.isdigit())

    def forward(self, x) -> Variable:
        ### BEGIN SOLUTION
        for layer in self:
            x = layer(x)
        return x
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_nn_sequential", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from tinytorch_course.checks import Check

check = Check("test_nn_sequential", points=10)
_seed = int(check.rng.integers(1 << 30))
_x = check.rng.standard_normal((6, 4)).astype(np.float32)
_z = check.rng.standard_normal(5).astype(np.float32) * 3


def _run():
    rng = np.random.default_rng(_seed)
    net = Sequential(Linear(4, 8, generator=rng), ReLU(), Linear(8, 3, generator=rng), Tanh())
    names = [n for n, _ in net.named_parameters()]
    weights = [net[0].weight.data, net[0].bias.data, net[2].weight.data, net[2].bias.data]
    return len(net), names, weights, net(_x).data


_length, _names, (_w0, _b0, _w2, _b2), _out = check.no_raise(
    check.probe(_run, "a Sequential"), "net"
)
check.equal(_length, 4, "len(Sequential(Linear, ReLU, Linear, Tanh))")
check.equal(_names, ["0.weight", "0.bias", "2.weight", "2.bias"], "parameter names")
_h = np.maximum(_x @ _w0.T + _b0, 0)
check.close(
    _out,
    np.tanh(_h @ _w2.T + _b2),
    "Sequential(Linear, ReLU, Linear, Tanh)(x)",
    rtol=1e-5,
    atol=1e-6,
    hint="feed each layer's output into the next, in order",
)
check.close(
    check.probe(lambda: Sigmoid()(_z).data, "Sigmoid()(z)"),
    1 / (1 + np.exp(-_z)),
    "Sigmoid()(z)",
    rtol=1e-5,
    atol=1e-7,
)
check.equal(
    check.probe(lambda: Sequential()(Variable(_x)).data, "Sequential()(x)"), _x, "Sequential()(x)"
)
check.done()

# %% [markdown]
# ## Part 5: mean squared error
#
# `mse_loss(prediction, target)` is `mean((prediction - target)²)`, made from the
# engine's own `-`, `**` and `mean`, so its gradient `2 (prediction - target) / n` comes
# for free. One check first: numpy would silently broadcast a prediction of shape
# `(N, 1)` against a target of shape `(N,)` into an `(N, N)` matrix, a classic bug that
# trains on nonsense without any error. Require equal shapes and say so.
#
# `reduction="sum"` gives the sum instead of the mean.


# %% nbgrader={"grade": false, "grade_id": "nn_mse", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def _check_reduction(where: str, reduction: str) -> None:
    if reduction not in ("mean", "sum"):
        raise ValueError(f"{where}: reduction must be 'mean' or 'sum', got {reduction!r}")


def mse_loss(prediction, target, reduction: str = "mean") -> Variable:
    """Mean (or sum) of squared differences; shapes must match exactly."""
    _check_reduction("mse_loss", reduction)
    prediction = _as_variable(prediction)
    if not isinstance(target, Variable):  # keep float32 float32: no silent upcast
        target = np.asarray(target, dtype=prediction.dtype)
    ### BEGIN SOLUTION
    if np.shape(target) != prediction.shape:
        raise ValueError(
            f"mse_loss: prediction has shape {prediction.shape} but target has shape "
            f"{np.shape(target)}; they must match (reshape one, numpy would broadcast them)"
        )
    squared = (prediction - target) ** 2
    return squared.mean() if reduction == "mean" else squared.sum()
    ### END SOLUTION


class MSELoss(Module):
    """Module form of `mse_loss`."""

    def __init__(self, reduction: str = "mean"):
        _check_reduction("MSELoss", reduction)
        self.reduction = reduction

    def forward(self, prediction, target) -> Variable:
        return mse_loss(prediction, target, self.reduction)


# %% nbgrader={"grade": true, "grade_id": "test_nn_mse", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from tinytorch_course.checks import Check

check = Check("test_nn_mse", points=10)
_pred0 = check.rng.standard_normal((3, 2)).astype(np.float32)
_target = check.rng.standard_normal((3, 2)).astype(np.float32)


def _mse(reduction):
    from tinytorch.autograd import Variable as Leaf

    pred = Leaf(_pred0, requires_grad=True)
    loss = MSELoss(reduction)(pred, _target)
    loss.backward()
    return loss.item(), pred.grad


_diff = _pred0.astype(np.float64) - _target
for _reduction, _scale in (("mean", 1 / 6), ("sum", 1.0)):
    _value, _grad = check.no_raise(check.probe(lambda r=_reduction: _mse(r), _reduction), "mse")
    check.close(
        _value,
        _scale * (_diff**2).sum(),
        f"MSELoss({_reduction!r}) value",
        rtol=1e-5,
        hint="mean (over all 6 elements) or sum of (prediction - target)²",
    )
    check.close(
        _grad,
        2 * _scale * _diff,
        f"prediction.grad of MSELoss({_reduction!r})",
        rtol=1e-5,
        atol=1e-7,
    )
_column = check.rng.standard_normal((4, 1)).astype(np.float32)
check.raises(
    check.probe(lambda: mse_loss(_column, _column.ravel()), "mse_loss((4, 1), (4,))"),
    ValueError,
    "mse_loss(prediction (4, 1), target (4,))",
    hint="shapes must match exactly: numpy would broadcast them to (4, 4)",
)
check.done()

# %% [markdown]
# ## Part 6: cross-entropy as one `Function`
#
# For logits `z` of shape `(N, C)` and integer targets `t` of shape `(N,)`:
#
# ```
#   log_softmax(z)[i, c] = z[i, c] - m[i] - log Σ_k exp(z[i, k] - m[i]),   m[i] = max_k z[i, k]
#   loss                 = -(1/N) Σ_i log_softmax(z)[i, t[i]]
#   ∂loss/∂z[i, c]       = (softmax(z)[i, c] - [c == t[i]]) / N
# ```
#
# With module 01's operations this is one line,
# `-(logits.log_softmax(axis=1)[np.arange(N), targets]).mean()`: four graph nodes (the
# log-softmax, the indexing, the mean, the minus sign) and four backward passes. The last
# line above says the whole backward is one subtraction, so here it becomes one node.
#
# Write it as a `Function` (module 01's contract): `forward(ctx, logits, targets, scale)`
# returns the loss as a 0-d array and saves what `backward` needs (the softmax, the
# targets and the scale, which is `1/N` for the mean and `1` for the sum);
# `backward(ctx, grad_output)` returns the gradient for the logits and `None` for the
# targets and the scale. Keep the arithmetic in the logits' dtype.
#
# `cross_entropy` (given) checks its inputs first and says what is wrong: logits that
# are not 2-D, targets that are not integers (class *indices*, not one-hot rows or
# floats), a batch size that differs, or a class index outside `0 .. C-1`.


# %% nbgrader={"grade": false, "grade_id": "nn_cross_entropy", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class CrossEntropy(Function):
    """Mean (or summed) cross-entropy of logits (N, C) against class indices (N,),
    through a log-softmax that subtracts each row's maximum."""

    @staticmethod
    def forward(ctx, logits: np.ndarray, targets: np.ndarray, scale: float) -> np.ndarray:
        ### BEGIN SOLUTION
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        sums = exp.sum(axis=1, keepdims=True)
        rows = np.arange(len(targets))
        picked = shifted[rows, targets] - np.log(sums[:, 0])
        exp /= sums  # exp now holds softmax(logits)
        ctx.save_for_backward(exp, targets)
        ctx.scale = scale
        return np.asarray(-picked.sum() * scale, dtype=logits.dtype)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output: np.ndarray):
        ### BEGIN SOLUTION
        softmax, targets = ctx.saved_tensors
        grad = softmax.copy()
        grad[np.arange(len(targets)), targets] -= 1
        grad *= grad_output * ctx.scale
        return grad, None, None
        ### END SOLUTION


def _class_targets(targets, logits_shape: tuple) -> np.ndarray:
    """`targets` as an integer array (N,) of valid class indices, or a clear error."""
    if isinstance(targets, Variable):
        targets = targets.data
    targets = np.asarray(targets)
    if targets.dtype.kind not in "iu":
        raise TypeError(
            f"cross_entropy: targets must be integer class indices of shape (N,), got dtype "
            f"{targets.dtype} and shape {targets.shape} (a Variable stores float32: pass the "
            f"numpy integer array itself, e.g. np.array([2, 0, 1]))"
        )
    if len(logits_shape) != 2:
        raise ValueError(f"cross_entropy: logits must have shape (N, C), got {logits_shape}")
    batch, classes = logits_shape
    if targets.shape != (batch,):
        raise ValueError(
            f"cross_entropy: logits of shape {logits_shape} need targets of shape ({batch},), "
            f"got {targets.shape}"
        )
    if batch and (targets.min() < 0 or targets.max() >= classes):
        bad = np.flatnonzero((targets < 0) | (targets >= classes))
        raise IndexError(
            f"cross_entropy: target {targets[bad[0]]} at position {bad[0]} is out of range for "
            f"{classes} classes (valid class indices: 0 .. {classes - 1})"
        )
    return targets


def cross_entropy(logits, targets, reduction: str = "mean") -> Variable:
    """Cross-entropy of `logits` (N, C) against integer class `targets` (N,)."""
    _check_reduction("cross_entropy", reduction)
    logits = _as_variable(logits)
    targets = _class_targets(targets, logits.shape)
    scale = 1.0 / len(targets) if reduction == "mean" else 1.0
    return CrossEntropy.apply(logits, targets, scale)


class CrossEntropyLoss(Module):
    """Module form of `cross_entropy`."""

    def __init__(self, reduction: str = "mean"):
        _check_reduction("CrossEntropyLoss", reduction)
        self.reduction = reduction

    def forward(self, logits, targets) -> Variable:
        return cross_entropy(logits, targets, self.reduction)


# %% nbgrader={"grade": true, "grade_id": "test_nn_cross_entropy", "locked": true, "points": 20, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from tinytorch_course.checks import Check

check = Check("test_nn_cross_entropy", points=20)


def _reference(z, t, scale):
    z = z.astype(np.float64)
    log_softmax = z - z.max(1, keepdims=True)
    log_softmax -= np.log(np.exp(log_softmax).sum(1, keepdims=True))
    grad = np.exp(log_softmax)
    grad[np.arange(len(t)), t] -= 1
    return -log_softmax[np.arange(len(t)), t].sum() * scale, grad * scale


def _run(z, t, reduction="mean", upstream=None, times=1):
    from tinytorch.autograd import Variable as Leaf

    logits = Leaf(z, requires_grad=True)
    loss = CrossEntropyLoss(reduction)(logits, t)
    for _ in range(times):
        seed = None if upstream is None else np.asarray(upstream, dtype=z.dtype)
        loss.backward(seed, retain_graph=True)
    return loss.item(), str(loss.dtype), logits.grad


_z = check.rng.standard_normal((5, 4)).astype(np.float32)
_t = check.rng.integers(0, 4, 5)
_value, _dtype, _grad = check.no_raise(check.probe(lambda: _run(_z, _t), "cross_entropy"), "ce")
_want, _want_grad = _reference(_z, _t, 1 / 5)
check.close(_value, _want, "cross_entropy(z, t) (mean)", rtol=1e-5)
check.equal(_dtype, "float32", "dtype of the loss of float32 logits")
check.close(
    _grad, _want_grad, "logits.grad", rtol=1e-4, atol=1e-6, hint="(softmax(z) - onehot(t)) / N"
)
_z64 = check.rng.standard_normal((6, 3)) * 30
_t64 = check.rng.integers(0, 3, 6)
_value, _, _grad = check.no_raise(
    check.probe(lambda: _run(_z64, _t64, "sum"), "reduction='sum', float64"), "ce sum"
)
_want, _want_grad = _reference(_z64, _t64, 1.0)
check.close(_value, _want, "cross_entropy(z, t, reduction='sum') of float64 logits", rtol=1e-10)
check.close(_grad, _want_grad, "logits.grad with reduction='sum'", rtol=1e-9, atol=1e-12)
_big = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 0.0]], dtype=np.float32)
_value, _, _grad = check.no_raise(
    check.probe(lambda: _run(_big, np.array([1, 1])), "logits of ±1e4"), "big logits"
)
check.close(
    _value,
    5e3,
    "loss of logits ±1e4 (row 0 misses by 1e4, row 1 is right)",
    rtol=1e-4,
    hint="subtract each row's maximum before exp",
)
check.expect(np.all(np.isfinite(_grad)), f"the gradient for logits of ±1e4 has inf/nan: {_grad}")
check.raises(
    check.probe(lambda: cross_entropy(_z, _t.astype(np.float64)), "float targets"),
    TypeError,
    "cross_entropy(z, float targets)",
)
check.raises(
    check.probe(lambda: cross_entropy(_z, np.array([0, 1, 2, 3, 4])), "target 4 of 4 classes"),
    IndexError,
    "cross_entropy(z of 4 classes, targets with a 4)",
)
_one = np.zeros((1, 4))
_value, _, _grad = check.no_raise(
    check.probe(lambda: _run(_one, np.array([2]), "sum"), "uniform"), "uniform"
)
check.close(_value, np.log(4), "loss of four equal logits", rtol=1e-12)
check.close(_grad, [[0.25, 0.25, -0.75, 0.25]], "gradient of four equal logits", rtol=1e-12)
_far = np.array([[-1e4, -1e4 + 1, -1e4 + 2], [1e4, 0.0, -1e4]])
_value, _, _grad = check.no_raise(
    check.probe(lambda: _run(_far, np.array([2, 0])), "rows with maxima -9998 and 1e4"), "far"
)
_want, _want_grad = _reference(_far, np.array([2, 0]), 1 / 2)
check.close(
    _value,
    _want,
    "loss of rows whose maxima are -9998 and 1e4",
    rtol=1e-9,
    hint="subtract each row's own maximum (one maximum for the batch underflows row 0)",
)
check.close(_grad, _want_grad, "gradient of rows whose maxima are -9998 and 1e4", atol=1e-12)
_zu = check.rng.standard_normal((3, 5))
_tu = check.rng.integers(0, 5, 3)
_upstream = float(check.rng.uniform(0.5, 3.0))
_, _, _grad = check.no_raise(
    check.probe(lambda: _run(_zu, _tu, "mean", _upstream, 2), "backward(g) twice"), "twice"
)
check.close(
    _grad,
    2 * _upstream * _reference(_zu, _tu, 1 / 3)[1],
    f"logits.grad after loss.backward({_upstream:.4f}, retain_graph=True) twice",
    rtol=1e-9,
    atol=1e-12,
    hint="multiply by grad_output, and leave the saved softmax unchanged (work on a copy)",
)
check.done()

# %% [markdown]
# ## Part 7: the memory picture, measured
#
# `describe(model, input_shape)` runs one forward pass on zeros (under `no_grad`, so no
# graph is kept) and records, for every layer without sub-layers, its parameters and the
# shape and bytes of its output. It is the tool that drew the table at the top of this
# notebook. It temporarily gives each layer an instance attribute `forward` that
# records the output, and removes it afterwards.


# %% nbgrader={"grade": false, "grade_id": "nn_describe", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| export
def box_table(
    headers: Sequence[str], rows: Sequence[Sequence[str] | None], right: Sequence[bool]
) -> str:
    """A table drawn with box characters; a row of `None` is a separator line.
    Columns flagged in `right` are right-aligned (numbers)."""
    widths = [
        max([len(h)] + [len(r[i]) for r in rows if r is not None]) for i, h in enumerate(headers)
    ]

    def line(left: str, mid: str, end: str) -> str:
        return left + mid.join("─" * (w + 2) for w in widths) + end

    def cells(values: Sequence[str], align: Sequence[bool]) -> str:
        parts = [
            v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, align, strict=True)
        ]
        return "│ " + " │ ".join(parts) + " │"

    out = [line("┌", "┬", "┐"), cells(headers, [False] * len(headers)), line("├", "┼", "┤")]
    out += [line("├", "┼", "┤") if r is None else cells(r, right) for r in rows]
    return "\n".join(out + [line("└", "┴", "┘")])


def _leaf_modules(model: Module) -> list[tuple[str, Module]]:
    modules = list(model.named_modules())
    leaves = [
        (n, m) for n, m in modules if not any(isinstance(v, Module) for _, v in m._children())
    ]
    return [(n or type(m).__name__, m) for n, m in leaves]


def describe(model: Module, input_shape: tuple, dtype=np.float32) -> str:
    """A table of each leaf layer's parameters and output (shape and bytes), measured
    by running `model` once on zeros of `input_shape`."""
    leaves = _leaf_modules(model)
    outputs: dict[int, np.ndarray] = {}

    def recording(module: Module):
        forward = type(module).forward

        def record(*args, **kwargs):
            result = forward(module, *args, **kwargs)
            outputs[id(module)] = (
                result.data if isinstance(result, Variable) else np.asarray(result)
            )
            return result

        return record

    for _, module in leaves:
        module.forward = recording(module)
    try:
        with no_grad():
            model(np.zeros(input_shape, dtype=dtype))
    finally:
        for _, module in leaves:
            del module.forward
    rows: list[list[str] | None] = []
    total_params = total_bytes = total_out = 0
    for name, module in leaves:
        params = [(n, p) for n, p in module._children() if isinstance(p, Parameter)]
        out = outputs.get(id(module))
        out_cells = [str(out.shape), f"{out.nbytes:,}"] if out is not None else ["(not run)", ""]
        first = params[0] if params else None
        label = f"{first[0]} {first[1].shape}" if first else ""
        rows.append(
            [
                name,
                type(module).__name__,
                label,
                f"{first[1].data.nbytes:,}" if first else "0",
                *out_cells,
            ]
        )
        for n, p in params[1:]:
            rows.append(["", "", f"{n} {p.shape}", f"{p.data.nbytes:,}", "", ""])
        total_params += sum(p.data.size for _, p in params)
        total_bytes += sum(p.data.nbytes for _, p in params)
        total_out += out.nbytes if out is not None else 0
    rows += [
        None,
        ["total", "", f"{total_params:,} parameters", f"{total_bytes:,}", "", f"{total_out:,}"],
    ]
    headers = ["layer", "type", "parameters", "param bytes", "output", "out bytes"]
    return box_table(headers, rows, [False, False, False, True, False, True])


# %%
#| export
# Layers that later modules add (06: tinytorch.conv, 07: tinytorch.attention) are found
# here too, so that `tinytorch.nn.Conv2d` works as in PyTorch once they are exported.
_LATER = {"conv": "module 06", "attention": "module 07"}


def __getattr__(name: str):
    """PEP 562: a name this module lacks, looked up in the later layer modules."""
    if name.startswith("__"):  # the import system asks for __path__ and the like
        raise AttributeError(f"module 'tinytorch.nn' has no attribute {name!r}")
    import importlib

    for submodule in _LATER:
        try:
            module = importlib.import_module(f"tinytorch.{submodule}")
        except ModuleNotFoundError as error:
            if error.name != f"tinytorch.{submodule}":
                raise
            continue
        if name in getattr(module, "__all__", ()):
            return getattr(module, name)
    later = " or ".join(f"tinytorch.{m} ({b})" for m, b in _LATER.items())
    raise AttributeError(
        f"module 'tinytorch.nn' has no attribute {name!r}, and neither has {later}, "
        "where exported: a layer of a later module needs that module exported first"
    )


# %% [markdown]
# ## Part 8: integration test: a network learns
#
# Everything together: a 2-16-2 MLP learns to separate two interleaved half-moons with
# plain gradient descent written in three lines. The table is `describe` on your model;
# the graph at the end is the one your engine records for its loss: one node per
# `Linear`, one per activation, one for the loss.


# %% nbgrader={"grade": true, "grade_id": "test_nn_integration", "locked": true, "points": 15, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from tinytorch_course.checks import Check
from tinytorch.viz import draw_graph

check = Check("test_nn_integration", points=15)


def _two_moons(n, rng):
    angle = rng.uniform(0, np.pi, n)
    labels = rng.integers(0, 2, n)
    x = np.stack([np.cos(angle) + labels, np.sin(angle) * (1 - 2 * labels) + 0.5 * labels], axis=1)
    return (x + rng.normal(0, 0.1, x.shape)).astype(np.float32), labels


_x, _labels = _two_moons(200, check.rng)
_seed = int(check.rng.integers(1 << 30))


def _train():
    rng = np.random.default_rng(_seed)
    model = Sequential(Linear(2, 16, generator=rng), Tanh(), Linear(16, 2, generator=rng))
    print(describe(model, (200, 2)))
    losses = []
    for _ in range(300):
        model.zero_grad()
        loss = cross_entropy(model(_x), _labels)
        loss.backward()
        for p in model.parameters():
            p.data -= 0.5 * p.grad
        losses.append(loss.item())
    accuracy = float((model(_x).data.argmax(1) == _labels).mean())
    print(f"loss {losses[0]:.3f} -> {losses[-1]:.3f}, training accuracy {accuracy:.1%}")
    restored = Sequential(Linear(2, 16), Tanh(), Linear(16, 2))
    restored.load_state_dict(model.state_dict())
    for name, parameter in model.named_parameters():
        parameter.name = name  # draw_graph labels a Variable with its name
    print("\nThe graph your engine records for the loss of this model (module 01's draw_graph):")
    print(draw_graph(cross_entropy(model(Variable(_x, name="x")), _labels)))
    return losses[0], losses[-1], accuracy, restored(_x).data, model(_x).data


_first, _last, _accuracy, _restored, _outputs = check.no_raise(
    check.probe(_train, "300 steps of training"), "training"
)
check.expect(
    _last < 0.5 * _first,
    f"the loss should at least halve in 300 steps: {_first:.3f} -> {_last:.3f}",
)
check.expect(_accuracy > 0.95, f"the MLP should separate the two moons, got {_accuracy:.1%}")
check.equal(_restored, _outputs, "outputs of a model loaded from state_dict()")
check.done()

# %% [markdown]
# ## What you built
#
# - `Parameter` and `Module`: parameters found from attributes with dotted names,
#   `zero_grad`, `train`/`eval`, and strict `state_dict`/`load_state_dict`.
# - `Linear` with PyTorch's layout and initialisation, seeded through a generator, and
#   an error that names the layer and both shapes when an input does not fit.
# - `ReLU`, `Tanh`, `Sigmoid`, `Sequential`; `mse_loss`/`MSELoss`, and
#   `cross_entropy`/`CrossEntropyLoss` as one `Function` that cannot overflow.
# - `describe`: parameters and activations, with bytes, measured from a live model.
#
# **Where it goes next.** The three-line update in the last test is an optimizer.
# Module 03 turns it into `SGD` and `Adam` with PyTorch's exact update rules, and
# measures what they cost in memory per parameter.
