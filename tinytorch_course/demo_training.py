"""The training part of `tinytorch-course demo`: one training step drawn as a graph, then
the digits MLP trained with a progress bar, its learning curves and its test accuracy.

`show_training()` is called by `demo.py` after the autograd trace. It uses only the
exported package (`tinytorch.data`, `tinytorch.training`, `tinytorch.nn`, `tinytorch.optim`,
`tinytorch.autograd`) and takes a few seconds.
"""

from __future__ import annotations

import importlib.util
import time
from contextlib import nullcontext


def one_blas_thread():
    """A context limiting numpy's BLAS to one thread when threadpoolctl is installed: the
    matrices here are small, and extra threads only contend on a busy machine."""
    if importlib.util.find_spec("threadpoolctl") is None:
        return nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def show_step_graph() -> None:
    """The graph of one training step of a small MLP on 4 digits, forward and backward,
    drawn by module 01's `draw_graph` with the parameters named W1, b1, W2, b2."""
    from tinytorch.autograd import Variable
    from tinytorch.data import load_digits
    from tinytorch.nn import CrossEntropyLoss
    from tinytorch.training import digits_mlp
    from tinytorch.viz import draw_graph

    x, y = load_digits()
    model = digits_mlp(hidden=16, seed=0)
    names = {"0.weight": "W1", "0.bias": "b1", "2.weight": "W2", "2.bias": "b2"}
    for name, parameter in model.named_parameters():
        parameter.name = names[name]
    batch = Variable(x[:4], name="x")
    hidden = model[0](batch)
    hidden.name = "h"
    active = model[1](hidden)
    active.name = "a"
    logits = model[2](active)
    logits.name = "logits"
    loss = CrossEntropyLoss()(logits, y[:4])
    loss.name = "loss"
    shapes = ", ".join(f"{p.name} {tuple(p.shape)}" for p in model.parameters())
    print(f"One training step: MLP 64-16-10 ({shapes}) on a batch x of 4 digits")
    print("\nforward (loss = cross_entropy(model(x), y)):")
    print(draw_graph(loss))
    print("\nbackward (loss.backward(); then optimizer.step() moves W1, b1, W2, b2):")
    print(draw_graph(loss, backward=True))
    print()


def show_training(epochs: int = 20, split_seed: int = 1, progress: bool = True) -> float:
    """Train the module-04 digits recipe and print what happened; returns test accuracy."""
    from tinytorch.data import ascii_digit
    from tinytorch.training import ascii_chart, predict, train_digits

    try:
        show_step_graph()
    except Exception as error:  # drawing is a nicety; training is the point
        print(f"(the step graph is not available: {type(error).__name__}: {error})\n")
    print(
        f"Training an MLP 64-256-10 on the UCI digits (Adam, batches of 32, {epochs} epochs): "
        "learning curves on train/validation, then the final model on train + validation"
    )
    start = time.perf_counter()
    with one_blas_thread():
        run = train_digits(epochs=epochs, split_seed=split_seed, progress=progress)
    seconds = time.perf_counter() - start
    history = run.history
    print()
    print(
        ascii_chart(
            {"train loss": history.train_loss, "val loss": history.val_loss}, title="loss per epoch"
        )
    )
    print()
    print(
        ascii_chart(
            {"train acc": history.train_acc, "val acc": history.val_acc}, title="accuracy per epoch"
        )
    )
    wrong = (predict(run.model, run.test_images) != run.test_labels).nonzero()[0]
    print(
        f"\ntest accuracy {run.test_accuracy:.2%} on {len(run.test_labels)} held-out digits "
        f"({len(wrong)} wrong), trained in {seconds:.1f} s"
    )
    if len(wrong):
        index = int(wrong[0])
        guess = int(predict(run.model, run.test_images[index : index + 1])[0])
        image = run.test_images[index] * (run.scaler.std + run.scaler.eps) + run.scaler.mean  # undo
        print(f"\none it got wrong: predicted {guess}")
        print(ascii_digit(image, int(run.test_labels[index])))
    return run.test_accuracy


if __name__ == "__main__":
    show_training()
