# %% [markdown]
# # Optimizers
#
# > SGD (momentum, dampening, Nesterov, weight decay), Adam, AMSGrad and AdamW with PyTorch's exact update rules, and optimizer state you can save and restore.

# %% [markdown]
# ## What we're building today
#
# Module 02 ended with a training loop whose update was one line,
# `p.data -= lr * p.grad`. That line is an optimizer: plain stochastic gradient descent.
# The optimizers that train real networks remember things between steps (a running
# average of gradients, of squared gradients, a step count), and that memory is what
# this module is about:
#
# ```
#     Your code:                               What happens behind the scenes:
#     ──────────                               ───────────────────────────────
#
#     opt = Adam(model.parameters(),           checks every parameter requires grad;
#                lr=1e-3)                      no state yet
#
#     loss.backward()                          your engine fills p.grad
#
#     opt.step()                               for every p with a gradient:
#                                                m ← β1·m + (1-β1)·g   (m, v: zeros
#                                                v ← β2·v + (1-β2)·g²   at step 1)
#                                                p ← p - lr·m̂ / (√v̂ + ε)
#                                              all in place, in p's dtype
#
#     opt.zero_grad()                          every p.grad ← None
#
#     save(opt.state_dict())                   m, v and the step count of every p:
#                                              a run can stop and resume exactly
# ```

# %% [markdown]
# ## The update as a graph
#
# An optimizer step is not recorded by autograd (it runs on `.data`, outside the graph),
# but it is a small computation graph of its own, run once per parameter. SGD with
# momentum and weight decay, in PyTorch's order:
#
# ```
#     p.grad ──┐
#              ├──[+ wd·p]──> g ──┐
#     p ───────┘                  ├──[buf ← μ·buf + (1-τ)·g]──> buf ──┐
#                        buf ─────┘     (first step: buf ← g)         │
#                                                                     ▼
#                              nesterov?  g + μ·buf  :  buf  ──> d ──[p ← p - lr·d]
# ```
#
# `μ` is the momentum, `τ` the dampening, `wd` the weight decay. Adam keeps two buffers
# instead of one and divides instead of adding:
#
# ```
#     g ──┬──[m ← β1·m + (1-β1)·g ]──> m ──[÷ (1-β1^t)]──> m̂ ──┐
#         │                                                    ├──[p ← p - lr·m̂/(√v̂+ε)]
#         └──[v ← β2·v + (1-β2)·g²]──> v ──[÷ (1-β2^t)]──> v̂ ──┘
# ```
#
# The divisions by `1 - β^t` are the *bias correction*: `m` and `v` start at zero, so
# for small `t` they underestimate the averages they track; dividing by `1 - β^t`
# (the total weight the average has collected so far) undoes exactly that.

# %% [markdown]
# ## Memory layout: what each optimizer keeps per parameter
#
# Measured from live optimizers after one step on the MLP 784-256-128-10 (float32,
# 235,146 parameters, 940,584 bytes) with `memory_table` (defined at the end of this
# module):
#
# <!-- memory:mlp -->
# ```
# ┌────────────────────┬───────────────────────────────────────────┬─────────────┬─────────────┬──────────┐
# │ optimizer          │ state per parameter                       │ state bytes │ bytes/param │ × params │
# ├────────────────────┼───────────────────────────────────────────┼─────────────┼─────────────┼──────────┤
# │ SGD                │ (none)                                    │           0 │        0.00 │     0.00 │
# │ SGD(momentum=0.9)  │ momentum_buffer                           │     940,584 │        4.00 │     1.00 │
# │ Adam               │ step, exp_avg, exp_avg_sq                 │   1,881,168 │        8.00 │     2.00 │
# │ Adam(amsgrad=True) │ step, exp_avg, exp_avg_sq, max_exp_avg_sq │   2,821,752 │       12.00 │     3.00 │
# │ AdamW              │ step, exp_avg, exp_avg_sq                 │   1,881,168 │        8.00 │     2.00 │
# └────────────────────┴───────────────────────────────────────────┴─────────────┴─────────────┴──────────┘
# ```
# <!-- /memory:mlp -->
#
# (`step` is one Python integer per parameter tensor, not per element; the bytes count
# the arrays.) So training with Adam holds the parameters, their gradients and twice
# their size again in optimizer state: four copies of the model.

# %% [markdown]
# ## Adam, step by step with real numbers
#
# One parameter `p = 1.0`, loss `p²` (so the gradient is `2p`), `lr = 0.1`, default
# betas (0.9, 0.999) and eps 1e-8. Every number below was produced by this module's
# `Adam`:
#
# <!-- trace:adam -->
# ```
# t=1  g=2.000000  m=0.200000  v=0.004000  m̂=2.000000  v̂=4.000000  p: 1.000000 -> 0.900000
# t=2  g=1.800000  m=0.360000  v=0.007236  m̂=1.894737  v̂=3.619810  p: 0.900000 -> 0.800412
# t=3  g=1.600824  m=0.484082  v=0.009791  m̂=1.786282  v̂=3.267067  p: 0.800412 -> 0.701586
# ```
# <!-- /trace:adam -->
#
# The first step moves `p` by almost exactly `lr`: with bias correction `m̂/√v̂` is
# `g/|g| = 1`. Adam's step size is set by `lr`, not by the size of the gradient, which
# is why the same `lr` works for layers whose gradients differ by orders of magnitude.

