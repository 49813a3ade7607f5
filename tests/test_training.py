"""The training loop of tinytorch.training: evaluate, train_epoch, fit, progress output,
learning curves, saving and loading, and the digits result."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from tinytorch.autograd import Variable, is_grad_enabled
from tinytorch.data import DataLoader, TensorDataset, load_digits, train_val_test_split
from tinytorch.nn import CrossEntropyLoss, Linear, ReLU, Sequential
from tinytorch.optim import SGD
from tinytorch.training import (
    accuracy,
    ascii_chart,
    evaluate,
    fit,
    load_model,
    plot_history,
    predict,
    save_model,
    train_digits,
    train_epoch,
    value_rows,
)
from tinytorch_course.boxes import misaligned_boxes


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """Small matrices: BLAS threads only add contention on a busy machine (measured 20x
    slower on a loaded 2-core box with 2 OpenBLAS threads). Limit them if we can."""
    if importlib.util.find_spec("threadpoolctl") is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def small_mlp(seed: int = 0, hidden: int = 16, dtype=np.float32) -> Sequential:
    rng = np.random.default_rng(seed)
    return Sequential(
        Linear(64, hidden, generator=rng, dtype=dtype),
        ReLU(),
        Linear(hidden, 10, generator=rng, dtype=dtype),
    )


@pytest.fixture(scope="module")
def digits():
    return load_digits()


# ------------------------------------------------------------------- measuring


def test_accuracy_counts_rows_whose_largest_logit_is_the_label():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0], [1.0, 2.0]])
    assert accuracy(logits, np.array([0, 1, 1, 1])) == 0.75
    assert accuracy(Variable(logits), np.array([0, 1, 0, 1])) == 1.0
    with pytest.raises(ValueError, match=r"\(4, 2\).*\(3,\)"):
        accuracy(logits, np.array([0, 1, 1]))


def test_evaluate_weights_each_batch_by_its_size_and_restores_the_mode(digits):
    x, y = digits
    model = small_mlp()
    loader = DataLoader(TensorDataset(x[:10], y[:10]), batch_size=4)  # 4, 4, 2
    loss, acc = evaluate(model, loader, CrossEntropyLoss())
    whole = CrossEntropyLoss()(model(Variable(x[:10])), y[:10]).item()
    assert loss == pytest.approx(whole, rel=1e-5)
    assert acc == accuracy(model(Variable(x[:10])), y[:10])
    assert model.training and is_grad_enabled()
    model.eval()
    evaluate(model, loader)
    assert not model.training


def test_evaluate_builds_no_graph(digits):
    x, y = digits
    model = small_mlp()
    seen = []
    original = model.forward

    def recording_forward(inputs):
        out = original(inputs)
        seen.append(out.requires_grad)
        return out

    model.forward = recording_forward
    evaluate(model, DataLoader(TensorDataset(x[:8], y[:8]), batch_size=8))
    assert seen == [False]


def test_predict_returns_the_class_of_each_row(digits):
    x, y = digits
    model = small_mlp()
    expected = model(Variable(x[:700])).data.argmax(axis=1)
    np.testing.assert_array_equal(predict(model, x[:700], batch_size=256), expected)


# -------------------------------------------------------------------- training


def test_train_epoch_zeroes_gradients_between_batches():
    """lr = 0: the parameters never move, so identical batches must give identical
    gradients at each step; without zero_grad the second would be twice the first."""
    model = Sequential(Linear(64, 2, generator=np.random.default_rng(1)))
    optimizer = SGD(model.parameters(), lr=0.0)
    norms = []
    step = optimizer.step

    def recording_step():
        norms.append(float(np.abs(model[0].weight.grad).sum()))
        step()

    optimizer.step = recording_step
    x = np.ones((4, 64), dtype=np.float32)
    train_epoch(
        model, CrossEntropyLoss(), optimizer, DataLoader(TensorDataset(x, np.zeros(4, np.int64)), 2)
    )
    assert len(norms) == 2 and norms[0] == pytest.approx(norms[1])


def test_fit_learns_and_records_one_entry_per_epoch(digits, capsys):
    x, y = digits
    model = small_mlp()
    loader = DataLoader(TensorDataset(x[:300], y[:300]), 32, shuffle=True, seed=0)
    val = DataLoader(TensorDataset(x[300:400], y[300:400]), 100)
    history = fit(
        model,
        CrossEntropyLoss(),
        SGD(model.parameters(), lr=0.1, momentum=0.9),
        loader,
        4,
        val,
        progress=False,
    )
    assert history.epochs == 4 and len(history.val_loss) == 4 and len(history.val_acc) == 4
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    assert history.val_acc[-1] > 0.8
    assert history.seconds > 0
    assert capsys.readouterr() == ("", ""), "progress=False should print nothing"


@pytest.mark.parametrize("epochs", [0, -1, 2.0])
def test_fit_refuses_a_bad_epoch_count(epochs):
    model = small_mlp()
    loader = DataLoader(TensorDataset(np.zeros((4, 64), np.float32), np.zeros(4, np.int64)), 2)
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), loader, epochs)


def test_progress_bar_is_tqdm_when_installed(digits, capsys):
    pytest.importorskip("tqdm")
    x, y = digits
    model = small_mlp()
    loader = DataLoader(TensorDataset(x[:64], y[:64]), 32)
    fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), loader, 2, progress=True)
    err = capsys.readouterr().err
    assert "4/4" in err and "epoch 2/2" in err, err


def test_progress_falls_back_to_plain_lines_without_tqdm(digits, capsys, monkeypatch):
    for name in ("tqdm", "tqdm.auto", "tqdm.std"):
        monkeypatch.setitem(sys.modules, name, None)  # `import tqdm` now fails
    x, y = digits
    model = small_mlp()
    loader = DataLoader(TensorDataset(x[:64], y[:64]), 32)
    fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), loader, 2, progress=True)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("training: 4/4 steps  epoch 2/2 loss "), lines


@pytest.mark.torch
def test_fit_matches_pytorch_step_for_step_in_float64(digits):
    """The loop itself (batch order, zero_grad, step, the epoch's mean loss) against the
    same loop in PyTorch, from the same weights, on the same batches, in float64."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        check_fit_against_torch(torch, digits)
    finally:
        torch.set_num_threads(threads)


def check_fit_against_torch(torch, digits) -> None:
    x, y = digits
    x = x[:200].astype(np.float64)
    y = y[:200]
    model = small_mlp(dtype=np.float64)
    reference = torch.nn.Sequential(
        torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10)
    ).double()
    with torch.no_grad():
        for mine, theirs in zip(model.parameters(), reference.parameters(), strict=True):
            theirs.copy_(torch.from_numpy(mine.data))
    loader = DataLoader(TensorDataset(x, y), 32, shuffle=True, seed=5)
    orders = DataLoader(TensorDataset(x, y), 32, shuffle=True, seed=5)  # same seed: same batches
    history = fit(
        model,
        CrossEntropyLoss(),
        SGD(model.parameters(), lr=0.05, momentum=0.9),
        loader,
        3,
        progress=False,
    )
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9)
    for epoch in range(3):
        total = 0.0
        for xb, yb in orders:
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(
                reference(torch.from_numpy(xb)), torch.from_numpy(yb)
            )
            loss.backward()
            optimizer.step()
            total += loss.item() * len(yb)
        assert history.train_loss[epoch] == pytest.approx(total / len(y), rel=1e-9)
    for mine, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        np.testing.assert_allclose(mine.data, theirs.detach().numpy(), rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------- the curves


def test_value_rows_maps_low_to_the_bottom_and_high_to_the_top():
    assert value_rows([0.0, 5.0, 10.0], 0.0, 10.0, 11) == [0, 5, 10]
    assert value_rows([2.0, 2.0], 2.0, 2.0, 5) == [2, 2]


def test_ascii_chart_is_aligned_and_draws_a_true_rectangle():
    chart = ascii_chart(
        {"train loss": [2.3, 1.1, 0.6, 0.3, 0.2], "val loss": [1.9, 1.3, 0.9, 0.8, 0.85]},
        height=8,
        width=30,
        title="loss per epoch",
    )
    lines = chart.splitlines()
    assert len({len(line) for line in lines}) == 1, [len(line) for line in lines]
    assert misaligned_boxes(lines) == []
    plot = [line for line in lines if "│" in line]
    assert len(plot) == 8
    assert plot[0].lstrip().startswith("2.3") and "*" in plot[0], (
        "the highest value should be on the top row"
    )
    assert plot[-1].lstrip().startswith("0.2") and "*" in plot[-1]
    assert "* train loss" in chart and "o val loss" in chart and "loss per epoch" in chart


def test_ascii_chart_skips_missing_values_and_refuses_nothing():
    chart = ascii_chart({"a": [1.0, float("nan"), 3.0], "b": []}, height=4, width=10)
    plot = "".join(line for line in chart.splitlines() if "│" in line)
    assert plot.count("*") == 2 and "b" not in chart.splitlines()[-1]
    with pytest.raises(ValueError, match="nothing to draw"):
        ascii_chart({"a": []})


def short_history(digits, epochs: int):
    """The history of a few epochs of a small MLP on 64 digits (train = validation)."""
    x, y = digits
    model = small_mlp()
    loader = DataLoader(TensorDataset(x[:64], y[:64]), 32)
    optimizer = SGD(model.parameters(), lr=0.1)
    return fit(model, CrossEntropyLoss(), optimizer, loader, epochs, loader, progress=False)


def test_plot_history_prints_two_ascii_charts_outside_jupyter(digits, capsys):
    history = short_history(digits, epochs=3)
    text = plot_history(history, ascii=True)
    assert "loss per epoch" in text and "accuracy per epoch" in text
    assert capsys.readouterr().out.strip() == text.strip()


def test_plot_history_draws_a_matplotlib_figure_on_request(digits):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    history = short_history(digits, epochs=2)
    figure = plot_history(history, ascii=False)
    assert [len(axes.lines) for axes in figure.axes] == [2, 2]


# ----------------------------------------------------------------- save and load


def test_a_loaded_model_predicts_exactly_what_the_saved_one_did(tmp_path, digits):
    x, _ = digits
    trained, fresh = small_mlp(seed=1), small_mlp(seed=2)
    path = save_model(trained, tmp_path / "digits")
    assert path == tmp_path / "digits.npz" and path.is_file()
    assert load_model(fresh, path) is fresh
    np.testing.assert_array_equal(fresh(Variable(x)).data, trained(Variable(x)).data)
    with np.load(path) as saved:  # a plain npz: readable without tinytorch
        assert sorted(saved.files) == sorted(name for name, _ in trained.named_parameters())


def test_loading_into_another_architecture_names_the_mismatched_key(tmp_path):
    path = save_model(small_mlp(hidden=16), tmp_path / "m.npz")
    with pytest.raises(KeyError, match=r"0\.weight"):
        load_model(small_mlp(hidden=8), path)


# ---------------------------------------------------------------- the result


def test_mlp_reaches_97_percent_on_held_out_digits():
    """The recipe of the module (64-256-10, Adam 1e-3, batches of 32, 20 epochs, final
    model on train + validation) on split seed 1. Over split seeds 0..9 the reference
    scored 96.9 % (seed 0) to 99.4 %; seed 1 gives 99.2 % on the reference machine."""
    run = train_digits(epochs=20, seed=0, split_seed=1, progress=False)
    assert run.test_accuracy >= 0.97, (
        f"test accuracy {run.test_accuracy:.2%} after {run.seconds:.1f}s"
    )
    assert len(run.test_labels) == 359
    x, y = load_digits()
    train, val, test = train_val_test_split(y, seed=1)
    development = np.concatenate([train, val])
    np.testing.assert_allclose(run.scaler.mean, x[development].mean(axis=0), rtol=1e-5, atol=1e-6)
    assert run.history.epochs == 20 and run.history.val_acc[-1] > 0.95
    wrong = int(np.sum(predict(run.model, run.test_images) != run.test_labels))
    assert wrong == round((1 - run.test_accuracy) * 359)
