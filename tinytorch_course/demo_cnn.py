"""`tinytorch-course demo cnn`: the module 06 CNN trained on the digits with a progress
bar, its learning curves, its test accuracy beside the MLP's, and a few test digits
drawn with what the CNN read in them. Uses only the exported package."""

from __future__ import annotations

import time

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


def show_cnn(epochs: int = 15, split_seed: int = 1, progress: bool = True, shown: int = 4):
    """Train the digits CNN, print curves, accuracy and predictions; returns test accuracy."""
    from tinytorch.conv import train_digits_cnn
    from tinytorch.data import ascii_digit
    from tinytorch.nn import describe
    from tinytorch.training import ascii_chart, predict, train_digits

    print(
        f"Training a CNN on the UCI digits (split seed {split_seed}, {epochs} epochs): learning "
        "curves on train/validation, then the final model on train + validation"
    )
    start = time.perf_counter()
    with one_blas_thread():
        run = train_digits_cnn(epochs=epochs, split_seed=split_seed, progress=progress)
        print(describe(run.model, (1, 1, 8, 8)))
        mlp = train_digits(split_seed=split_seed, progress=progress)
    history = run.history
    print()
    print(ascii_chart({"train loss": history.train_loss, "val loss": history.val_loss},
                      title="CNN loss per epoch"))  # fmt: skip
    print()
    print(ascii_chart({"train acc": history.train_acc, "val acc": history.val_acc},
                      title="CNN accuracy per epoch"))  # fmt: skip
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
    picks = list(range(shown - min(len(wrong), 1))) + [int(i) for i in wrong[:1]]
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


if __name__ == "__main__":
    show_cnn()