# %% [markdown]
# ## Real-world context: optimizer state at large-model scale
#
# The same bytes-per-parameter arithmetic at GPT-3's size (175 billion parameters),
# everything in float32 (real runs keep some of it in 16-bit formats, which halves
# those rows):
#
# <!-- scale:gpt3 -->
# ```
# ┌──────────────────────────────┬───────────────────┐
# │ 175e9 parameters, float32    │ bytes             │
# ├──────────────────────────────┼───────────────────┤
# │ parameters                   │   700,000,000,000 │
# │ gradients                    │   700,000,000,000 │
# │ Adam exp_avg + exp_avg_sq    │ 1,400,000,000,000 │
# │ training with Adam, total    │ 2,800,000,000,000 │
# ├──────────────────────────────┼───────────────────┤
# │ SGD(momentum) buffer instead │   700,000,000,000 │
# │ training with SGD, total     │ 2,100,000,000,000 │
# └──────────────────────────────┴───────────────────┘
# ```
# <!-- /scale:gpt3 -->
#
# Half of Adam's total is its own state, before a single activation is stored. This is
# why large runs shard optimizer state across devices (ZeRO, Rajbhandari et al., 2020)
# or choose optimizers that keep less of it.

# %% [markdown]
# ## Why this matters: before and after an optimizer object
#
# ```
#     Before (update by hand):                 After (an Optimizer):
#     ────────────────────────                 ─────────────────────
#     velocity = {id(p): None for p in ...}    opt = SGD(model.parameters(), lr=0.1,
#     for p in model.parameters():                       momentum=0.9, nesterov=True)
#         g = p.grad                           opt.step()
#         v = velocity[id(p)]                  opt.zero_grad()
#         v = g if v is None else mu*v + g
#         velocity[id(p)] = v                  switching to Adam: one line
#         p.data -= lr * (g + mu * v)          resuming a run: opt.load_state_dict(...)
#
#     the state lives in your loop's           the state lives in the optimizer, is
#     variables and is lost when it stops      checked, saved and restored with it
# ```
#
# Now let's build it.

# %%
#| default_exp optim

# %%
#| export
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from tinytorch.autograd import Variable
from tinytorch.nn import box_table

# %% [markdown]
# ## Part 1: the `Optimizer` base class
#
# Every optimizer does the same bookkeeping; only the update of one parameter differs.
# The base class keeps:
#
# - `param_groups`: a list of dicts, each `{"params": [...], "lr": ..., ...}`. Most
#   code passes one list of parameters, which becomes one group; passing a list of
#   dicts gives groups their own settings (a different `lr` per layer, say), as in
#   PyTorch. Each group is the optimizer's `defaults` updated with the group's keys.
# - `state`: a dict from parameter to that parameter's own dict of buffers, filled
#   lazily by the first `step()` that sees a gradient for it.
#
# Checking the parameters when the optimizer is *built* catches mistakes where they
# were made: a parameter with `requires_grad=False` never gets a gradient, so an
# optimizer would silently never train it. Your `check_parameter` must raise a
# `ValueError` that names the optimizer, the parameter's position and its shape, for
# anything that is not a `Variable` (a `TypeError`) or does not require grad.
#
# `zero_grad()` sets every `.grad` to `None` (PyTorch 2's default,
# `set_to_none=True`): no memory is kept between steps and the next `backward()`
# writes a fresh array. `zero_grad(set_to_none=False)` fills the existing arrays with
# zeros instead.


# %% nbgrader={"grade": false, "grade_id": "optim_base", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def check_parameter(owner: str, index: int, parameter) -> None:
    """Raise if `parameter` (number `index` in `owner`'s list) cannot be optimized."""
    ### BEGIN SOLUTION
    if not isinstance(parameter, Variable):
        raise TypeError(
            f"{owner}: parameter {index} is a {type(parameter).__name__}, not a Variable; "
            "pass model.parameters()"
        )
    if not parameter.requires_grad:
        raise ValueError(
            f"{owner}: parameter {index} (shape {parameter.shape}) has requires_grad=False, so it "
            "never gets a gradient and would never be updated; set requires_grad=True or leave it out"
        )
    ### END SOLUTION


