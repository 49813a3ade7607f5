"""tinytorch.nn as a user meets it: modules, parameters, layers, losses and their errors."""

from __future__ import annotations

import numpy as np
import pytest

from tinytorch.autograd import Variable, gradcheck
from tinytorch.nn import (
    CrossEntropy,
    CrossEntropyLoss,
    Linear,
    LinearFunction,
    Module,
    MSELoss,
    Parameter,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
    cross_entropy,
    describe,
    mse_loss,
)
from tinytorch_course.boxes import misaligned_boxes


class Block(Module):
    def __init__(self, rng):
        self.fc1 = Linear(3, 4, generator=rng)
        self.act = ReLU()
        self.fc2 = Linear(4, 3, generator=rng)
        self.note = "not a parameter"
        self.buffer = Variable(np.zeros(2, dtype=np.float32))  # a Variable, but not a Parameter

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Tower(Module):
    def __init__(self, rng):
        self.scale = Parameter(np.ones(1, dtype=np.float32))
        self.blocks = [Block(rng), Block(rng)]
        self.head = Block(rng)

    def forward(self, x):
        for block in self.blocks:
            x = block(x) * self.scale
        return self.head(x)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# -- Module: registration, names, modes ------------------------------------------------


def test_named_parameters_walk_nested_modules_and_lists_in_assignment_order():
    names = [name for name, _ in Tower(rng()).named_parameters()]
    assert names == [
        "scale",
        *(
            f"blocks.{i}.{layer}.{p}"
            for i in (0, 1)
            for layer in ("fc1", "fc2")
            for p in ("weight", "bias")
        ),
        "head.fc1.weight",
        "head.fc1.bias",
        "head.fc2.weight",
        "head.fc2.bias",
    ]


def test_parameters_are_the_live_objects_and_require_grad():
    model = Block(rng())
    params = model.parameters()
    assert params[0] is model.fc1.weight and params[3] is model.fc2.bias
    assert all(isinstance(p, Parameter) and p.requires_grad for p in params)


def test_a_shared_parameter_is_listed_once():
    model = Block(rng())
    model.fc2.weight = model.fc1.weight  # tie: shapes differ but identity is what counts
    names = [name for name, _ in model.named_parameters()]
    assert names == ["fc1.weight", "fc1.bias", "fc2.bias"]


def test_parameter_keeps_float64_and_always_requires_grad():
    p = Parameter(np.zeros(3))
    assert p.requires_grad and p.dtype == np.float64


def test_zero_grad_sets_none_train_eval_recurse():
    model = Tower(rng())
    x = np.ones((2, 3), dtype=np.float32)
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.blocks[0].parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    assert model.eval() is model
    assert [m.training for _, m in model.named_modules()] == [
        False
    ] * 13  # the tower, 3 blocks, 3 layers each
    model.train()
    assert all(m.training for _, m in model.named_modules())


def test_named_modules_lists_every_module_with_dotted_names():
    names = [name for name, _ in Tower(rng()).named_modules()]
    assert names[:5] == ["", "blocks.0", "blocks.0.fc1", "blocks.0.act", "blocks.0.fc2"]
    assert names[-1] == "head.fc2"


def test_module_without_forward_says_so():
    with pytest.raises(NotImplementedError, match="Module does not define forward"):
        Module()(1)


def test_repr_shows_structure():
    text = repr(Sequential(Linear(2, 3, generator=rng()), ReLU()))
    assert "(0): Linear(in_features=2, out_features=3, bias=True)" in text
    assert "(1): ReLU()" in text


# -- state_dict ---------------------------------------------------------------------------


def test_state_dict_is_a_snapshot_and_round_trips_in_place():
    model = Block(rng(1))
    snapshot = model.state_dict()
    assert list(snapshot) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    before = model.fc1.weight.data.copy()
    model.fc1.weight.data += 1
    np.testing.assert_array_equal(snapshot["fc1.weight"], before)
    weight = model.fc1.weight
    array = weight.data
    model.load_state_dict(snapshot)
    assert model.fc1.weight is weight and weight.data is array  # same objects, new values
    np.testing.assert_array_equal(weight.data, before)


