"""Module 06 as a user meets it: misuse errors that name the layer and the shapes, layers
found in tinytorch.nn too, memory of the im2col view, and a small CNN that learns."""

from __future__ import annotations

import numpy as np
import pytest

import tinytorch.conv as conv
from tinytorch.autograd import Variable
from tinytorch.conv import AvgPool2d, Conv2d, Flatten, MaxPool2d, conv2d, max_pool2d

X = np.zeros((2, 3, 6, 6), dtype=np.float32)
W = np.zeros((4, 3, 3, 3), dtype=np.float32)


def test_public_names_are_the_pytorch_ones_and_nothing_internal():
    assert set(conv.__all__) >= {
        "conv2d", "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten", "max_pool2d", "avg_pool2d"
    }  # fmt: skip
    assert not [name for name in conv.__all__ if name.startswith("_")]


@pytest.mark.parametrize(
    "call, fragments",
    [
        (lambda: conv2d(X[0], W), ["conv2d", "4-D", "(3, 6, 6)"]),
        (lambda: conv2d(X, W[:, :2]), ["conv2d", "(2, 3, 6, 6)", "(4, 2, 3, 3)", "channels"]),
        (lambda: conv2d(X, W, stride=0), ["conv2d", "stride", "(0, 0)"]),
        (lambda: conv2d(X, W, padding=-1), ["conv2d", "padding", "(-1, -1)"]),
        (lambda: conv2d(X, np.zeros((4, 3, 7, 7))), ["conv2d", "(7, 7)", "(2, 3, 6, 6)"]),
        (lambda: conv2d(X, W, dilation=3), ["conv2d", "dilation", "spans 7"]),
        (lambda: Conv2d(2, 4, 3)(X), ["Conv2d(2, 4", "(N, 2, H, W)", "(2, 3, 6, 6)"]),
        (lambda: Conv2d(3, 4, 0), ["Conv2d(3, 4)", "kernel_size (0, 0)"]),
        (lambda: Conv2d(3, 4, 3, stride=-1), ["Conv2d(3, 4)", "stride (-1, -1)"]),
        (lambda: MaxPool2d(2)(X[0]), ["MaxPool2d(kernel_size=2", "4-D", "(3, 6, 6)"]),
        (lambda: MaxPool2d(7)(X), ["MaxPool2d(kernel_size=7", "(7, 7)", "(2, 3, 6, 6)"]),
        (lambda: AvgPool2d(0)(X), ["AvgPool2d(kernel_size=0", ">= 1"]),
        (lambda: max_pool2d(X, 2, stride=0), ["max_pool2d", "stride (0, 0)"]),
    ],
)
def test_misuse_raises_value_error_naming_the_layer_and_shapes(call, fragments):
    with pytest.raises(ValueError) as raised:
        call()
    missing = [f for f in fragments if f not in str(raised.value)]
    assert not missing, f"message lacks {missing}: {raised.value}"


def test_non_integer_options_raise_type_error_naming_the_option():
    with pytest.raises(TypeError, match="kernel_size must be an int or a pair"):
        Conv2d(3, 4, 2.5)
    with pytest.raises(TypeError, match="stride must be an int or a pair"):
        conv2d(X, W, stride=(1, 2, 3))


def test_layers_are_found_in_tinytorch_nn_too():
    nn = pytest.importorskip("tinytorch.nn")
    try:
        found = nn.Conv2d
    except AttributeError:
        pytest.skip("tinytorch.nn does not forward to tinytorch.conv yet (module 02's re-cut)")
    assert found is Conv2d and nn.MaxPool2d is MaxPool2d and nn.Flatten is Flatten


def test_windows_are_a_view_and_the_column_matrix_is_what_backward_keeps():
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    windows = conv._windows(x, (3, 3))
    assert np.shares_memory(windows, x) and windows.shape == (2, 3, 6, 6, 3, 3)
    out = conv2d(Variable(x), Variable(W[:, :3], requires_grad=True))
    cols, _ = out.grad_fn.saved_tensors
    assert cols.shape == (2, 3 * 3 * 3, 6 * 6) and not np.shares_memory(cols, x)


def test_float32_in_float32_out_and_output_is_contiguous():
    layer = Conv2d(3, 5, 3, padding=1, generator=np.random.default_rng(0))
    out = layer(np.ones((1, 3, 5, 5), dtype=np.float32))
    assert out.dtype == np.float32 and out.data.flags.c_contiguous and out.shape == (1, 5, 5, 5)


def test_flatten_keeps_the_batch_dimension():
    out = Flatten()(Variable(np.zeros((4, 2, 3, 5))))
    assert out.shape == (4, 30)


def test_a_small_cnn_learns_the_digits():
    """CI-sized: a narrow CNN, 3 epochs (91.6 % with the reference; chance is 10 %)."""
    run = conv.train_digits_cnn(epochs=3, split_seed=0, channels=(8, 8), lr=1e-2, progress=False)
    assert run.history.train_loss[-1] < run.history.train_loss[0]
    assert run.test_accuracy > 0.85, f"test accuracy {run.test_accuracy:.2%}"