class Optimizer:
    """Holds parameter groups and per-parameter state; subclasses define `update`."""

    def __init__(self, params: Iterable, defaults: dict):
        self.defaults = dict(defaults)
        self.state: dict[Variable, dict] = {}
        self.param_groups: list[dict] = []
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict) -> None:
        """Add a group of parameters with its own settings (missing ones from `defaults`)."""
        name = type(self).__name__
        params = list(group["params"])
        if not params:
            raise ValueError(f"{name}: parameter group {len(self.param_groups)} is empty")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        offset = sum(len(g["params"]) for g in self.param_groups)
        for index, parameter in enumerate(params, start=offset):
            check_parameter(name, index, parameter)
            if id(parameter) in seen:
                raise ValueError(f"{name}: parameter {index} appears more than once")
            seen.add(id(parameter))
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise ValueError(f"{name}: unknown settings {sorted(unknown)} in a parameter group")
        self.param_groups.append({**self.defaults, **group, "params": params})

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient: `None` (default), or zeros in place."""
        ### BEGIN SOLUTION
        for group in self.param_groups:
            for parameter in group["params"]:
                if set_to_none:
                    parameter.grad = None
                elif parameter.grad is not None:
                    parameter.grad.fill(0)
        ### END SOLUTION

    def step(self) -> None:
        """Update every parameter that has a gradient (those without one are skipped)."""
        for group in self.param_groups:
            for parameter in group["params"]:
                if parameter.grad is not None:
                    state = self.state.setdefault(parameter, {})
                    self.update(parameter, parameter.grad, state, group)

    def update(self, parameter: Variable, grad: np.ndarray, state: dict, group: dict) -> None:
        """Change `parameter.data` in place, using and updating its `state`."""
        raise NotImplementedError(f"{type(self).__name__} does not define update()")

    def state_dict(self) -> dict:
        """Buffers and settings, parameters referred to by position (Part 5)."""
        return optimizer_state_dict(self)

    def load_state_dict(self, saved: dict) -> None:
        """Install a state saved by `state_dict()`, after checking it fits (Part 5)."""
        load_optimizer_state_dict(self, saved)

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v}" for k, v in self.defaults.items())
        return f"{type(self).__name__}({settings})"


# %% nbgrader={"grade": true, "grade_id": "test_optim_base", "locked": true, "points": 15, "schema_version": 3, "solution": false, "task": false}
class _Halve(Optimizer):
    """A toy optimizer for this test: p ← p - lr·g, counting its steps in the state."""

    def __init__(self, params, lr=0.5):
        super().__init__(params, {"lr": lr})

    def update(self, parameter, grad, state, group):
        state["steps"] = state.get("steps", 0) + 1
        parameter.data -= group["lr"] * grad


_a = Variable(np.ones(3, dtype=np.float32), requires_grad=True)
_b = Variable(np.ones((2, 2), dtype=np.float32), requires_grad=True)
_frozen = Variable(np.ones((4, 5), dtype=np.float32))
_opt = _Halve([_a, _b])
_a.grad = np.full(3, 2.0, dtype=np.float32)
_opt.step()
np.testing.assert_allclose(
    _a.data, 0.0, err_msg="step() should update a parameter that has a gradient"
)
np.testing.assert_allclose(_b.data, 1.0, err_msg="step() must skip a parameter whose grad is None")
_opt.zero_grad()
assert _a.grad is None and _b.grad is None, "zero_grad() should set every .grad to None"
_a.grad = np.ones(3, dtype=np.float32)
_opt.zero_grad(set_to_none=False)
assert _a.grad is not None and not _a.grad.any(), (
    "zero_grad(set_to_none=False) should fill grads with 0"
)
_message = ""
try:
    _Halve([_a, _frozen])
except ValueError as error:
    _message = str(error)
assert (
    "_Halve" in _message
    and "1" in _message
    and "(4, 5)" in _message
    and "requires_grad" in _message
), (
    "an optimizer given a parameter with requires_grad=False should raise ValueError naming the "
    f"optimizer, the parameter's position (1) and shape (4, 5); got {_message!r}"
)
try:
    _Halve([_a, np.ones(3)])
    raise AssertionError(
        "an optimizer given a numpy array instead of a Variable should raise TypeError"
    )
except TypeError as error:
    assert "ndarray" in str(error), f"the TypeError should say what was passed (ndarray): {error}"
### BEGIN HIDDEN TESTS
_groups = _Halve([{"params": [_a]}, {"params": [_b], "lr": 0.25}])
assert [g["lr"] for g in _groups.param_groups] == [0.5, 0.25]
try:
    _Halve([])
    raise AssertionError("an empty parameter list should raise ValueError")
except ValueError:
    pass
### END HIDDEN TESTS
print("✓ test_optim_base passed (15 points)")

# %% [markdown]
# ## Part 2: `SGD`, with weight decay, momentum, dampening and Nesterov
#
# PyTorch's documented algorithm, for each parameter `p` with gradient `g` at step `t`:
#
# ```
#   if wd ≠ 0:   g ← g + wd·p                       (L2 weight decay, in the gradient)
#   if μ ≠ 0:    buf ← g                  at the first step  (a copy of g, not zero)
#                buf ← μ·buf + (1-τ)·g    afterwards
#                g ← g + μ·buf  if nesterov  else  buf
#   p ← p - lr·g
# ```
#
# Two details make the difference between "like PyTorch" and "exactly PyTorch": the
# buffer starts as a *copy of the first gradient* (starting it at zero would make the
# first step `(1-τ)` times too small), and dampening never applies to that first step.
#
# Work in place on numpy arrays, in the parameter's dtype: `p.data -= ...` and
# `buf *= μ` do not allocate a new parameter or buffer, and the Python-float settings
# keep float32 arrays float32. Never change `p.grad` itself: it belongs to the engine,
# and with `set_to_none=False` it accumulates the next step's gradients.
# Store the buffer as `state["momentum_buffer"]` (PyTorch's name).


# %% nbgrader={"grade": false, "grade_id": "optim_sgd", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def _check_non_negative(owner: str, **settings: float) -> None:
    for name, value in settings.items():
        if not value >= 0.0:
            raise ValueError(f"{owner}: {name} must be >= 0, got {value}")


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, dampening, Nesterov momentum
    and L2 weight decay, following PyTorch's `torch.optim.SGD` exactly."""

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ):
        _check_non_negative("SGD", lr=lr, momentum=momentum, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(
                f"SGD: nesterov=True needs momentum > 0 and dampening = 0 "
                f"(got momentum={momentum}, dampening={dampening})"
            )
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
        }
        super().__init__(params, defaults)

    def update(self, parameter: Variable, grad: np.ndarray, state: dict, group: dict) -> None:
        momentum, weight_decay = group["momentum"], group["weight_decay"]
        ### BEGIN SOLUTION
        if weight_decay != 0:
            grad = grad + weight_decay * parameter.data
        if momentum != 0:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = np.array(grad, copy=True)
            else:
                buffer *= momentum
                dampening = group["dampening"]
                buffer += grad if dampening == 0 else (1 - dampening) * grad
            grad = grad + momentum * buffer if group["nesterov"] else buffer
        parameter.data -= group["lr"] * grad
        ### END SOLUTION