def test_load_state_dict_names_every_bad_key_and_both_shapes():
    model = Block(rng())
    state = model.state_dict()
    state["fc1.weight"] = np.zeros((3, 4), dtype=np.float32)
    del state["fc2.bias"]
    state["fc3.weight"] = np.zeros((1, 1), dtype=np.float32)
    with pytest.raises(KeyError) as info:
        model.load_state_dict(state)
    message = str(info.value)
    assert "'fc1.weight'" in message and "(3, 4)" in message and "(4, 3)" in message
    assert "missing key 'fc2.bias'" in message
    assert "unexpected key 'fc3.weight'" in message


def test_failed_load_changes_nothing():
    model = Block(rng())
    before = model.state_dict()
    bad = {name: np.full_like(value, 9.0) for name, value in before.items()}
    bad["fc2.bias"] = np.zeros(5, dtype=np.float32)
    with pytest.raises(KeyError):
        model.load_state_dict(bad)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_load_state_dict_keeps_the_parameter_dtype():
    model = Linear(2, 2, generator=rng())
    model.load_state_dict({"weight": np.eye(2), "bias": np.zeros(2)})  # float64 in
    assert model.weight.dtype == np.float32
    np.testing.assert_array_equal(model.weight.data, np.eye(2))


# -- Linear -------------------------------------------------------------------------------


def test_linear_has_pytorch_layout_dtype_and_init_bounds():
    layer = Linear(300, 50, generator=rng())
    assert layer.weight.shape == (50, 300) and layer.bias.shape == (50,)
    assert layer.weight.dtype == layer.bias.dtype == np.float32
    bound = 1 / np.sqrt(300)
    weights = layer.weight.data.astype(np.float64)
    assert np.abs(weights).max() <= bound and np.abs(layer.bias.data).max() <= bound
    # A uniform on ±bound has mean 0 and std bound/√3; 15,000 draws pin both down.
    assert abs(weights.mean()) < 0.05 * bound
    assert weights.std() == pytest.approx(bound / np.sqrt(3), rel=0.03)
    assert np.abs(weights).max() > 0.99 * bound  # fills the whole range


def test_linear_init_is_reproducible_from_the_generator_and_differs_across_seeds():
    a, b, c = (Linear(5, 4, generator=rng(s)) for s in (3, 3, 4))
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    np.testing.assert_array_equal(a.bias.data, b.bias.data)
    assert not np.array_equal(a.weight.data, c.weight.data)
    assert not np.array_equal(Linear(5, 4).weight.data, Linear(5, 4).weight.data)


def test_linear_forward_and_backward_match_numpy():
    layer = Linear(6, 3, generator=rng())
    x = rng(1).standard_normal((4, 6)).astype(np.float32)
    y = layer(x)
    np.testing.assert_allclose(y.data, x @ layer.weight.data.T + layer.bias.data, rtol=1e-6)
    upstream = rng(2).standard_normal((4, 3)).astype(np.float32)
    y.backward(upstream)
    np.testing.assert_allclose(layer.weight.grad, upstream.T @ x, rtol=1e-5)
    np.testing.assert_allclose(layer.bias.grad, upstream.sum(0), rtol=1e-5)
    assert layer.weight.grad.dtype == np.float32


@pytest.mark.parametrize("x_shape", [(4, 3), (2, 5, 3), (3,)])
def test_linear_function_passes_gradcheck_for_batches_of_any_rank(x_shape):
    r = rng(7)
    x = Variable(r.standard_normal(x_shape), requires_grad=True)
    w = Variable(r.standard_normal((2, 3)), requires_grad=True)
    b = Variable(r.standard_normal(2), requires_grad=True)
    assert gradcheck(LinearFunction.apply, (x, w, b))
    assert gradcheck(lambda x, w: LinearFunction.apply(x, w, None), (x, w))


