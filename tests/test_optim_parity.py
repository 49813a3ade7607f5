"""Parity with PyTorch: the same MLP, initial weights and batches in float64 give the same
losses, parameters and optimizer state after 200 steps (rtol 1e-6), for every optimizer."""

from __future__ import annotations

import numpy as np
import pytest

from tinytorch.nn import Linear, ReLU, Sequential, cross_entropy
from tinytorch.optim import SGD, Adam, AdamW

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

STEPS, BATCH, SAMPLES = 200, 16, 96
SETTINGS = {
    "SGD momentum": ("SGD", {"lr": 0.1, "momentum": 0.9}),
    "SGD nesterov + weight decay": (
        "SGD",
        {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
    ),
    "SGD dampening + weight decay": (
        "SGD",
        {"lr": 0.1, "momentum": 0.5, "dampening": 0.2, "weight_decay": 1e-2},
    ),
    "Adam": ("Adam", {"lr": 1e-2}),
    "Adam amsgrad + weight decay": (
        "Adam",
        {"lr": 1e-2, "betas": (0.8, 0.99), "weight_decay": 1e-2, "amsgrad": True},
    ),
    "AdamW": ("AdamW", {"lr": 1e-2, "weight_decay": 0.1}),
}
OURS = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """These networks are tiny: torch's thread pool only adds contention (25x slower here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def synthetic_data() -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian blobs in 8 dimensions: a problem the MLP can learn, so the run
    goes through the interesting regime (large early gradients, then small ones)."""
    rng = np.random.default_rng(2024)
    centers = rng.standard_normal((3, 8)) * 2
    labels = rng.integers(0, 3, SAMPLES)
    return centers[labels] + rng.standard_normal((SAMPLES, 8)), labels


def batches():
    """The batch of every step: a fixed permutation per pass over the data."""
    x, y = synthetic_data()
    rng = np.random.default_rng(7)
    order = []
    while len(order) < STEPS * BATCH:
        order.extend(rng.permutation(SAMPLES))
    for step in range(STEPS):
        index = np.array(order[step * BATCH : (step + 1) * BATCH])
        yield x[index], y[index]


def models():
    ours = Sequential(
        Linear(8, 16, generator=np.random.default_rng(0), dtype=np.float64),
        ReLU(),
        Linear(16, 3, generator=np.random.default_rng(1), dtype=np.float64),
    )
    theirs = torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)
    ).double()
    theirs.load_state_dict(
        {name: torch.from_numpy(value) for name, value in ours.state_dict().items()}
    )
    return ours, theirs


@pytest.mark.parametrize("label", SETTINGS)
def test_200_steps_match_pytorch(label):
    kind, settings = SETTINGS[label]
    ours, theirs = models()
    our_optimizer = OURS[kind](ours.parameters(), **settings)
    their_optimizer = getattr(torch.optim, kind)(theirs.parameters(), **settings)
    for step, (x, y) in enumerate(batches()):
        our_optimizer.zero_grad()
        our_loss = cross_entropy(ours(x), y)
        our_loss.backward()
        our_optimizer.step()

        their_optimizer.zero_grad()
        their_loss = torch.nn.functional.cross_entropy(
            theirs(torch.from_numpy(x)), torch.from_numpy(y)
        )
        their_loss.backward()
        their_optimizer.step()
        assert our_loss.item() == pytest.approx(their_loss.item(), rel=1e-6), (
            f"{label}: loss at step {step}"
        )

    assert our_loss.item() < 0.5, f"{label}: the run should have learned something"
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        np.testing.assert_allclose(
            p.data, q.detach().numpy(), rtol=1e-6, atol=1e-9, err_msg=f"{label}: {name}"
        )
        our_state, their_state = our_optimizer.state[p], their_optimizer.state[q]
        assert set(our_state) == set(their_state), f"{label}: state names differ"
        for key, value in their_state.items():
            if key == "step":
                assert our_state[key] == int(value.item()) == STEPS
            else:
                np.testing.assert_allclose(
                    our_state[key],
                    value.numpy(),
                    rtol=1e-6,
                    atol=1e-12,
                    err_msg=f"{label}: {name} {key}",
                )