# %% [markdown]
# The tests compare with the formulas above, written out step by step in float64 for a
# parameter whose gradient changes every step (the loss is `Σ p³`, so `g = 3p²`).


# %% nbgrader={"grade": false, "grade_id": "optim_test_tools", "locked": true, "schema_version": 3, "solution": false, "task": false}
def run_steps(optimizer_class, steps: int, start=(1.0, -0.5, 2.0), **settings):
    """Run `steps` steps of `optimizer_class` on the loss Σ p³ (gradient 3p²) and
    return the parameter values after each step."""
    parameter = Variable(np.array(start, dtype=np.float64), requires_grad=True)
    optimizer = optimizer_class([parameter], **settings)
    history = []
    for _ in range(steps):
        parameter.grad = 3 * parameter.data**2
        optimizer.step()
        history.append(parameter.data.copy())
    return history, optimizer, parameter


def reference_sgd(
    steps,
    start=(1.0, -0.5, 2.0),
    lr=1e-3,
    momentum=0.0,
    dampening=0.0,
    weight_decay=0.0,
    nesterov=False,
):
    """PyTorch's SGD algorithm, one line per line of its documentation."""
    p, buf, history = np.array(start, dtype=np.float64), None, []
    for t in range(1, steps + 1):
        g = 3 * p**2
        if weight_decay != 0:
            g = g + weight_decay * p
        if momentum != 0:
            buf = g.copy() if t == 1 else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
        history.append(p)
    return history


def assert_same_history(name, got, want, rtol=1e-12):
    for step, (g, w) in enumerate(zip(got, want, strict=True), start=1):
        if not np.allclose(g, w, rtol=rtol, atol=0):
            raise AssertionError(f"{name}: after step {step} the parameter is {g}, expected {w}")


# %% nbgrader={"grade": true, "grade_id": "test_optim_sgd_plain", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
_history, _opt, _p = run_steps(SGD, 5, lr=0.01)
assert_same_history("SGD(lr=0.01)", _history, reference_sgd(5, lr=0.01))
_history, _opt, _p = run_steps(SGD, 5, lr=0.01, weight_decay=0.1)
assert_same_history(
    "SGD(lr=0.01, weight_decay=0.1)", _history, reference_sgd(5, lr=0.01, weight_decay=0.1)
)
_p = Variable(np.ones(4, dtype=np.float32), requires_grad=True)
_p.grad = np.full(4, 0.5, dtype=np.float32)
_grad_before = _p.grad.copy()
SGD([_p], lr=0.1, weight_decay=0.01).step()
assert _p.data.dtype == np.float32, f"SGD turned a float32 parameter into {_p.data.dtype}"
np.testing.assert_array_equal(_p.grad, _grad_before, err_msg="SGD.step() must not modify p.grad")
print("✓ test_optim_sgd_plain passed (10 points)")

