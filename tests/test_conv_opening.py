"""The diagrams in module 06's markdown are drawn from the live package: re-render each
one and compare it with the text between its `<!-- name -->` markers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from marked import marked_block

from tinytorch.autograd import Variable
from tinytorch.conv import Conv2d, conv2d

SOURCE = Path(__file__).resolve().parents[1] / "modules" / "06_conv" / "conv.py"


def render_pixel_trace() -> str:
    """A vertical-edge kernel on a seeded 5×5 image; output pixel (1, 2) written out."""
    x = np.random.default_rng(0).integers(0, 10, size=(5, 5)).astype(np.float64)
    w = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
    y = conv2d(Variable(x[None, None]), Variable(w[None, None])).data[0, 0]
    row, col = 1, 2

    def cells(values, mark_rows, mark_cols, width):
        lines = []
        for r, line in enumerate(values):
            text = ""
            for c, v in enumerate(line):
                inside = r in mark_rows and c in mark_cols
                left = "[" if inside and c == mark_cols[0] else " "
                right = "]" if inside and c == mark_cols[-1] else " "
                text += f"{left}{int(v):>{width}}{right}"
            lines.append(text)
        return lines

    left = cells(x, range(row, row + 3), range(col, col + 3), 1)
    middle = cells(w, [], [], 2)
    right = cells(y, [row], [col], 3)
    width = max(len(s) for s in left) + 4
    mid = max(len(s) for s in middle) + 4
    lines = [f"{'input x (5×5)':<{width}}{'kernel w (3×3)':<{mid}}y = conv2d(x, w) (3×3)"]
    for r in range(5):
        lines.append(
            (left[r].ljust(width) + (middle[r] if r < 3 else "").ljust(mid)
             + (right[r] if r < 3 else "")).rstrip()
        )  # fmt: skip
    terms = " + ".join(
        f"{int(x[row + i, col + j])}·{int(w[i, j])}" if w[i, j] >= 0
        else f"{int(x[row + i, col + j])}·({int(w[i, j])})"
        for i in range(3)
        for j in range(3)
    )  # fmt: skip
    lines += ["", f"y[{row}, {col}] = {terms}", f"        = {int(y[row, col])}"]
    return "\n".join(lines)


def render_im2col_memory() -> str:
    """Bytes of each array of the im2col forward for the CIFAR-sized first layer."""
    shape, out_channels = (32, 3, 32, 32), 16
    x = np.zeros(shape, dtype=np.float32)
    layer = Conv2d(3, out_channels, 3, padding=1, generator=np.random.default_rng(0))
    out = layer(Variable(x, requires_grad=True))
    cols, weight = out.grad_fn.saved_tensors
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    view = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))
    assert np.shares_memory(view, padded)
    rows = [
        ("padded input", f"{padded.shape}", "", padded.nbytes),
        ("window view", f"{view.shape}", "strides only", 0),
        ("column matrix", f"{cols.shape}", "a copy", cols.nbytes),
        ("weight matrix", f"{weight.reshape(out_channels, -1).shape}", "", weight.nbytes),
        ("output", f"{out.shape}", "", out.data.nbytes),
    ]
    body = [f"│ {a:<16} {b:<22} {c:<13} {d:>11,} B │" for a, b, c, d in rows]
    inner = len(body[0]) - 2
    return "\n".join(
        [
            f"x {shape} float32, Conv2d(3, {out_channels}, kernel_size=3, padding=1)",
            "",
            "┌" + "─" * inner + "┐",
            *body,
            "└" + "─" * inner + "┘",
            f"the column matrix is {cols.nbytes / x.nbytes:.1f} × the input x "
            f"({x.nbytes:,} B): a {layer.kernel_size[0]}×{layer.kernel_size[1]} window "
            "per pixel and channel",
        ]
    )


@pytest.mark.parametrize(
    "name, render",
    [("trace:pixel", render_pixel_trace), ("memory:im2col", render_im2col_memory)],
)
def test_opening_diagram_is_what_the_package_computes(name, render):
    assert marked_block(SOURCE, name) == render(), (
        f"re-render the <!-- {name} --> block:\n{render()}"
    )
