"""Datasets, the DataLoader, the stratified split and standardisation (tinytorch.data)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch.data import (
    DataLoader,
    Dataset,
    Standardize,
    Subset,
    TensorDataset,
    load_digits,
    train_val_test_split,
)


def labels_of(loader) -> list[list[int]]:
    return [yb.tolist() for _, yb in loader]


class Squares(Dataset):
    """A dataset that is not a TensorDataset: the loader must fetch it sample by sample."""

    def __len__(self) -> int:
        return 7

    def __getitem__(self, index):
        return np.array([index, index * index], dtype=np.float32), index


# ----------------------------------------------------------------------- datasets


def test_tensor_dataset_returns_one_row_of_each_array():
    x, y = np.arange(12).reshape(6, 2), np.arange(6) * 10
    ds = TensorDataset(x, y)
    assert len(ds) == 6
    row_x, row_y = ds[4]
    np.testing.assert_array_equal(row_x, x[4])
    assert row_y == 40


def test_tensor_dataset_rejects_arrays_of_different_lengths_naming_the_shapes():
    with pytest.raises(ValueError, match=r"\(6, 2\).*\(5,\)"):
        TensorDataset(np.zeros((6, 2)), np.zeros(5))
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()


def test_subset_indexes_through_to_the_dataset_and_checks_its_indices():
    ds = TensorDataset(np.arange(10))
    assert Subset(ds, [7, 2])[1][0] == 2
    with pytest.raises(IndexError, match="10 samples"):
        Subset(ds, [3, 10])


def test_the_base_dataset_says_what_a_subclass_must_define():
    with pytest.raises(NotImplementedError, match="__len__"):
        len(Dataset())


# --------------------------------------------------------------------- the loader


def test_batches_in_order_with_a_partial_last_batch():
    loader = DataLoader(TensorDataset(np.arange(10), np.arange(10)), batch_size=4)
    assert len(loader) == 3
    assert labels_of(loader) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_drop_last_drops_only_the_partial_batch():
    ds = TensorDataset(np.arange(10))
    assert [b[0].tolist() for b in DataLoader(ds, 4, drop_last=True)] == [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
    ]
    assert len(DataLoader(ds, 5, drop_last=True)) == 2


def test_batches_are_numpy_arrays_with_a_batch_dimension():
    x = np.random.default_rng(0).random((9, 8, 8), dtype=np.float32)
    xb, yb = next(iter(DataLoader(TensorDataset(x, np.arange(9)), batch_size=4)))
    assert xb.shape == (4, 8, 8) and xb.dtype == np.float32 and yb.shape == (4,)


def test_a_generic_dataset_is_collated_sample_by_sample():
    batches = list(DataLoader(Squares(), batch_size=3))
    assert [len(b[1]) for b in batches] == [3, 3, 1]
    np.testing.assert_array_equal(batches[1][0], [[3, 9], [4, 16], [5, 25]])


def test_shuffle_is_seeded_reproducible_and_new_every_epoch():
    ds = TensorDataset(np.arange(50))
    first = DataLoader(ds, 8, shuffle=True, seed=3)
    second = DataLoader(ds, 8, shuffle=True, seed=3)
    epochs = [np.concatenate([b[0] for b in first]) for _ in range(3)]
    again = [np.concatenate([b[0] for b in second]) for _ in range(3)]
    for epoch, repeat in zip(epochs, again, strict=True):
        np.testing.assert_array_equal(epoch, repeat)
        assert sorted(epoch.tolist()) == list(range(50))
    assert not np.array_equal(epochs[0], epochs[1]), "two epochs came in the same order"
    other = np.concatenate([b[0] for b in DataLoader(ds, 8, shuffle=True, seed=4)])
    assert not np.array_equal(other, epochs[0]), "seeds 3 and 4 gave the same order"


def test_shuffle_draws_from_a_generator_that_is_passed_in():
    ds = TensorDataset(np.arange(20))
    loader = DataLoader(ds, 20, shuffle=True, seed=np.random.default_rng(11))
    expected = np.random.default_rng(11).permutation(20)
    np.testing.assert_array_equal(next(iter(loader))[0], expected)


def test_shuffling_does_not_touch_numpys_global_random_state():
    np.random.seed(0)
    expected = np.random.random()
    np.random.seed(0)
    list(DataLoader(TensorDataset(np.arange(30)), 4, shuffle=True, seed=1))
    assert np.random.random() == expected


def test_a_subset_of_a_tensor_dataset_is_batched_in_its_own_order():
    ds = TensorDataset(np.arange(10) * 2)
    assert [b[0].tolist() for b in DataLoader(Subset(ds, [9, 1, 4]), 2)] == [[18, 2], [8]]


@pytest.mark.parametrize("size", [0, -1, 2.5, "4", True, None])
def test_a_bad_batch_size_is_refused_by_name(size):
    with pytest.raises(ValueError, match=r"batch_size must be a positive integer, got"):
        DataLoader(TensorDataset(np.arange(4)), batch_size=size)


def test_an_empty_dataset_is_refused():
    with pytest.raises(ValueError, match="empty"):
        DataLoader(TensorDataset(np.zeros((0, 3))), batch_size=2)


def test_drop_last_that_would_give_no_batch_is_refused():
    with pytest.raises(ValueError, match="drop_last=True with batch_size 8 > 5 samples"):
        DataLoader(TensorDataset(np.arange(5)), batch_size=8, drop_last=True)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 60),
    batch_size=st.integers(1, 70),
    drop_last=st.booleans(),
    shuffle=st.booleans(),
)
def test_every_sample_once_per_epoch_in_batches_of_the_stated_size(
    n, batch_size, drop_last, shuffle
):
    if drop_last and batch_size > n:
        return  # refused at construction (tested above)
    loader = DataLoader(TensorDataset(np.arange(n)), batch_size, shuffle, drop_last, seed=0)
    sizes = [len(b[0]) for b in loader]
    seen = np.concatenate([b[0] for b in loader])  # a second epoch: same multiset
    assert (
        len(sizes) == len(loader) == (n // batch_size if drop_last else math.ceil(n / batch_size))
    )
    assert all(size == batch_size for size in sizes[:-1])
    assert sizes[-1] == (batch_size if drop_last or n % batch_size == 0 else n % batch_size)
    assert len(set(seen.tolist())) == len(seen) == sum(sizes)
    if not drop_last:
        assert sorted(seen.tolist()) == list(range(n))


# ------------------------------------------------------------------------- splits


def test_split_is_disjoint_complete_stratified_and_seeded():
    _, y = load_digits()
    train, val, test = train_val_test_split(y, 0.2, 0.2, seed=0)
    together = np.concatenate([train, val, test])
    assert sorted(together.tolist()) == list(range(len(y)))
    counts = np.bincount(y)
    for part in (val, test):
        np.testing.assert_array_equal(np.bincount(y[part], minlength=10), np.rint(counts * 0.2))
    assert all(np.all(np.diff(part) > 0) for part in (train, val, test)), "indices should be sorted"
    again = train_val_test_split(y, 0.2, 0.2, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(again, (train, val, test), strict=True))
    assert not np.array_equal(train_val_test_split(y, 0.2, 0.2, seed=1)[2], test)


def test_split_fractions_are_checked():
    with pytest.raises(ValueError, match="leave something for training"):
        train_val_test_split(np.arange(10) % 2, 0.5, 0.5)
    with pytest.raises(ValueError, match="1-D"):
        train_val_test_split(np.zeros((3, 2)))


# ------------------------------------------------------------------ standardising


def test_standardize_uses_the_statistics_of_the_data_it_was_fitted_on():
    train = np.array([[0.0, 1.0], [0.0, 3.0]], dtype=np.float32)  # column 1: mean 2, std 1
    scaler = Standardize(eps=0.1).fit(train)
    np.testing.assert_allclose(scaler.mean, [0.0, 2.0])
    np.testing.assert_allclose(scaler.std, [0.0, 1.0])
    out = scaler(np.array([[0.0, 4.0], [5.0, 2.0]], dtype=np.float32))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.0, 2.0 / 1.1], [5.0 / 0.1, 0.0]], rtol=1e-6)


def test_standardize_refuses_unfitted_use_and_a_wrong_width():
    with pytest.raises(RuntimeError, match="fit"):
        Standardize()(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"\(3,\).*\(2, 4\)"):
        Standardize().fit(np.zeros((5, 3)))(np.zeros((2, 4)))