# %% nbgrader={"grade": true, "grade_id": "test_optim_sgd_momentum", "locked": true, "points": 15, "schema_version": 3, "solution": false, "task": false}
_history, _opt, _p = run_steps(SGD, 1, lr=0.01, momentum=0.9)
assert_same_history(
    "SGD(momentum=0.9), first step (the buffer starts as a copy of g, not as zeros)",
    _history,
    reference_sgd(1, lr=0.01, momentum=0.9),
)
_history, _opt, _p = run_steps(SGD, 6, lr=0.01, momentum=0.9)
assert_same_history("SGD(momentum=0.9)", _history, reference_sgd(6, lr=0.01, momentum=0.9))
assert set(_opt.state[_p]) == {"momentum_buffer"}, (
    f"SGD with momentum should keep exactly state['momentum_buffer'], got {sorted(_opt.state[_p])}"
)
_history, _opt, _p = run_steps(SGD, 6, lr=0.01, momentum=0.8, dampening=0.3)
assert_same_history(
    "SGD(momentum=0.8, dampening=0.3)",
    _history,
    reference_sgd(6, lr=0.01, momentum=0.8, dampening=0.3),
)
_history, _opt, _p = run_steps(SGD, 6, lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.05)
assert_same_history(
    "SGD(momentum=0.9, nesterov=True, weight_decay=0.05)",
    _history,
    reference_sgd(6, lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.05),
)
### BEGIN HIDDEN TESTS
_p = Variable(np.ones(2, dtype=np.float32), requires_grad=True)
_opt = SGD([_p], lr=0.1, momentum=0.9)
_p.grad = np.ones(2, dtype=np.float32)
_opt.step()
_p.grad[:] = 5  # the engine may reuse or accumulate into grad: the buffer must not alias it
assert np.all(_opt.state[_p]["momentum_buffer"] == 1), (
    "the momentum buffer must be a copy of the first grad"
)
assert _opt.state[_p]["momentum_buffer"].dtype == np.float32
### END HIDDEN TESTS
print("✓ test_optim_sgd_momentum passed (15 points)")

# %% [markdown]
# ## Part 3: `Adam` (and AMSGrad)
#
# PyTorch's documented algorithm (Kingma & Ba, 2015, with the weight decay PyTorch adds
# to the gradient), for a parameter `p` with gradient `g`; `m`, `v` start as zeros of
# `p`'s shape and `t` counts this parameter's steps from 1:
#
# ```
#   if wd ≠ 0:   g ← g + wd·p
#   m ← β1·m + (1-β1)·g
#   v ← β2·v + (1-β2)·g²
#   m̂ ← m / (1 - β1^t)
#   v̂ ← v / (1 - β2^t)           with amsgrad:  v_max ← max(v_max, v);  v̂ ← v_max / (1 - β2^t)
#   p ← p - lr·m̂ / (√v̂ + ε)
# ```
#
# Note where `ε` goes: *after* the square root of the bias-corrected `v̂`. PyTorch
# computes it as `√v / √(1-β2^t) + ε`, which is the same number. State names, as in
# PyTorch: `state["step"]` (an int), `state["exp_avg"]` (m), `state["exp_avg_sq"]` (v) and,
# with `amsgrad=True`, `state["max_exp_avg_sq"]`.
#
# To stay fast, update `m` and `v` in place and compute `β^t` and `√(1-β2^t)` as Python
# floats (`math.sqrt`, not `np.sqrt`, whose float64 result would turn float32 arrays
# into float64 ones).
#
# `decoupled` is for Part 4: leave it alone here.


# %% nbgrader={"grade": false, "grade_id": "optim_adam", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with optional AMSGrad and L2 weight decay added to the
    gradient, following PyTorch's `torch.optim.Adam` exactly."""

    decoupled = False  # AdamW sets this: weight decay applied to p directly (Part 4)

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ):
        owner = type(self).__name__
        _check_non_negative(owner, lr=lr, eps=eps, weight_decay=weight_decay)
        for index, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{owner}: betas[{index}] must be in [0, 1), got {beta}")
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
        }
        super().__init__(params, defaults)

    def update(self, parameter: Variable, grad: np.ndarray, state: dict, group: dict) -> None:
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        weight_decay, p = group["weight_decay"], parameter.data
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p)
            state["exp_avg_sq"] = np.zeros_like(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(p)
        if self.decoupled and weight_decay != 0:
            p *= 1 - lr * weight_decay
        elif weight_decay != 0:
            grad = grad + weight_decay * p
        ### BEGIN SOLUTION
        state["step"] += 1
        step, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
        scratch = np.subtract(grad, m)  # m ← m + (1-β1)(g - m), PyTorch's lerp form
        scratch *= 1 - beta1
        m += scratch
        np.multiply(grad, grad, out=scratch)
        scratch *= 1 - beta2
        v *= beta2
        v += scratch
        if group["amsgrad"]:
            np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]
        step_size = lr / (1 - beta1**step)
        np.sqrt(v, out=scratch)
        scratch /= math.sqrt(1 - beta2**step)
        scratch += eps
        np.divide(m, scratch, out=scratch)
        scratch *= step_size
        p -= scratch
        ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "optim_adam_reference", "locked": true, "schema_version": 3, "solution": false, "task": false}
