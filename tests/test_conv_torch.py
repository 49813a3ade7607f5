"""Module 06 against PyTorch: conv2d forward and every gradient, and pooling backward, in
float64 on random shapes, strides, paddings and dilations (rtol 1e-7)."""

from __future__ import annotations

import numpy as np
import pytest

from tinytorch.autograd import Variable, gradcheck
from tinytorch.conv import Conv2d, avg_pool2d, conv2d, max_pool2d

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch
F = torch.nn.functional
RTOL, ATOL = 1e-7, 1e-12


def random_case(rng: np.random.Generator) -> dict:
    """A random conv2d configuration whose output is at least 1×1."""
    while True:
        kh, kw = rng.integers(1, 5, size=2)
        case = dict(
            n=int(rng.integers(1, 4)),
            c=int(rng.integers(1, 5)),
            o=int(rng.integers(1, 6)),
            h=int(rng.integers(3, 12)),
            w=int(rng.integers(3, 12)),
            kernel=(int(kh), int(kw)),
            stride=tuple(int(v) for v in rng.integers(1, 4, size=2)),
            padding=tuple(int(v) for v in rng.integers(0, 3, size=2)),
            dilation=tuple(int(v) for v in rng.integers(1, 3, size=2)),
            bias=bool(rng.integers(2)),
        )
        spans = [d * (k - 1) + 1 for d, k in zip(case["dilation"], case["kernel"], strict=False)]
        sizes = [s + 2 * p for s, p in zip((case["h"], case["w"]), case["padding"], strict=False)]
        if all(span <= size for span, size in zip(spans, sizes, strict=False)):
            return case


def both(case: dict, rng: np.random.Generator):
    """(tinytorch result, torch result): outputs and the gradients of x, weight, bias."""
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"]))
    weight = rng.standard_normal((case["o"], case["c"], *case["kernel"]))
    bias = rng.standard_normal(case["o"]) if case["bias"] else None
    options = {k: case[k] for k in ("stride", "padding", "dilation")}

    ours = [Variable(a, requires_grad=True) if a is not None else None for a in (x, weight, bias)]
    out = conv2d(*ours, **options)
    grad_output = rng.standard_normal(out.shape)
    out.backward(grad_output)

    theirs = [
        torch.tensor(a, requires_grad=True) if a is not None else None for a in (x, weight, bias)
    ]
    expected = F.conv2d(*theirs, **options)
    expected.backward(torch.tensor(grad_output))
    got = [out.data] + [v.grad for v in ours if v is not None]
    want = [expected.detach().numpy()] + [t.grad.numpy() for t in theirs if t is not None]
    return got, want


@pytest.mark.parametrize("seed", range(40))
def test_conv2d_forward_and_gradients_match_torch(seed):
    rng = np.random.default_rng(seed)
    case = random_case(rng)
    got, want = both(case, rng)
    names = ["output", "x.grad", "weight.grad", "bias.grad"]
    for name, g, w in zip(names, got, want, strict=False):
        assert g.shape == w.shape, f"{case}: {name} shape {g.shape}, torch {w.shape}"
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL, err_msg=f"{case}: {name}")


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize(
    "shape, kernel, stride",
    [((2, 3, 8, 8), 2, None), ((1, 2, 7, 9), (3, 2), (2, 1)), ((2, 1, 6, 6), 3, 1)],
)
def test_pooling_forward_and_backward_match_torch(mode, shape, kernel, stride):
    rng = np.random.default_rng(len(shape) + sum(shape))
    x = rng.standard_normal(shape)
    ours = Variable(x, requires_grad=True)
    out = (max_pool2d if mode == "max" else avg_pool2d)(ours, kernel, stride)
    grad_output = rng.standard_normal(out.shape)
    out.backward(grad_output)
    theirs = torch.tensor(x, requires_grad=True)
    pool = F.max_pool2d if mode == "max" else F.avg_pool2d
    expected = pool(theirs, kernel, stride)
    expected.backward(torch.tensor(grad_output))
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=RTOL, atol=ATOL)


def test_max_pool_ties_go_to_the_first_maximum_as_in_torch():
    x = np.zeros((1, 1, 4, 4))
    ours = Variable(x, requires_grad=True)
    max_pool2d(ours, 2, 1).sum().backward()
    theirs = torch.tensor(x, requires_grad=True)
    F.max_pool2d(theirs, 2, 1).sum().backward()
    np.testing.assert_array_equal(ours.grad, theirs.grad.numpy())


def test_max_pool_nan_comes_out_and_takes_the_gradient_as_in_torch():
    x = np.arange(32.0).reshape(1, 2, 4, 4)
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = np.nan  # two NaNs in the first window, one in another
    x[0, 1, 3, 3] = np.nan
    ours = Variable(x, requires_grad=True)
    out = max_pool2d(ours, 2)
    out.sum().backward()
    theirs = torch.tensor(x, requires_grad=True)
    expected = F.max_pool2d(theirs, 2)
    expected.sum().backward()
    np.testing.assert_array_equal(out.data, expected.detach().numpy())
    np.testing.assert_array_equal(ours.grad, theirs.grad.numpy())


def test_conv2d_layer_initialisation_matches_torch_bounds():
    layer = Conv2d(6, 4, (3, 5), generator=np.random.default_rng(0), dtype=np.float64)
    reference = torch.nn.Conv2d(6, 4, (3, 5))
    for name in ("weight", "bias"):
        ours, theirs = getattr(layer, name).data, getattr(reference, name).detach().numpy()
        assert ours.shape == theirs.shape
        bound = 1 / np.sqrt(6 * 3 * 5)
        assert np.abs(ours).max() <= bound and np.abs(theirs).max() <= bound
    weight = layer.weight.data  # 360 draws: their largest is near the bound, not narrower
    assert np.abs(weight).max() > 0.9 / np.sqrt(6 * 3 * 5)


@pytest.mark.parametrize(
    "stride, padding, dilation", [(1, 0, 1), (2, 1, 1), ((1, 2), (2, 0), (2, 1))]
)
def test_conv2d_gradcheck(stride, padding, dilation):
    rng = np.random.default_rng(7)
    x = Variable(rng.standard_normal((2, 2, 5, 6)), requires_grad=True)
    weight = Variable(rng.standard_normal((3, 2, 2, 3)), requires_grad=True)
    bias = Variable(rng.standard_normal(3), requires_grad=True)
    assert gradcheck(lambda a, w, b: conv2d(a, w, b, stride, padding, dilation), [x, weight, bias])


@pytest.mark.parametrize("pool", [max_pool2d, avg_pool2d])
def test_pool_gradcheck(pool):
    rng = np.random.default_rng(3)
    x = Variable(rng.permutation(2 * 2 * 5 * 5).reshape(2, 2, 5, 5) / 7.0, requires_grad=True)
    assert gradcheck(lambda a: pool(a, 2, 1), [x])