def test_cross_entropy_function_passes_gradcheck():
    z = Variable(rng(8).standard_normal((5, 4)), requires_grad=True)
    t = np.array([0, 3, 3, 1, 2])
    assert gradcheck(lambda z: CrossEntropy.apply(z, t, 1 / 5), (z,))
    assert gradcheck(lambda z: cross_entropy(z, t, reduction="sum"), (z,))


def test_first_layer_does_not_compute_a_gradient_for_its_input():
    layer = Linear(3, 2, generator=rng())
    y = layer(np.ones((4, 3), dtype=np.float32))
    assert y.grad_fn.needs_input_grad[0] is False
    y.sum().backward()
    assert layer.weight.grad.shape == (2, 3)


def test_linear_accepts_a_single_sample_and_a_variable_input():
    layer = Linear(3, 2, generator=rng())
    x = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    np.testing.assert_allclose(layer(x).data, layer.weight.data @ x + layer.bias.data, rtol=1e-6)
    assert layer(Variable(x[None])).shape == (1, 2)


def test_linear_without_bias_and_in_float64():
    layer = Linear(3, 2, bias=False, generator=rng(), dtype=np.float64)
    assert layer.bias is None and [n for n, _ in layer.named_parameters()] == ["weight"]
    x = np.ones((1, 3))
    np.testing.assert_allclose(layer(x).data, x @ layer.weight.data.T)
    assert layer(x).dtype == np.float64


def test_linear_wrong_width_names_the_layer_and_both_shapes():
    layer = Linear(784, 256, generator=rng())
    with pytest.raises(ValueError) as info:
        layer(np.zeros((32, 28), dtype=np.float32))
    message = str(info.value)
    assert "Linear(in_features=784, out_features=256" in message
    assert "(32, 28)" in message and "(256, 784)" in message


def test_linear_rejects_a_silent_float64_upcast():
    with pytest.raises(TypeError, match="float64.*float32"):
        Linear(2, 2, generator=rng())(np.ones((1, 2)))


# -- activations and Sequential -----------------------------------------------------------


@pytest.mark.parametrize(
    "layer, expected",
    [
        (ReLU(), lambda x: np.maximum(x, 0)),
        (Tanh(), np.tanh),
        (Sigmoid(), lambda x: 1 / (1 + np.exp(-x))),
    ],
)
def test_activations_compute_their_function(layer, expected):
    x = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(layer(x).data, expected(x), rtol=1e-12)
    assert layer.parameters() == []


def test_sequential_order_indexing_and_names():
    model = Sequential(Linear(4, 5, generator=rng()), Tanh(), Linear(5, 2, generator=rng(1)))
    assert len(model) == 3 and isinstance(model[-1], Linear) and isinstance(model[1], Tanh)
    assert [type(layer).__name__ for layer in model] == ["Linear", "Tanh", "Linear"]
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    x = rng(2).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(model(x).data, model[2](model[1](model[0](x))).data)
    with pytest.raises(IndexError):
        model[3]
    head = model[1:]
    assert isinstance(head, Sequential) and len(head) == 2 and head[1] is model[2]
    assert [n for n, _ in head.named_parameters()] == ["1.weight", "1.bias"]


def test_sequential_refuses_something_that_is_not_a_module():
    with pytest.raises(TypeError, match="layer 1 is a function"):
        Sequential(ReLU(), lambda x: x)


# -- losses -------------------------------------------------------------------------------