def reference_adam(
    steps,
    start=(1.0, -0.5, 2.0),
    lr=1e-3,
    betas=(0.9, 0.999),
    eps=1e-8,
    weight_decay=0.0,
    amsgrad=False,
    decoupled=False,
):
    """PyTorch's Adam/AdamW algorithm, one line per line of its documentation, on Σ p³."""
    p = np.array(start, dtype=np.float64)
    m, v, v_max, history = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p), []
    for t in range(1, steps + 1):
        g = 3 * p**2
        if decoupled:
            p = p * (1 - lr * weight_decay)
        elif weight_decay != 0:
            g = g + weight_decay * p
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g**2
        m_hat = m / (1 - betas[0] ** t)
        v_max = np.maximum(v_max, v)
        v_hat = (v_max if amsgrad else v) / (1 - betas[1] ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        history.append(p)
    return history


# %% nbgrader={"grade": true, "grade_id": "test_optim_adam", "locked": true, "points": 20, "schema_version": 3, "solution": false, "task": false}
_history, _opt, _p = run_steps(Adam, 1, lr=0.1)
assert_same_history(
    "Adam(lr=0.1), first step (did you apply the bias correction?)",
    _history,
    reference_adam(1, lr=0.1),
    rtol=1e-10,
)
_history, _opt, _p = run_steps(Adam, 8, lr=0.05, betas=(0.8, 0.99), eps=1e-6)
assert_same_history(
    "Adam(lr=0.05, betas=(0.8, 0.99), eps=1e-6)",
    _history,
    reference_adam(8, lr=0.05, betas=(0.8, 0.99), eps=1e-6),
    rtol=1e-10,
)
assert _opt.state[_p]["step"] == 8, (
    f"state['step'] should count 8 steps, got {_opt.state[_p].get('step')}"
)
assert {"exp_avg", "exp_avg_sq"} <= set(_opt.state[_p]), (
    "Adam's state needs 'exp_avg' and 'exp_avg_sq'"
)
_history, _opt, _p = run_steps(Adam, 8, lr=0.05, weight_decay=0.1)
assert_same_history(
    "Adam(weight_decay=0.1)", _history, reference_adam(8, lr=0.05, weight_decay=0.1), rtol=1e-10
)
_history, _opt, _p = run_steps(Adam, 8, start=(1.0, -3.0, 0.5), lr=0.05, amsgrad=True)
assert_same_history(
    "Adam(amsgrad=True)",
    _history,
    reference_adam(8, start=(1.0, -3.0, 0.5), lr=0.05, amsgrad=True),
    rtol=1e-10,
)
_p32 = Variable(np.ones(3, dtype=np.float32), requires_grad=True)
_opt = Adam([_p32], lr=0.1)
_p32.grad = np.ones(3, dtype=np.float32)
_opt.step()
assert _p32.data.dtype == np.float32 and _opt.state[_p32]["exp_avg"].dtype == np.float32, (
    "Adam must keep float32 parameters and state float32 (use Python floats, math.sqrt)"
)
### BEGIN HIDDEN TESTS
_history, _opt, _p = run_steps(Adam, 20, start=(0.3, -0.2, 0.1), lr=0.01, eps=0.0)
assert_same_history(
    "Adam(eps=0)",
    _history,
    reference_adam(20, start=(0.3, -0.2, 0.1), lr=0.01, eps=0.0),
    rtol=1e-10,
)
### END HIDDEN TESTS
print("✓ test_optim_adam passed (20 points)")

# %% [markdown]
# ## Part 4: `AdamW`, decoupled weight decay
#
# With Adam, weight decay added to the gradient gets divided by `√v̂` like the rest of
# the gradient, so parameters with large gradients are hardly decayed at all.
# Loshchilov & Hutter (2019) decouple it: shrink the parameter directly, then take a
# plain Adam step:
#
# ```
#   p ← p - lr·wd·p               (that is, p ← p·(1 - lr·wd), in place)
#   then Adam's update with wd = 0
# ```
#
# `Adam.update` already does this when the class attribute `decoupled` is True. Write
# `AdamW.__init__`: the same arguments as Adam, but PyTorch's default `weight_decay` for
# AdamW is `1e-2`, not 0.


# %% nbgrader={"grade": false, "grade_id": "optim_adamw", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as `torch.optim.AdamW`."""

    decoupled = True

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ):
        ### BEGIN SOLUTION
        super().__init__(
            params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad
        )
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_optim_adamw", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
_history, _opt, _p = run_steps(AdamW, 8, lr=0.05)
assert _opt.param_groups[0]["weight_decay"] == 1e-2, "AdamW's default weight_decay is 1e-2"
assert_same_history(
    "AdamW(lr=0.05) with its default weight_decay=1e-2",
    _history,
    reference_adam(8, lr=0.05, weight_decay=1e-2, decoupled=True),
    rtol=1e-10,
)
_history, _opt, _p = run_steps(AdamW, 8, lr=0.05, weight_decay=0.5, amsgrad=True)
assert_same_history(
    "AdamW(weight_decay=0.5, amsgrad=True)",
    _history,
    reference_adam(8, lr=0.05, weight_decay=0.5, amsgrad=True, decoupled=True),
    rtol=1e-10,
)
print("✓ test_optim_adamw passed (10 points)")

