"""Test helpers of module 06 (convolutions): references written with numpy alone.

Each reference loops over the kernel offsets (a handful) and slices the input with
strides, which is a different computation from the im2col a student writes, so a mistake
in the student's layout cannot also be in the expected values.
"""

from __future__ import annotations

import re

import numpy as np

from .checks import numerical_gradients

__all__ = [
    "conv2d_reference",
    "pool2d_reference",
    "conv2d_gradients",
    "pool2d_gradients",
    "max_pool2d_gradient_with_ties",
    "output_size",
    "numbers_besides_shapes",
]


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1):
    """Output length along one axis: floor((size + 2p - d(k-1) - 1) / s) + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv2d_reference(x, weight, bias=None, stride=1, padding=0, dilation=1) -> np.ndarray:
    """PyTorch's conv2d (cross-correlation) on NCHW float64 arrays, one kernel offset at
    a time: out[n, o] += sum_c weight[o, c, i, j] * x_padded[n, c, window shifted by (i, j)]."""
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    x = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    weight = np.asarray(weight, np.float64)
    n, _, height, width = x.shape
    out_ch, _, kh, kw = weight.shape
    oh = output_size(height, kh, sh, 0, dh)
    ow = output_size(width, kw, sw, 0, dw)
    out = np.zeros((n, out_ch, oh, ow))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, :, i * dh : i * dh + sh * (oh - 1) + 1 : sh,
                      j * dw : j * dw + sw * (ow - 1) + 1 : sw]  # fmt: skip
            out += np.einsum("nchw,oc->nohw", patch, weight[:, :, i, j])
    if bias is not None:
        out += np.asarray(bias, np.float64)[None, :, None, None]
    return out


def pool2d_reference(x, kernel_size, stride=None, mode: str = "max") -> np.ndarray:
    """max_pool2d / avg_pool2d (no padding) on NCHW arrays, one kernel offset at a time."""
    (kh, kw) = _pair(kernel_size)
    (sh, sw) = _pair(kernel_size if stride is None else stride)
    x = np.asarray(x, np.float64)
    oh, ow = output_size(x.shape[2], kh, sh), output_size(x.shape[3], kw, sw)
    patches = [
        x[:, :, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw]
        for i in range(kh)
        for j in range(kw)
    ]
    if mode == "max":
        return np.max(patches, axis=0)
    return np.mean(patches, axis=0)


def conv2d_gradients(x, weight, bias, grad_output, **options) -> list[np.ndarray]:
    """Gradients of sum(grad_output * conv2d(x, weight, bias)) by central differences."""
    return numerical_gradients(
        lambda a, w, b: conv2d_reference(a, w, b, **options), [x, weight, bias], grad_output
    )


def pool2d_gradients(x, grad_output, kernel_size, stride=None, mode="max") -> np.ndarray:
    """Gradient of sum(grad_output * pool(x)) by central differences (values must be
    distinct within each window for max pooling)."""
    return numerical_gradients(
        lambda a: pool2d_reference(a, kernel_size, stride, mode), [x], grad_output
    )[0]


def max_pool2d_gradient_with_ties(x, grad_output, kernel_size, stride=None) -> np.ndarray:
    """x's gradient under max pooling as PyTorch routes it: each output's gradient goes
    whole to ONE input, the first maximum of its window in row order (where finite
    differences would split it between tied maxima), or to the window's last NaN. One
    window at a time."""
    (kh, kw) = _pair(kernel_size)
    (sh, sw) = _pair(stride if stride is not None else kernel_size)
    x, grad_output = np.asarray(x, np.float64), np.asarray(grad_output, np.float64)
    grad = np.zeros_like(x)
    n, c, oh, ow = grad_output.shape
    for index in np.ndindex(n, c, oh, ow):
        b, ch, r, col = index
        window = x[b, ch, r * sh : r * sh + kh, col * sw : col * sw + kw].ravel()
        nans = np.flatnonzero(np.isnan(window))  # a NaN takes over, the last one wins
        first = int(nans[-1]) if nans.size else int(np.flatnonzero(window == window.max())[0])
        grad[b, ch, r * sh + first // kw, col * sw + first % kw] += grad_output[index]
    return grad


_SHAPE = re.compile(r"\(\s*\d+\s*(?:,\s*\d+\s*)*,?\s*\)")  # (2, 3, 6, 6), (7,), (3, 7)


def numbers_besides_shapes(message: str) -> set[int]:
    """The whole numbers a message states outside its shapes and pairs: for "input (2, 3,
    6, 6) has 3 channels but weight (4, 2, 3, 3) expects 2", {3, 2}. Digits inside words
    (conv2d) are not numbers."""
    return {int(n) for n in re.findall(r"\b\d+\b", _SHAPE.sub(" ", message))}