def reference_cross_entropy(z: np.ndarray, t: np.ndarray) -> tuple[float, np.ndarray]:
    z = z.astype(np.float64)
    shifted = z - z.max(1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    rows = np.arange(len(t))
    grad = np.exp(log_softmax)
    grad[rows, t] -= 1
    return -log_softmax[rows, t].mean(), grad / len(t)


def test_mse_value_gradient_dtype_and_reductions():
    pred = Variable(np.array([[1.0, 2.0], [3.0, 5.0]], dtype=np.float32), requires_grad=True)
    target = np.array([[1.0, 0.0], [0.0, 1.0]])  # float64 target: the loss stays float32
    loss = MSELoss()(pred, target)
    assert loss.dtype == np.float32
    assert loss.item() == pytest.approx((0 + 4 + 9 + 16) / 4)
    loss.backward()
    np.testing.assert_allclose(pred.grad, 2 * (pred.data - target) / 4, rtol=1e-6)
    assert mse_loss(pred, target, reduction="sum").item() == pytest.approx(29)


def test_mse_refuses_shapes_numpy_would_broadcast():
    with pytest.raises(ValueError, match=r"\(4, 1\).*\(4,\)"):
        mse_loss(np.zeros((4, 1), dtype=np.float32), np.zeros(4))


@pytest.mark.parametrize("maker", [lambda: MSELoss("max"), lambda: CrossEntropyLoss("avg")])
def test_unknown_reduction_is_refused(maker):
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum'"):
        maker()


@pytest.mark.parametrize("scale", [1.0, 30.0, 1e4])
def test_cross_entropy_matches_the_formula_at_every_scale(scale):
    z = rng(3).standard_normal((9, 5)) * scale
    t = rng(4).integers(0, 5, 9)
    logits = Variable(z, requires_grad=True)
    loss = cross_entropy(logits, t)
    loss.backward()
    want_loss, want_grad = reference_cross_entropy(z, t)
    assert loss.item() == pytest.approx(want_loss, rel=1e-12)
    np.testing.assert_allclose(logits.grad, want_grad, rtol=1e-9, atol=1e-15)


def test_cross_entropy_equals_the_graph_of_module_01_ops():
    z = rng(9).standard_normal((7, 4)).astype(np.float32)
    t = np.array([3, 0, 1, 1, 2, 0, 3])
    composite_logits = Variable(z, requires_grad=True)
    composite = -(composite_logits.log_softmax(axis=1)[np.arange(7), t]).mean()
    composite.backward()
    fused_logits = Variable(z.copy(), requires_grad=True)
    fused = cross_entropy(fused_logits, t)
    fused.backward()
    assert fused.item() == pytest.approx(composite.item(), rel=1e-6)
    np.testing.assert_allclose(fused_logits.grad, composite_logits.grad, rtol=1e-5, atol=1e-7)


def test_cross_entropy_with_logits_of_1e4_in_float32_is_finite():
    z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [1e4, 1e4, 1e4]], dtype=np.float32)
    logits = Variable(z, requires_grad=True)
    loss = cross_entropy(logits, np.array([1, 2, 0]))
    loss.backward()
    assert loss.dtype == np.float32 and np.isfinite(loss.item())
    # row 0 misses by 2e4, row 1 is right, row 2 is a three-way tie: log 3.
    assert loss.item() == pytest.approx((2e4 + 0 + np.log(3)) / 3, rel=1e-6)
    assert np.all(np.isfinite(logits.grad)) and logits.grad.dtype == np.float32


def test_cross_entropy_sum_reduction_and_module_form():
    z = rng(5).standard_normal((4, 3))
    t = np.array([0, 2, 1, 1])
    mean = CrossEntropyLoss()(z, t).item()
    assert CrossEntropyLoss("sum")(z, t).item() == pytest.approx(4 * mean)