# %% [markdown]
# ## Part 5: saving and resuming: `state_dict`
#
# To stop a run and resume it *exactly*, the model's parameters are not enough: the
# optimizer's buffers and step counts are part of the state of training. PyTorch's
# format refers to parameters by their position (0, 1, 2, ... across the groups), not
# by object, so a state saved from one process can be loaded into a fresh optimizer
# built over a fresh model:
#
# ```
#   {"state":        {0: {"step": 3, "exp_avg": array, "exp_avg_sq": array},
#                     1: {...}},
#    "param_groups": [{"lr": 0.001, "betas": (0.9, 0.999), ..., "params": [0, 1]}]}
# ```
#
# You write `optimizer_state_dict` (what `opt.state_dict()` returns): number the
# parameters across the groups in order, put a *copy* of each parameter's state under its
# number (arrays copied, so later steps do not change a saved state), and list each
# group's settings with `"params"` replaced by the numbers. The given
# `load_optimizer_state_dict` checks that the groups and their sizes match and that
# every buffer has its parameter's shape (naming the position, the buffer and both
# shapes otherwise), then installs copies.


# %% nbgrader={"grade": false, "grade_id": "optim_state_dict", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def _copy_state(state: dict) -> dict:
    return {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in state.items()}


def optimizer_state_dict(optimizer: Optimizer) -> dict:
    """The optimizer's state and settings, with parameters referred to by position."""
    ### BEGIN SOLUTION
    state, groups, index = {}, [], 0
    for group in optimizer.param_groups:
        positions = []
        for parameter in group["params"]:
            if parameter in optimizer.state:
                state[index] = _copy_state(optimizer.state[parameter])
            positions.append(index)
            index += 1
        groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": positions})
    return {"state": state, "param_groups": groups}
    ### END SOLUTION


def load_optimizer_state_dict(optimizer: Optimizer, saved: dict) -> None:
    """Install a state saved by `optimizer_state_dict`, after checking it fits."""
    name = type(optimizer).__name__
    groups = saved["param_groups"]
    if len(groups) != len(optimizer.param_groups):
        raise ValueError(
            f"{name}.load_state_dict: {len(groups)} parameter groups saved, "
            f"this optimizer has {len(optimizer.param_groups)}"
        )
    parameters = [p for g in optimizer.param_groups for p in g["params"]]
    for number, (mine, theirs) in enumerate(zip(optimizer.param_groups, groups, strict=True)):
        if len(mine["params"]) != len(theirs["params"]):
            raise ValueError(
                f"{name}.load_state_dict: group {number} saved with {len(theirs['params'])} "
                f"parameters, this optimizer's has {len(mine['params'])}"
            )
    for index, buffers in saved["state"].items():
        if not 0 <= index < len(parameters):
            raise ValueError(
                f"{name}.load_state_dict: state for parameter {index}, which does not exist"
            )
        for key, value in buffers.items():
            shape = parameters[index].shape
            if isinstance(value, np.ndarray) and value.shape != shape:
                raise ValueError(
                    f"{name}.load_state_dict: parameter {index} state {key!r} has shape "
                    f"{value.shape}, the parameter has shape {shape}"
                )
    for mine, theirs in zip(optimizer.param_groups, groups, strict=True):
        mine.update({k: v for k, v in theirs.items() if k != "params"})
    optimizer.state = {parameters[i]: _copy_state(b) for i, b in saved["state"].items()}


# %% nbgrader={"grade": true, "grade_id": "test_optim_state_dict", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
def _train(parameter, optimizer, steps):
    for _ in range(steps):
        parameter.grad = 3 * parameter.data**2
        optimizer.step()


for _make in (
    lambda ps: Adam(ps, lr=0.05, amsgrad=True),
    lambda ps: SGD(ps, lr=0.01, momentum=0.9),
):
    _p = Variable(np.array([1.0, -0.5, 2.0]), requires_grad=True)
    _opt = _make([_p])
    _train(_p, _opt, 3)
    _saved_p, _saved = _p.data.copy(), _opt.state_dict()
    assert list(_saved) == ["state", "param_groups"] and _saved["param_groups"][0]["params"] == [
        0
    ], (
        "state_dict() should be {'state': {position: buffers}, 'param_groups': [{..., 'params': [positions]}]}"
    )
    _train(_p, _opt, 4)
    _fresh = Variable(_saved_p.copy(), requires_grad=True)
    _resumed = _make([_fresh])
    _resumed.load_state_dict(_saved)
    _train(_fresh, _resumed, 4)
    np.testing.assert_array_equal(
        _fresh.data,
        _p.data,
        err_msg=(
            f"{type(_opt).__name__}: 3 steps, save, 4 more steps should equal 3 steps, load into a fresh "
            "optimizer, 4 steps: the saved state is incomplete or shares arrays with the live optimizer"
        ),
    )
