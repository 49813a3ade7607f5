"""`tinytorch-course demo cnn`: the module 06 CNN trained on the digits with a progress
bar, its learning curves, its test accuracy beside the MLP's, and a few test digits
drawn with what the CNN read in them. `demo cnn --fashion [--epochs N] [--limit N]`
trains the Fashion-MNIST CNN instead. Uses only the exported package."""

from __future__ import annotations

import os
import time

import numpy as np

from .demo_training import one_blas_thread


def side_by_side(blocks: list[str], gap: int = 3) -> str:
    """Text blocks (each a few lines) printed next to each other."""
    split = [b.splitlines() for b in blocks]
    widths = [max(len(line) for line in lines) for lines in split]
    height = max(len(lines) for lines in split)
    rows = []
    for r in range(height):
        cells = [
            (lines[r] if r < len(lines) else "").ljust(w)
            for lines, w in zip(split, widths, strict=False)
        ]
        rows.append((" " * gap).join(cells).rstrip())
    return "\n".join(rows)


def example_picks(shown: int, wrong: np.ndarray) -> list[int]:
    """`shown` distinct test indices: the first ones, then the first the model got wrong."""
    first_wrong = [int(i) for i in wrong[:1]]
    picks = [i for i in range(shown) if i not in first_wrong][: shown - len(first_wrong)]
    return picks + first_wrong


def print_curves(history, held_out: str, model: str = "") -> None:
    """Loss and accuracy per epoch, on the training data and the held-out set, as charts."""
    from tinytorch.training import ascii_chart

    for what, train, held in (
        ("loss", history.train_loss, history.val_loss),
        ("accuracy", history.train_acc, history.val_acc),
    ):
        short = "acc" if what == "accuracy" else what
        series = {f"train {short}": train, f"{held_out} {short}": held}
        print()
        print(ascii_chart(series, title=f"{model}{what} per epoch"))


def show_cnn(epochs: int = 15, split_seed: int = 1, progress: bool = True, shown: int = 4):
    """Train the digits CNN, print curves, accuracy and predictions; returns test accuracy."""
    from tinytorch.conv import train_digits_cnn
    from tinytorch.data import ascii_digit
    from tinytorch.nn import describe
    from tinytorch.training import predict, train_digits

    print(
        f"Training a CNN on the UCI digits (split seed {split_seed}, {epochs} epochs): learning "
        "curves on train/validation, then the final model on train + validation"
    )
    start = time.perf_counter()
    with one_blas_thread():
        run = train_digits_cnn(epochs=epochs, split_seed=split_seed, progress=progress)
        print(describe(run.model, (1, 1, 8, 8)))
        mlp = train_digits(split_seed=split_seed, progress=progress)
    print_curves(run.history, "val", model="CNN ")
    predicted = predict(run.model, run.test_images)
    wrong = (predicted != run.test_labels).nonzero()[0]
    print(
        f"\ntest accuracy on {len(run.test_labels)} held-out digits: CNN {run.test_accuracy:.2%} "
        f"({len(wrong)} wrong), MLP {mlp.test_accuracy:.2%} "
        f"({round((1 - mlp.test_accuracy) * len(run.test_labels))} wrong); "
        f"{time.perf_counter() - start:.1f} s in all"
    )
    scaler = run.scaler
    images = run.test_images.reshape(len(run.test_images), -1) * (scaler.std + scaler.eps)
    images = images + scaler.mean  # undo the standardisation to draw the ink
    picks = example_picks(shown, wrong)
    drawings = [
        ascii_digit(images[i], int(run.test_labels[i]), index=i).replace(
            "(darker = more ink)", f"read as {int(predicted[i])}"
        )
        for i in picks
    ]
    print("\nsome test digits and what the CNN read (the last one it got wrong):"
          if len(wrong) else "\nsome test digits and what the CNN read:")  # fmt: skip
    print(side_by_side(drawings))
    return run.test_accuracy


def ascii_image(image: np.ndarray, title: str) -> str:
    """A 28×28 uint8 image drawn at 14×14 (means of 2×2 blocks), two characters a pixel."""
    shades = " ░▒▓█"
    small = image.reshape(14, 2, 14, 2).mean(axis=(1, 3)) / 255
    levels = np.clip(np.rint(small * (len(shades) - 1)), 0, len(shades) - 1).astype(int)
    rows = ["│" + "".join(shades[v] * 2 for v in row) + "│" for row in levels]
    return "\n".join([title[:30], "┌" + "─" * 28 + "┐", *rows, "└" + "─" * 28 + "┘"])


def show_fashion(epochs: int = 4, limit: int | None = None, progress: bool = True, shown: int = 4):
    """Train `fashion_cnn` on Fashion-MNIST (60 000 images, or `limit`), print the curves,
    test accuracy on the 10 000 test images, time, load average and a few predictions."""
    from tinytorch.conv import FASHION_MNIST_CLASSES, load_fashion_mnist, train_fashion_cnn
    from tinytorch.nn import describe
    from tinytorch.training import predict

    load = os.getloadavg()
    try:  # module 05: glibc keeps freed memory for the next step (process-wide)
        from tinytorch.memory import keep_freed_memory

        kept = keep_freed_memory()
    except ImportError:
        kept = False
    print(
        f"Training a CNN on Fashion-MNIST ({limit or 60000} training images, {epochs} "
        f"epoch{'s' if epochs != 1 else ''}, Adam lr 0.001, batch 64, one BLAS thread"
        f"{', keep_freed_memory()' if kept else ''}); load average {load[0]:.2f} at the start"
    )
    with one_blas_thread():
        run = train_fashion_cnn(epochs=epochs, limit=limit, progress=progress)
    load_after = os.getloadavg()
    print(describe(run.model, (1, 1, 28, 28)))
    print_curves(run.history, "test")
    predicted = predict(run.model, run.test_images)
    wrong = (predicted != run.test_labels).nonzero()[0]
    print(
        f"\ntest accuracy {run.test_accuracy:.2%} on {len(run.test_labels)} test images "
        f"({len(wrong)} wrong) after {epochs} epoch{'s' if epochs > 1 else ''}; "
        f"{run.seconds:.1f} s in all (loading, training, testing after every epoch); "
        f"load average {load_after[0]:.2f} at the end"
    )
    pairs = np.zeros((10, 10), dtype=np.int64)
    np.add.at(pairs, (run.test_labels[wrong], predicted[wrong]), 1)
    top = np.argsort(pairs, axis=None)[::-1][:4]
    print("most frequent mistakes (label → read as: count):", "; ".join(
        f"{FASHION_MNIST_CLASSES[t]} → {FASHION_MNIST_CLASSES[p]}: {pairs[t, p]}"
        for t, p in zip(*np.unravel_index(top, pairs.shape), strict=True)
    ))  # fmt: skip
    _, (test_images, _) = load_fashion_mnist()
    picks = example_picks(shown, wrong)
    drawings = [
        ascii_image(
            test_images[i],
            f"{i}: {FASHION_MNIST_CLASSES[run.test_labels[i]]}"
            f" → {FASHION_MNIST_CLASSES[predicted[i]]}",
        )  # fmt: skip
        for i in picks
    ]
    print("\nsome test images, their label → what the CNN read (the last one it got wrong):")
    print(side_by_side(drawings))
    return run.test_accuracy


if __name__ == "__main__":
    show_cnn()
