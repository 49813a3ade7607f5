"""The diagrams in module 04's markdown are drawn from the live package: re-render each
one and compare it with the text between its `<!-- name -->` markers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from marked import marked_block

from tinytorch.data import DataLoader, TensorDataset, ascii_digit, load_digits
from tinytorch.training import digits_mlp

SOURCE = Path(__file__).resolve().parents[1] / "modules" / "04_training" / "training.py"


def render_first_digit() -> str:
    x, y = load_digits()
    return ascii_digit(x[0], int(y[0]), index=0)


def render_loader_trace() -> str:
    n, size = 10, 4
    loader = DataLoader(TensorDataset(np.arange(n)), batch_size=size, shuffle=True, seed=0)
    lines = ["DataLoader(TensorDataset(np.arange(10)), batch_size=4, shuffle=True, seed=0)", ""]
    for epoch in (1, 2):
        order = loader.epoch_order()
        batches = " ".join(str(b).replace("  ", " ") for b in loader.batches(order))
        lines += [f"epoch {epoch}: permutation {order}", f"         batches     {batches}"]
    dropped = len(DataLoader(TensorDataset(np.arange(n)), batch_size=size, drop_last=True))
    lines += [
        "",
        f"len(loader) = ceil({n} / {size}) = {math.ceil(n / size)} batches per epoch "
        f"({dropped} with drop_last=True)",
    ]
    return "\n".join(lines)


def memory_rows(batch: int = 32, hidden: int = 256) -> list[tuple[str, str, int]]:
    x, y = load_digits()
    model = digits_mlp(hidden)
    params = sum(p.data.size for p in model.parameters())
    param_bytes = sum(p.data.nbytes for p in model.parameters())
    return [
        ("whole dataset", f"x {x.shape} {x.dtype}", x.nbytes),
        ("", f"y {y.shape} {y.dtype}", y.nbytes),
        ("one batch", f"xb ({batch}, {x.shape[1]}) {x.dtype}", x[:batch].nbytes),
        (f"MLP 64-{hidden}-10", f"{params:,} parameters", param_bytes),
        ("gradients", "one per parameter", param_bytes),
        ("Adam state", "exp_avg + exp_avg_sq", 2 * param_bytes),
        ("activations", f"hidden ({batch}, {hidden}) float32", batch * hidden * 4),
    ]


def render_memory_box() -> str:
    body = [f"│ {label:<16} {what:<28} {size:>9,} B │" for label, what, size in memory_rows()]
    width = len(body[0]) - 2
    return "\n".join(["┌" + "─" * width + "┐", *body, "└" + "─" * width + "┘"])


@pytest.mark.parametrize(
    "name, render",
    [
        ("digits:first", render_first_digit),
        ("trace:loader", render_loader_trace),
        ("memory:digits", render_memory_box),
    ],
)
def test_markdown_diagram_matches_the_live_package(name, render):
    expected = render()
    assert marked_block(SOURCE, name) == expected, (
        f"the <!-- {name} --> diagram is stale; it should read:\n{expected}"
    )


def test_adam_state_in_the_memory_box_is_what_adam_allocates():
    """The box says Adam keeps two arrays per parameter; count them on a live optimizer."""
    from tinytorch.autograd import Variable
    from tinytorch.nn import CrossEntropyLoss
    from tinytorch.optim import Adam

    model = digits_mlp(256)
    optimizer = Adam(model.parameters(), lr=1e-3)
    x, y = load_digits()
    CrossEntropyLoss()(model(Variable(x[:32])), y[:32]).backward()
    optimizer.step()
    arrays = [
        v for state in optimizer.state.values() for v in state.values() if isinstance(v, np.ndarray)
    ]
    param_bytes = sum(p.data.nbytes for p in model.parameters())
    assert sum(a.nbytes for a in arrays) == 2 * param_bytes


def test_dataset_size_table_is_arithmetic():
    """Each row of the "why batches" table: images × bytes per image = the total shown."""
    text = SOURCE.read_text(encoding="utf-8")
    for images, per_image, total in [
        (1797, 8 * 8, 115_008),
        (60_000, 28 * 28, 47_040_000),
        (1_281_167, 224 * 224 * 3, 192_851_506_176),
    ]:
        assert images * per_image == total
        spaced = f"{total:,}".replace(",", " ")
        assert f"| {spaced} B" in text, f"the table should give {spaced} B for {images} images"


def test_epoch_loss_example_uses_the_real_training_split():
    """Part 4's weighted-mean picture: training images, batch count and last batch size."""
    from tinytorch.data import train_val_test_split

    _, y = load_digits()
    train, _, _ = train_val_test_split(y, seed=1)
    n, size = len(train), 32
    batches, last = math.ceil(n / size), n - (math.ceil(n / size) - 1) * size
    text = SOURCE.read_text(encoding="utf-8")
    spaced = f"{n:,}".replace(",", " ")
    assert f"{last}      ({spaced} training images, {batches} batches)" in text
    assert f"{last}·l₃₄) / {spaced}" in text and batches == 34