print("✓ test_optim_state_dict passed (10 points)")

# %% [markdown]
# ## Part 6: the memory picture, measured
#
# `memory_table` takes optimizers that have taken at least one step and measures what
# they hold: the names of the state entries, the bytes of every array in the state, those
# bytes per parameter (per number being trained), and as a multiple of the parameters'
# own bytes. It drew the table at the top of this module.


# %% nbgrader={"grade": false, "grade_id": "optim_memory", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| export
def state_bytes(optimizer: Optimizer) -> int:
    """Bytes of every numpy array the optimizer keeps in its state."""
    return sum(
        v.nbytes for s in optimizer.state.values() for v in s.values() if isinstance(v, np.ndarray)
    )


def memory_table(optimizers: dict[str, Optimizer]) -> str:
    """A table of each optimizer's state: entry names, bytes, and bytes per parameter byte."""
    rows = []
    for label, optimizer in optimizers.items():
        parameters = [p for g in optimizer.param_groups for p in g["params"]]
        param_bytes = sum(p.data.nbytes for p in parameters)
        names = list(dict.fromkeys(k for s in optimizer.state.values() for k in s))
        used = state_bytes(optimizer)
        per_parameter = used / sum(p.data.size for p in parameters)
        names = ", ".join(names) or "(none)"
        rows.append(
            [label, names, f"{used:,}", f"{per_parameter:.2f}", f"{used / param_bytes:.2f}"]
        )
    headers = ["optimizer", "state per parameter", "state bytes", "bytes/param", "× params"]
    return box_table(headers, rows, [False, False, True, True, True])


# %% [markdown]
# ## Part 7: integration test: optimizers train a network
#
# A 2-16-2 MLP from module 02 on two half-moons, trained by each optimizer for the same
# number of steps. The printed table is `memory_table` on the live optimizers.

# %% nbgrader={"grade": true, "grade_id": "test_optim_integration", "locked": true, "points": 20, "schema_version": 3, "solution": false, "task": false}
from tinytorch.nn import Linear, Sequential, Tanh, cross_entropy


def _two_moons(n, rng):
    angle = rng.uniform(0, np.pi, n)
    labels = rng.integers(0, 2, n)
    x = np.stack([np.cos(angle) + labels, np.sin(angle) * (1 - 2 * labels) + 0.5 * labels], axis=1)
    return (x + rng.normal(0, 0.1, x.shape)).astype(np.float32), labels


_x, _labels = _two_moons(200, np.random.default_rng(6))
_settings = {
    "SGD": lambda ps: SGD(ps, lr=0.1),
    "SGD(momentum=0.9)": lambda ps: SGD(ps, lr=0.1, momentum=0.9),
    "Adam": lambda ps: Adam(ps, lr=0.02),
    "AdamW": lambda ps: AdamW(ps, lr=0.02),
}
_finished = {}
for _label, _make in _settings.items():
    _rng = np.random.default_rng(7)
    _model = Sequential(Linear(2, 16, generator=_rng), Tanh(), Linear(16, 2, generator=_rng))
    _opt = _make(_model.parameters())
    for _step in range(150):
        _opt.zero_grad()
        _loss = cross_entropy(_model(_x), _labels)
        _loss.backward()
        _opt.step()
    _accuracy = (_model(_x).data.argmax(1) == _labels).mean()
    _finished[_label] = _opt
    print(f"{_label:<18} loss after 150 steps {_loss.item():.3f}, accuracy {_accuracy:.1%}")
    if _label != "SGD":
        assert _accuracy > 0.95, (
            f"{_label} should separate the two moons in 150 steps, got {_accuracy:.1%}"
        )
print(memory_table(_finished))
assert state_bytes(_finished["SGD"]) == 0, "plain SGD keeps no state"
_params = sum(p.data.nbytes for p in _finished["Adam"].param_groups[0]["params"])
assert state_bytes(_finished["Adam"]) == 2 * _params, "Adam keeps two arrays per parameter"
print("✓ test_optim_integration passed (20 points)")

# %% [markdown]
# ## What you built
#
# - `Optimizer`: parameter groups, a clear error for a parameter that cannot be trained,
#   `zero_grad` (to `None`, as PyTorch 2), `step`, and `state_dict`/`load_state_dict` in
#   PyTorch's format, so a run resumes exactly.
# - `SGD` with weight decay, momentum, dampening and Nesterov; `Adam` with AMSGrad;
#   `AdamW`. Each follows PyTorch's documented update, in place, in the parameters'
#   dtype; `tests/test_optim_parity.py` checks 200 steps against PyTorch itself.
# - `memory_table`: what each optimizer costs, measured.
#
# **Where it goes next.** Module 04 feeds real data through these pieces: a dataset, a
# loader that batches and shuffles, a training loop with a progress bar and a learning
# curve, and a network that reads handwritten digits.