@pytest.mark.parametrize(
    "targets, error, words",
    [
        (np.array([0.0, 1.0, 2.0]), TypeError, "integer class indices.*float64"),
        (Variable(np.array([0, 1, 2])), TypeError, "float32"),
        (np.array([0, 3, 1]), IndexError, "target 3 at position 1 is out of range for 3 classes"),
        (np.array([0, -1, 1]), IndexError, "target -1 at position 1"),
        (np.array([0, 1]), ValueError, r"shape \(3,\).*got \(2,\)"),
        (np.array([[0], [1], [2]]), ValueError, r"got \(3, 1\)"),
    ],
)
def test_cross_entropy_bad_targets_get_a_clear_error(targets, error, words):
    with pytest.raises(error, match=words):
        cross_entropy(np.zeros((3, 3), dtype=np.float32), targets)


def test_cross_entropy_needs_2d_logits():
    with pytest.raises(ValueError, match=r"logits must have shape \(N, C\), got \(3,\)"):
        cross_entropy(np.zeros(3, dtype=np.float32), np.array([0, 1, 2]))


# -- describe -----------------------------------------------------------------------------


def test_describe_measures_parameters_and_activations_and_leaves_no_trace():
    model = Sequential(Linear(10, 6, generator=rng()), ReLU(), Linear(6, 3, generator=rng()))
    table = describe(model, (4, 10))
    lines = table.splitlines()
    assert misaligned_boxes(lines) == []
    assert "│ 0     │ Linear │ weight (6, 10) │" in table
    assert "(4, 6)" in table and f"{4 * 6 * 4:,}" in table
    count = sum(p.data.size for p in model.parameters())
    nbytes = sum(p.data.nbytes for p in model.parameters())
    total = next(line for line in lines if line.startswith("│ total"))
    assert f"{count:,} parameters" in total and f"{nbytes:,}" in total
    assert all("forward" not in vars(layer) for layer in model)  # hooks removed


def test_describe_handles_a_single_layer_and_custom_modules():
    assert "│ Linear │ Linear │ weight (2, 3)" in describe(Linear(3, 2, generator=rng()), (1, 3))
    table = describe(Block(rng()), (5, 3))
    assert "fc1" in table and "act" in table and "(5, 3)" in table
    assert misaligned_boxes(table.splitlines()) == []


# -- PyTorch ------------------------------------------------------------------------------


@pytest.mark.torch
def test_layers_and_losses_match_pytorch():
    torch = pytest.importorskip("torch")
    ours = Sequential(
        Linear(5, 7, generator=rng(), dtype=np.float64),
        Tanh(),
        Linear(7, 3, generator=rng(1), dtype=np.float64),
    )
    theirs = torch.nn.Sequential(
        torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3)
    ).double()
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    x = rng(2).standard_normal((6, 5))
    t = np.array([0, 1, 2, 2, 1, 0])
    for loss_ours, loss_theirs, target in [
        (cross_entropy, torch.nn.functional.cross_entropy, t),
        (mse_loss, torch.nn.functional.mse_loss, rng(3).standard_normal((6, 3))),
    ]:
        ours.zero_grad()
        theirs.zero_grad()
        mine = loss_ours(ours(x), target)
        mine.backward()
        reference = loss_theirs(theirs(torch.from_numpy(x)), torch.from_numpy(target))
        reference.backward()
        assert mine.item() == pytest.approx(reference.item(), rel=1e-12)
        for (name, p), q in zip(ours.named_parameters(), theirs.parameters(), strict=True):
            np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-10, atol=1e-14, err_msg=name)


@pytest.mark.torch
def test_init_bound_matches_pytorch_default():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    for n_in, n_out in [(784, 256), (3, 1000)]:
        theirs = torch.nn.Linear(n_in, n_out)
        ours = Linear(n_in, n_out, generator=rng())
        for a, b in [
            (ours.weight.data, theirs.weight.detach().numpy()),
            (ours.bias.data, theirs.bias.detach().numpy()),
        ]:
            assert np.abs(a).max() <= 1 / np.sqrt(n_in) and np.abs(b).max() <= 1 / np.sqrt(n_in)
            assert a.std() == pytest.approx(b.std(), rel=0.1)
