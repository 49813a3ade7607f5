"""tinytorch.optim as a user meets it: construction errors, steps, state, saving and resuming."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from tinytorch.autograd import Variable
from tinytorch.nn import Linear, Parameter, Sequential, Tanh, cross_entropy
from tinytorch.optim import SGD, Adam, AdamW, Optimizer, memory_table, state_bytes
from tinytorch_course.boxes import misaligned_boxes

OPTIMIZERS = {
    "sgd": lambda ps: SGD(ps, lr=0.1),
    "sgd-momentum": lambda ps: SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
    "sgd-nesterov": lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "adam": lambda ps: Adam(ps, lr=0.01, weight_decay=0.01),
    "adam-amsgrad": lambda ps: Adam(ps, lr=0.01, amsgrad=True),
    "adamw": lambda ps: AdamW(ps, lr=0.01),
}


def model(seed: int = 0, dtype=np.float32) -> Sequential:
    rng = np.random.default_rng(seed)
    return Sequential(
        Linear(4, 8, generator=rng, dtype=dtype), Tanh(), Linear(8, 3, generator=rng, dtype=dtype)
    )


def batch(step: int, dtype=np.float32):
    rng = np.random.default_rng(100 + step)
    return rng.standard_normal((16, 4)).astype(dtype), rng.integers(0, 3, 16)


def train(net: Sequential, optimizer: Optimizer, steps: range, dtype=np.float32) -> list[float]:
    losses = []
    for step in steps:
        x, y = batch(step, dtype)
        optimizer.zero_grad()
        loss = cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


# -- construction --------------------------------------------------------------------------


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_parameter_that_does_not_require_grad_is_refused_by_name_position_and_shape(name):
    frozen = Variable(np.zeros((3, 7), dtype=np.float32))
    with pytest.raises(ValueError) as info:
        OPTIMIZERS[name]([Parameter(np.zeros(2, dtype=np.float32)), frozen])
    message = str(info.value)
    assert type(OPTIMIZERS[name]([Parameter(np.zeros(1))])).__name__ in message
    assert "parameter 1" in message and "(3, 7)" in message and "requires_grad=False" in message


def test_other_construction_mistakes_are_named():
    p = Parameter(np.zeros(2))
    with pytest.raises(TypeError, match="parameter 1 is a ndarray"):
        SGD([p, np.zeros(2)], lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        Adam([])
    with pytest.raises(ValueError, match="parameter 1 appears more than once"):
        SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match="lr must be >= 0, got -1"):
        SGD([p], lr=-1)
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"betas\[1\] must be in \[0, 1\), got 1.0"):
        Adam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="unknown settings \\['momentum'\\]"):
        Adam([{"params": [p], "momentum": 0.9}])


def test_model_parameters_generator_is_accepted():
    net = model()
    optimizer = SGD((p for p in net.parameters()), lr=0.1)
    assert len(optimizer.param_groups[0]["params"]) == 4


def test_adamw_default_weight_decay_is_pytorchs():
    assert AdamW([Parameter(np.zeros(1))]).param_groups[0]["weight_decay"] == 1e-2
    assert Adam([Parameter(np.zeros(1))]).param_groups[0]["weight_decay"] == 0


# -- stepping -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_step_updates_in_place_keeps_float32_and_leaves_grad_alone(name):
    net = model()
    optimizer = OPTIMIZERS[name](net.parameters())
    arrays = [p.data for p in net.parameters()]
    before = [a.copy() for a in arrays]
    x, y = batch(0)
    cross_entropy(net(x), y).backward()
    grads = [p.grad.copy() for p in net.parameters()]
    optimizer.step()
    for p, array, old, grad in zip(net.parameters(), arrays, before, grads, strict=True):
        assert p.data is array, "the parameter array must be updated in place"
        assert p.data.dtype == np.float32 and not np.array_equal(p.data, old)
        np.testing.assert_array_equal(p.grad, grad)
    for state in optimizer.state.values():
        assert all(v.dtype == np.float32 for v in state.values() if isinstance(v, np.ndarray))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_training_lowers_the_loss(name):
    net = model()
    losses = train(net, OPTIMIZERS[name](net.parameters()), [0] * 100)  # one batch, repeated
    assert losses[-1] < 0.85 * losses[0]
    assert all(np.isfinite(losses))


def test_parameters_without_grad_are_skipped_and_get_no_state():
    a, b = Parameter(np.ones(2)), Parameter(np.ones(2))
    optimizer = Adam([a, b], lr=0.1)
    a.grad = np.ones(2)
    optimizer.step()
    np.testing.assert_array_equal(b.data, 1)
    assert b not in optimizer.state and optimizer.state[a]["step"] == 1


def test_zero_grad_to_none_or_to_zeros_in_place():
    p = Parameter(np.ones(3))
    optimizer = SGD([p], lr=0.1)
    p.grad = np.ones(3)
    grad = p.grad
    optimizer.zero_grad(set_to_none=False)
    assert p.grad is grad and not grad.any()
    optimizer.zero_grad()
    assert p.grad is None


def test_parameter_groups_have_their_own_settings():
    a, b = Parameter(np.ones(1)), Parameter(np.ones(1))
    optimizer = SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    a.grad, b.grad = np.ones(1), np.ones(1)
    optimizer.step()
    assert a.data[0] == pytest.approx(0.9) and b.data[0] == pytest.approx(0.5)


def test_momentum_buffer_starts_as_a_copy_of_the_first_gradient():
    p = Parameter(np.zeros(2))
    optimizer = SGD([p], lr=1.0, momentum=0.9, dampening=0.5)
    p.grad = np.array([1.0, 2.0])
    optimizer.step()
    # first step: buf = g (no dampening, not (1 - 0.5) g, not 0.9·0 + g·0.5)
    np.testing.assert_array_equal(p.data, [-1.0, -2.0])
    p.grad[:] = 0
    np.testing.assert_array_equal(optimizer.state[p]["momentum_buffer"], [1.0, 2.0])
    optimizer.step()
    np.testing.assert_array_equal(p.data, [-1.9, -3.8])


def test_adam_first_step_moves_each_coordinate_by_lr():
    # bias correction makes the first update lr·g/|g| whatever the gradient's size
    p = Parameter(np.zeros(3))
    optimizer = Adam([p], lr=0.01)
    p.grad = np.array([1e-3, -5.0, 1e3])
    optimizer.step()
    np.testing.assert_allclose(p.data, [-0.01, 0.01, -0.01], rtol=1e-4)


def test_adamw_decays_the_parameter_itself():
    p = Parameter(np.full(1, 2.0))
    optimizer = AdamW([p], lr=0.1, weight_decay=0.5)
    p.grad = np.zeros(1)  # no gradient signal: only the decay acts
    optimizer.step()
    assert p.data[0] == pytest.approx(2.0 * (1 - 0.1 * 0.5))


# -- saving and resuming --------------------------------------------------------------------


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_save_and_resume_is_exact(name):
    net = model()
    optimizer = OPTIMIZERS[name](net.parameters())
    train(net, optimizer, range(5))
    saved = pickle.dumps((net.state_dict(), optimizer.state_dict()))
    continued = train(net, optimizer, range(5, 12))

    fresh = model(seed=99)
    resumed = OPTIMIZERS[name](fresh.parameters())
    model_state, optimizer_state = pickle.loads(saved)
    fresh.load_state_dict(model_state)
    resumed.load_state_dict(optimizer_state)
    assert train(fresh, resumed, range(5, 12)) == continued
    for p, q in zip(net.parameters(), fresh.parameters(), strict=True):
        np.testing.assert_array_equal(p.data, q.data)


def test_state_dict_uses_positions_and_copies():
    net = model()
    optimizer = Adam(net.parameters(), lr=0.01)
    train(net, optimizer, range(2))
    saved = optimizer.state_dict()
    assert sorted(saved["state"]) == [0, 1, 2, 3]
    assert saved["param_groups"][0]["params"] == [0, 1, 2, 3]
    assert saved["param_groups"][0]["lr"] == 0.01 and saved["state"][0]["step"] == 2
    first = net.parameters()[0]
    saved["state"][0]["exp_avg"] += 1
    assert not np.array_equal(optimizer.state[first]["exp_avg"], saved["state"][0]["exp_avg"])


def test_load_state_dict_restores_settings_like_lr():
    p = Parameter(np.ones(1))
    saved = SGD([p], lr=0.5).state_dict()
    optimizer = SGD([Parameter(np.ones(1))], lr=0.1)
    optimizer.load_state_dict(saved)
    assert optimizer.param_groups[0]["lr"] == 0.5


def test_load_state_dict_names_what_does_not_fit():
    net = model()
    optimizer = SGD(net.parameters(), lr=0.1, momentum=0.9)
    train(net, optimizer, range(1))
    saved = optimizer.state_dict()
    with pytest.raises(ValueError, match="group 0 saved with 4 parameters, this optimizer's has 2"):
        SGD(net.parameters()[:2], lr=0.1).load_state_dict(saved)
    with pytest.raises(ValueError, match="1 parameter groups saved, this optimizer has 2"):
        SGD(
            [{"params": net.parameters()[:2]}, {"params": net.parameters()[2:]}], lr=0.1
        ).load_state_dict(saved)
    saved["state"][2]["momentum_buffer"] = np.zeros((8, 3), dtype=np.float32)
    with pytest.raises(
        ValueError,
        match=r"parameter 2 state 'momentum_buffer' has shape \(8, 3\), "
        r"the parameter has shape \(3, 8\)",
    ):
        SGD(net.parameters(), lr=0.1).load_state_dict(saved)


# -- memory ---------------------------------------------------------------------------------


def test_state_bytes_count_what_each_optimizer_keeps():
    expected_copies = {
        "sgd": 0,
        "sgd-momentum": 1,
        "sgd-nesterov": 1,
        "adam": 2,
        "adam-amsgrad": 3,
        "adamw": 2,
    }
    optimizers = {}
    for name, copies in expected_copies.items():
        net = model()
        optimizer = OPTIMIZERS[name](net.parameters())
        train(net, optimizer, range(1))
        assert state_bytes(optimizer) == copies * sum(p.data.nbytes for p in net.parameters())
        optimizers[name] = optimizer
    table = memory_table(optimizers)
    assert misaligned_boxes(table.splitlines()) == []
    assert "│ adam-amsgrad │ step, exp_avg, exp_avg_sq, max_exp_avg_sq │" in table
