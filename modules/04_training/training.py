# %% [markdown]
# # Data and training
#
# > Datasets, a seeded DataLoader, the UCI handwritten digits shipped offline, train/validation/test splits, and a training loop with a progress bar, learning curves and saved models.

# %% [markdown]
# ## What we're building today
#
# You have an engine that computes gradients (module 01), layers and losses (module 02)
# and optimizers that use the gradients (module 03). What is missing is the part that
# turns them into a trained network: feeding real data through them, batch after batch,
# and watching whether it learns.
#
# ```
#     Your code:                               What happens behind the scenes:
#     ──────────                               ───────────────────────────────
#
#     x, y = load_digits()                     1 797 images of 8×8 pixels read from
#                                              a 44 KB file in the repository
#
#     train, val, test =                       each digit's images shuffled with a
#         train_val_test_split(y, seed=0)      seed and dealt 60 / 20 / 20 %
#
#     loader = DataLoader(data, 32,            a fresh permutation per epoch from a
#                         shuffle=True,        seeded numpy Generator, cut into
#                         seed=0)              slices of 32 indices
#
#     for xb, yb in loader:                    xb: (32, 64) float32, yb: (32,) int64
#         optimizer.zero_grad()                every .grad back to None
#         loss = loss_fn(model(xb), yb)        the graph of this batch is recorded
#         loss.backward()                      .grad filled for every parameter
#         optimizer.step()                     parameters moved against .grad
# ```
#
# Everything after `for` is the *training step*, the few lines every deep-learning
# program shares. Everything before it decides *what* the network learns from, and
# mistakes there (a test image that leaks into training, a loader that always shows
# the batches in the same order) do not crash: they quietly make the numbers wrong.

# %% [markdown]
# ## The data: handwritten digits, 8×8
#
# The UCI "Optical Recognition of Handwritten Digits" data (E. Alpaydin and C. Kaynak,
# 1998): 32×32 black-and-white scans of digits cut into 4×4 blocks, each pixel of the
# 8×8 result counting the ink in one block (0..16). The copy in `tinytorch_datasets/`
# is the 1 797 images of the UCI test file (13 writers) that scikit-learn ships, with
# its source, licence and checksum in that folder's README. Image 0, drawn by `ascii_digit` from the live file:
#
# <!-- digits:first -->
# ```
# image 0, label 0 (darker = more ink)
# ┌────────────────┐
# │    ░░▓▓▒▒      │
# │    ▓▓██▒▒██░░  │
# │  ░░██    ▓▓▒▒  │
# │  ░░▓▓    ▒▒▒▒  │
# │  ░░▒▒    ▒▒▒▒  │
# │  ░░▓▓    ▓▓▒▒  │
# │    ██░░▒▒▓▓    │
# │    ▒▒▓▓▒▒      │
# └────────────────┘
# ```
# <!-- /digits:first -->

# %% [markdown]
# ## Memory layout: what training on digits keeps in memory
#
# Every number below is computed from the shapes (float32: 4 bytes per number); a test
# recomputes them from the live dataset and model and fails if this text is stale.
#
# <!-- memory:digits -->
# ```
# ┌───────────────────────────────────────────────────────────┐
# │ whole dataset    x (1797, 64) float32           460,032 B │
# │                  y (1797,) int64                 14,376 B │
# │ one batch        xb (32, 64) float32              8,192 B │
# │ MLP 64-256-10    19,210 parameters               76,840 B │
# │ gradients        one per parameter               76,840 B │
# │ Adam state       exp_avg + exp_avg_sq           153,680 B │
# │ activations      hidden (32, 256) float32        32,768 B │
# └───────────────────────────────────────────────────────────┘
# ```
# <!-- /memory:digits -->
#
# The whole dataset fits in memory many times over, so `DataLoader` here simply slices
# arrays. The design still matters at scale (next section), which is why PyTorch's
# `DataLoader` takes indices from a *sampler* and fetches each sample separately.

# %% [markdown]
# ## Real-world context: why datasets are read in batches
#
# | dataset | images | bytes per image (uint8) | whole dataset |
# |---|---|---|---|
# | digits (this module) | 1 797 | 8 × 8 = 64 | 115 008 B (115 KB) |
# | MNIST training set | 60 000 | 28 × 28 = 784 | 47 040 000 B (47 MB) |
# | ImageNet-1k training set at 224 × 224 RGB | 1 281 167 | 224 × 224 × 3 = 150 528 | 192 851 506 176 B (193 GB) |
#
# As float32 each becomes four times larger. ImageNet does not fit in memory, so a
# loader reads one batch of files at a time, in a new random order every epoch; the
# rest of the training loop cannot tell the difference, which is why it only ever
# sees `for xb, yb in loader`.

# %% [markdown]
# ## Step by step: one epoch of a shuffled loader
#
# Ten samples, `batch_size=4`, `shuffle=True`, `seed=0`. Each epoch draws a new
# permutation from the same `np.random.Generator`, so a run is reproducible and yet no
# two epochs show the batches in the same order. The last batch is partial (2 of 4)
# unless `drop_last=True` throws it away:
#
# <!-- trace:loader -->
# ```
# DataLoader(TensorDataset(np.arange(10)), batch_size=4, shuffle=True, seed=0)
#
# epoch 1: permutation [4 6 2 7 3 5 9 0 8 1]
#          batches     [4 6 2 7] [3 5 9 0] [8 1]
# epoch 2: permutation [2 9 3 6 0 4 8 7 5 1]
#          batches     [2 9 3 6] [0 4 8 7] [5 1]
#
# len(loader) = ceil(10 / 4) = 3 batches per epoch (2 with drop_last=True)
# ```
# <!-- /trace:loader -->

# %% [markdown]
# ## Before and after
#
# Before: every experiment slices its own arrays, and every slicing bug is new.
#
# ```python
# for epoch in range(epochs):
#     order = np.arange(len(x))            # forgot to shuffle: same order every epoch
#     for start in range(0, len(x), 32):
#         xb = x[order[start:start + 32]]  # the last batch is partial: averaging the
#         yb = y[order[start:start + 32]]  # batch means now over-weights its samples
#         ...
# ```
#
# After: the loader is tested once, here, and the loop reads like the idea:
#
# ```python
# history = fit(model, loss_fn, optimizer, train_loader, epochs=20, val_loader=val_loader)
# print(ascii_chart({"train loss": history.train_loss, "val loss": history.val_loss}))
# ```
#
# By the end of this module a 64-256-10 MLP trained with *your* tinytorch recognises
# held-out handwritten digits with at least 97 % accuracy, in a few seconds on a laptop.

# %%
#| default_exp training

# %% [markdown]
# One systems detail before numpy is imported. numpy hands matrix products to a BLAS
# library (OpenBLAS in the pip wheels), which by default starts one thread per core.
# The products in this module are small (a batch of 32 rows times 64 or 256 columns),
# too small to split usefully, and on a busy machine the extra threads mostly wait for
# each other: on the 2-core machine this module was written on, with other jobs running,
# the digits training of Part 8 took about 30 s with 2 OpenBLAS threads and 2 s with 1.
# The variable only takes effect if it is set before numpy loads OpenBLAS (restart the
# kernel to change it). `benchmarks/bench_training.py --threads N` compares thread
# counts on a larger network.

# %%
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# %%
#| export data
import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

# %% [markdown]
# ## Part 1: Datasets
#
# A *dataset* is anything with a length and an indexer: `len(ds)` samples, and `ds[i]`
# gives sample `i`. That is PyTorch's "map-style" dataset, and it is all the loader
# needs. The common case is a few arrays that share their first dimension (images and
# their labels): `TensorDataset(x, y)[i]` is `(x[i], y[i])`.
#
# ```
#     TensorDataset(x, y)              x (1797, 64)        y (1797,)
#                                      ┌──────────┐        ┌─┐
#     ds[0]   -> (x[0], y[0])    row 0 │██████████│        │0│
#     ds[1]   -> (x[1], y[1])    row 1 │██████████│        │1│
#      ...                         ... │          │        │ │
#     len(ds) -> 1797         row 1796 │██████████│        │8│
#                                      └──────────┘        └─┘
# ```
#
# Indexing with an integer *array* of indices works too, and returns whole batches at
# once; the loader uses that to avoid a Python loop per sample. Arrays of different
# lengths are a mistake to catch at construction, where it is made, not at the
# 1 000th batch.


# %% nbgrader={"grade": false, "grade_id": "training_dataset", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export data
class Dataset:
    """A map-style dataset: `len(ds)` samples, `ds[i]` the i-th (a tuple of arrays)."""

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")


class TensorDataset(Dataset):
    """Arrays that share their first dimension; sample `i` is `(a[i] for a in arrays)`."""

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("TensorDataset needs at least one array")
        self.arrays = tuple(np.asarray(a) for a in arrays)
        ### BEGIN SOLUTION
        lengths = [len(a) if a.ndim else None for a in self.arrays]
        if None in lengths or len(set(lengths)) != 1:
            shapes = ", ".join(str(a.shape) for a in self.arrays)
            raise ValueError(
                f"TensorDataset: every array needs the same first dimension (one row per "
                f"sample), got shapes {shapes}"
            )
        ### END SOLUTION

    def __len__(self) -> int:
        ### BEGIN SOLUTION
        return len(self.arrays[0])
        ### END SOLUTION

    def __getitem__(self, index) -> tuple:
        ### BEGIN SOLUTION
        return tuple(a[index] for a in self.arrays)
        ### END SOLUTION


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order (e.g. the training split)."""

    def __init__(self, dataset: Dataset, indices):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        if self.indices.ndim != 1:
            raise ValueError(f"Subset: indices must be 1-D, got shape {self.indices.shape}")
        if self.indices.size and (
            self.indices.min() < -len(dataset) or self.indices.max() >= len(dataset)
        ):
            raise IndexError(
                f"Subset: indices range {self.indices.min()}..{self.indices.max()} does not fit "
                f"a dataset of {len(dataset)} samples"
            )

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index):
        return self.dataset[self.indices[index]]


# %% [markdown]
# Checks with messages in your terms (run the cell; nothing to edit).


# %%
def check_equal(got, expected, what: str) -> None:
    """Assert `got == expected` (arrays elementwise), naming `what` in the message."""
    if isinstance(expected, np.ndarray) or isinstance(got, np.ndarray):
        same = np.shape(got) == np.shape(expected) and np.array_equal(got, expected)
    else:
        same = got == expected
    if not same:
        raise AssertionError(f"{what}: got {got!r}, expected {expected!r}")


def check_raises(error: type, words: Sequence[str], action, what: str) -> None:
    """Assert `action()` raises `error` whose message mentions each of `words`."""
    try:
        action()
    except error as raised:
        missing = [w for w in words if w not in str(raised)]
        if missing:
            raise AssertionError(
                f"{what}: the {error.__name__} should mention {missing}; its message was: {raised}"
            ) from None
        return
    except Exception as other:
        raise AssertionError(
            f"{what}: raised {type(other).__name__}({other}), expected {error.__name__}"
        ) from None
    raise AssertionError(f"{what}: nothing was raised, expected {error.__name__}")


# %% nbgrader={"grade": true, "grade_id": "test_training_dataset", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
_x = np.arange(12, dtype=np.float32).reshape(6, 2)
_y = np.array([0, 1, 2, 0, 1, 2])
_ds = TensorDataset(_x, _y)
check_equal(len(_ds), 6, "len(TensorDataset(x, y)) with 6 rows")
_sample = _ds[4]
check_equal(type(_sample), tuple, "TensorDataset(x, y)[4] should be a tuple (x[4], y[4]); its type")
check_equal(_sample[0], _x[4], "TensorDataset(x, y)[4][0] (should be x[4])")
check_equal(_sample[1], _y[4], "TensorDataset(x, y)[4][1] (should be y[4])")
_batch = _ds[np.array([5, 0])]
check_equal(
    _batch[0], _x[[5, 0]], "TensorDataset(x, y)[np.array([5, 0])][0]: indexing with an index array"
)
check_raises(
    ValueError,
    ["(6, 2)", "(5,)"],
    lambda: TensorDataset(_x, _y[:5]),
    "TensorDataset(x of 6 rows, y of 5): arrays of different lengths",
)
### BEGIN HIDDEN TESTS
check_equal(len(TensorDataset(np.zeros((3, 8, 8)))), 3, "len of a one-array dataset")
check_equal(Subset(_ds, [2, 3])[1][1], _y[3], "Subset(ds, [2, 3])[1] is ds[3]")
check_raises(
    ValueError, ["()"], lambda: TensorDataset(np.float32(1.0)), "TensorDataset of a 0-d array"
)
### END HIDDEN TESTS
print("TensorDataset: length, samples, batches by index array, mismatched lengths: all correct")
print("✓ test_training_dataset passed (10 points)")

# %% [markdown]
# ## Part 2: The DataLoader
#
# The loader turns a dataset into batches. For each epoch it decides an *order* of the
# indices (0, 1, 2, ... or a permutation), cuts it into slices of `batch_size`, and
# fetches each slice from the dataset:
#
# ```
#   order    │ 4  6  2  7 │ 3  5  9  0 │ 8  1 │        batch_size = 4
#            └─────┬──────┴─────┬──────┴──┬───┘
#   batches     batch 0      batch 1   batch 2  (partial: 2 samples)
#
#   drop_last=False:  3 batches, every sample seen once per epoch
#   drop_last=True:   2 batches, samples 8 and 1 skipped this epoch
# ```
#
# Three design decisions, each a bug in some loader somewhere:
#
# * **Where the randomness comes from.** `np.random.shuffle` uses numpy's global state,
#   which any other code can reseed or advance. The loader owns a
#   `np.random.Generator` made once from `seed`; each epoch draws the next
#   permutation from it. Same seed, same sequence of epochs; different epochs, different
#   orders. (Making a new generator from `seed` every epoch would repeat one order
#   forever, a classic mistake.)
# * **The last batch.** With `N` samples there are `ceil(N / batch_size)` batches, the
#   last with `N mod batch_size` samples when that is not 0; `drop_last=True` gives
#   `floor(N / batch_size)` full batches instead.
# * **Bad arguments fail at construction**, naming the argument: a batch size of 0 would
#   otherwise surface later as a `ZeroDivisionError` inside `len(loader)`, far from the
#   line that made the mistake.
#
# Implement `epoch_order` (the indices of one epoch, shuffled or not) and `batches` (how
# they are cut), plus `__len__` and the checks in `__init__`. `__iter__` is written for
# you: it fetches each batch from the dataset in one indexing call.


# %% nbgrader={"grade": false, "grade_id": "training_dataloader", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export data
def collate(samples: Sequence[tuple]) -> tuple:
    """Stack a list of samples (tuples of arrays) field by field into one batch."""
    return tuple(np.stack([np.asarray(s[i]) for s in samples]) for i in range(len(samples[0])))


def fetch(dataset: Dataset, indices: np.ndarray) -> tuple:
    """The samples at `indices` as one batch: one indexing call when the dataset accepts
    an index array (TensorDataset, Subset of one), else sample by sample."""
    if isinstance(dataset, TensorDataset):
        return dataset[indices]
    if isinstance(dataset, Subset) and isinstance(dataset.dataset, TensorDataset):
        return dataset.dataset[dataset.indices[indices]]
    return collate([dataset[int(i)] for i in indices])


class DataLoader:
    """Batches of `dataset`, in order or shuffled by a seeded generator, one epoch per `iter`.

    Each batch is a tuple of numpy arrays, e.g. `(xb, yb)` with `xb` of shape
    (batch_size, ...). `seed` (an int or a `np.random.Generator`) makes the shuffled
    order reproducible; each epoch draws a new permutation from the same generator.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | np.random.Generator | None = None,
    ):
        self.dataset, self.batch_size = dataset, batch_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self.generator = (
            seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        )
        ### BEGIN SOLUTION
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, (int, np.integer))
            or batch_size < 1
        ):
            raise ValueError(
                f"DataLoader: batch_size must be a positive integer, got {batch_size!r}"
            )
        if len(dataset) == 0:
            raise ValueError(
                f"DataLoader: the dataset ({type(dataset).__name__}) is empty: there is nothing to batch"
            )
        if drop_last and batch_size > len(dataset):
            raise ValueError(
                f"DataLoader: drop_last=True with batch_size {batch_size} > {len(dataset)} samples "
                "would give no batches at all"
            )
        ### END SOLUTION

    def __len__(self) -> int:
        """Batches per epoch."""
        ### BEGIN SOLUTION
        full, rest = divmod(len(self.dataset), self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1
        ### END SOLUTION

    def epoch_order(self) -> np.ndarray:
        """The indices of one epoch: 0..N-1, or a permutation drawn from `self.generator`."""
        ### BEGIN SOLUTION
        n = len(self.dataset)
        return self.generator.permutation(n) if self.shuffle else np.arange(n)
        ### END SOLUTION

    def batches(self, order: np.ndarray) -> list[np.ndarray]:
        """`order` cut into consecutive slices of `batch_size` (the last one partial unless
        `drop_last`)."""
        ### BEGIN SOLUTION
        return [
            order[start : start + self.batch_size]
            for start in range(0, len(self) * self.batch_size, self.batch_size)
        ]
        ### END SOLUTION

    def __iter__(self) -> Iterator[tuple]:
        for indices in self.batches(self.epoch_order()):
            yield fetch(self.dataset, indices)

    def __repr__(self) -> str:
        return (
            f"DataLoader({type(self.dataset).__name__} of {len(self.dataset)}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last})"
        )


# %% nbgrader={"grade": true, "grade_id": "test_training_loader_batches", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
_ds10 = TensorDataset(np.arange(10) * 10, np.arange(10))
_loader = DataLoader(_ds10, batch_size=4)
check_equal(len(_loader), 3, "len(DataLoader of 10 samples, batch_size=4): ceil(10 / 4)")
_got = [yb.tolist() for _, yb in _loader]
check_equal(
    _got,
    [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]],
    "batches of DataLoader(10 samples, batch_size=4) without shuffle (labels of each batch)",
)
_first = next(iter(_loader))
check_equal(
    _first[0],
    np.array([0, 10, 20, 30]),
    "first batch's x (the loader must return (x, y) per batch)",
)
_dropped = DataLoader(_ds10, batch_size=4, drop_last=True)
check_equal(len(_dropped), 2, "len(DataLoader(10 samples, batch_size=4, drop_last=True))")
check_equal(
    [yb.tolist() for _, yb in _dropped],
    [[0, 1, 2, 3], [4, 5, 6, 7]],
    "batches with drop_last=True: the partial batch [8, 9] should be dropped",
)
### BEGIN HIDDEN TESTS
check_equal(len(DataLoader(_ds10, batch_size=5)), 2, "len with batch_size dividing N exactly")
check_equal(
    [yb.tolist() for _, yb in DataLoader(_ds10, batch_size=5, drop_last=True)],
    [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]],
    "drop_last when nothing is partial",
)
check_equal(
    [yb.tolist() for _, yb in DataLoader(_ds10, batch_size=32)],
    [list(range(10))],
    "batch_size larger than the dataset: one partial batch",
)
check_equal(
    sum(len(yb) for _, yb in DataLoader(Subset(_ds10, [9, 8, 7]), batch_size=2)),
    3,
    "a Subset is batched like any dataset",
)
### END HIDDEN TESTS
print("DataLoader: batch count, order, partial last batch and drop_last all correct")
print("✓ test_training_loader_batches passed (10 points)")

# %% [markdown]
# Now the shuffle. A test cannot know which permutation is "right", but it can check
# the properties that matter: every epoch is a permutation of all indices (nothing lost,
# nothing repeated), two loaders with the same seed agree epoch by epoch, and
# consecutive epochs differ.


# %% nbgrader={"grade": true, "grade_id": "test_training_loader_shuffle", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
def _epoch_labels(loader) -> list[int]:
    return [int(v) for _, yb in loader for v in yb]


_ds10 = TensorDataset(np.arange(10) * 10, np.arange(10))


_a = DataLoader(_ds10, batch_size=4, shuffle=True, seed=0)
_b = DataLoader(_ds10, batch_size=4, shuffle=True, seed=0)
_a1, _a2 = _epoch_labels(_a), _epoch_labels(_a)
check_equal(sorted(_a1), list(range(10)), "one shuffled epoch, sorted: every sample exactly once")
if _a1 == list(range(10)):
    raise AssertionError(
        "shuffle=True gave the samples in their original order: did you permute them?"
    )
if _a1 == _a2:
    raise AssertionError(
        f"two epochs of the same shuffled loader gave the same order {_a1}: draw a new "
        "permutation from self.generator each epoch (do not recreate the generator)"
    )
check_equal(
    [_epoch_labels(_b), _epoch_labels(_b)],
    [_a1, _a2],
    "two loaders with seed=0: their epochs should match one for one",
)
### BEGIN HIDDEN TESTS
_c = DataLoader(_ds10, batch_size=4, shuffle=True, seed=1)
if _epoch_labels(_c) == _a1:
    raise AssertionError("seed=1 and seed=0 gave the same first epoch: is the seed used?")
_rng = np.random.default_rng(7)
_d = DataLoader(_ds10, batch_size=3, shuffle=True, seed=_rng)
check_equal(
    _epoch_labels(_d),
    np.random.default_rng(7).permutation(10).tolist(),
    "a loader given a Generator should draw its permutation from it",
)
### END HIDDEN TESTS
print("DataLoader shuffle: permutations, reproducible with a seed, new order each epoch")
print("✓ test_training_loader_shuffle passed (10 points)")

# %% [markdown]
# And the mistakes: each should be caught in `DataLoader(...)` itself, with a message
# that names the argument.

# %% nbgrader={"grade": true, "grade_id": "test_training_loader_errors", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
_ds10 = TensorDataset(np.arange(10) * 10, np.arange(10))
check_raises(
    ValueError,
    ["batch_size", "0"],
    lambda: DataLoader(_ds10, batch_size=0),
    "DataLoader(batch_size=0)",
)
check_raises(
    ValueError,
    ["batch_size", "-4"],
    lambda: DataLoader(_ds10, batch_size=-4),
    "DataLoader(batch_size=-4)",
)
check_raises(
    ValueError,
    ["empty"],
    lambda: DataLoader(TensorDataset(np.zeros((0, 3))), batch_size=2),
    "DataLoader of an empty dataset",
)
### BEGIN HIDDEN TESTS
check_raises(
    ValueError,
    ["batch_size", "2.5"],
    lambda: DataLoader(_ds10, batch_size=2.5),
    "DataLoader(batch_size=2.5)",
)
check_raises(
    ValueError,
    ["drop_last", "12"],
    lambda: DataLoader(_ds10, batch_size=12, drop_last=True),
    "drop_last with batch_size > N gives no batches",
)
### END HIDDEN TESTS
print("DataLoader rejects batch_size 0, negative batch sizes and empty datasets, by name")
print("✓ test_training_loader_errors passed (5 points)")

# %% [markdown]
# ## Part 3: The digits, and three honest splits
#
# `load_digits` reads the file shipped in `tinytorch_datasets/`, checks its SHA-256
# (a corrupted or edited file fails loudly rather than training on garbage) and returns
# the images as float32 in [0, 1] (pixel / 16) and the labels as int64.

# %% nbgrader={"grade": false, "grade_id": "training_digits_loader", "locked": false, "schema_version": 3, "solution": false, "task": false}
#| export data
DIGITS_SHA256 = "b3b9c8cc11d765ce4264d8748bf3edbafa5038d91c93cf713ddbd6ae8652b410"


def digits_path() -> Path:
    """Where `digits.npz` is: the installed `tinytorch_datasets` package, or the
    `tinytorch_datasets/` folder of a checkout (beside the `tinytorch` or `tinytorch_course`
    package, as in a student workspace) or above the working folder."""
    try:
        import tinytorch_datasets

        return Path(tinytorch_datasets.DIGITS_FILE)
    except ImportError:
        pass
    candidates = []
    for package in ("tinytorch", "tinytorch_course"):  # a checkout: the folder beside them
        try:
            module = __import__(package)
        except ImportError:
            continue
        candidates.append(Path(module.__file__).resolve().parent.parent)
    candidates += [Path.cwd(), *Path.cwd().resolve().parents]
    for folder in candidates:
        if (folder / "tinytorch_datasets" / "digits.npz").is_file():
            return folder / "tinytorch_datasets" / "digits.npz"
    raise FileNotFoundError(
        "digits.npz not found: install tinytorch with its data (pip install of the repository) "
        "or run from inside the repository, whose tinytorch_datasets/ folder holds it"
    )


def load_digits(flatten: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The 1 797 UCI handwritten digits: images float32 in [0, 1] of shape (1797, 64)
    (or (1797, 8, 8) with `flatten=False`) and labels int64 in 0..9."""
    path = digits_path()
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != DIGITS_SHA256:
        raise ValueError(
            f"{path}: SHA-256 {digest} differs from the published {DIGITS_SHA256}; "
            "the file is corrupted or was changed"
        )
    with np.load(path) as data:
        images, labels = data["images"], data["labels"]
    x = images.astype(np.float32) / np.float32(16)
    return (x.reshape(len(x), -1) if flatten else x), labels.astype(np.int64)


def ascii_digit(image: np.ndarray, label: int | None = None, index: int | None = None) -> str:
    """An 8×8 digit (values 0..1) drawn in a box, two characters per pixel so it is square."""
    shades = " ░▒▓█"
    pixels = np.asarray(image, dtype=np.float64).reshape(8, 8)
    levels = np.clip(np.rint(pixels * (len(shades) - 1)), 0, len(shades) - 1).astype(int)
    rows = ["│" + "".join(shades[v] * 2 for v in row) + "│" for row in levels]
    title = (
        "image"
        + (f" {index}" if index is not None else "")
        + (f", label {label}" if label is not None else "")
    )
    return "\n".join(
        [f"{title} (darker = more ink)", "┌" + "─" * 16 + "┐", *rows, "└" + "─" * 16 + "┘"]
    )


# %%
x_digits, y_digits = load_digits()
print(
    f"x {x_digits.shape} {x_digits.dtype}, y {y_digits.shape} {y_digits.dtype}, "
    f"class counts {np.bincount(y_digits).tolist()}"
)
print(ascii_digit(x_digits[0], y_digits[0], index=0))

# %% [markdown]
# ### Train, validation, test
#
# Three disjoint sets, each with one job:
#
# ```
#   1 797 images ──┬── train (60 %)      the optimizer sees these; loss goes down
#                  ├── validation (20 %) you look at these to choose epochs, sizes, rates
#                  └── test (20 %)       looked at once, at the end: the honest number
# ```
#
# Test accuracy is only an estimate of accuracy on new digits if nothing about the
# model was chosen by looking at the test images. Validation is where choices are
# made; if you pick the learning rate with the best *test* score, that score is no
# longer an unbiased estimate.
#
# The split here is **stratified**: each digit's images are shuffled (seeded) and dealt
# 60/20/20 separately, so every split has each digit in (nearly) the dataset's
# proportions. With 174 to 183 images per digit, a plain random 20 % could by chance
# hold noticeably fewer of one digit. Per class of `n` images, the test split gets
# `round(n * test_fraction)`, validation `round(n * val_fraction)`, train the rest. The
# index arrays come back sorted, so the split is a set and not also an order.


# %% nbgrader={"grade": false, "grade_id": "training_split", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export data
def train_val_test_split(
    labels, val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified split of the indices of `labels` into (train, val, test), each sorted.

    Every class's indices are permuted with `np.random.default_rng(seed)` (classes in
    increasing order) and dealt: the first `round(n * test_fraction)` to test, the next
    `round(n * val_fraction)` to validation, the rest to train.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"train_val_test_split: labels must be 1-D, got shape {labels.shape}")
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"train_val_test_split: val_fraction {val_fraction} and test_fraction {test_fraction} "
            "must each be in [0, 1) and leave something for training"
        )
    rng = np.random.default_rng(seed)
    train, val, test = [], [], []
    ### BEGIN SOLUTION
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = round(len(members) * test_fraction)
        n_val = round(len(members) * val_fraction)
        test.append(members[:n_test])
        val.append(members[n_test : n_test + n_val])
        train.append(members[n_test + n_val :])
    ### END SOLUTION
    return tuple(np.sort(np.concatenate(part)).astype(np.int64) for part in (train, val, test))


# %% nbgrader={"grade": true, "grade_id": "test_training_split", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
_train, _val, _test = train_val_test_split(y_digits, seed=0)
check_equal(
    len(_train) + len(_val) + len(_test),
    len(y_digits),
    "train + val + test sizes (every image in one split)",
)
check_equal(
    np.sort(np.concatenate([_train, _val, _test])),
    np.arange(len(y_digits)),
    "the three splits together, sorted: each index exactly once (no overlap, none lost)",
)
_counts = np.bincount(y_digits)
check_equal(
    np.bincount(y_digits[_test], minlength=10),
    np.rint(_counts * 0.2).astype(int),
    "test images per digit: round(0.2 * images of that digit)",
)
check_equal(
    np.bincount(y_digits[_val], minlength=10),
    np.rint(_counts * 0.2).astype(int),
    "validation images per digit: round(0.2 * images of that digit)",
)
for _part, _name in ((_train, "train"), (_val, "val"), (_test, "test")):
    check_equal(_part, np.sort(_part), f"{_name} indices should come back sorted")
_again = train_val_test_split(y_digits, seed=0)
check_equal(
    _again[2],
    _test,
    "the test split with seed=0, computed twice (a seed must make it reproducible)",
)
if np.array_equal(train_val_test_split(y_digits, seed=1)[2], _test):
    raise AssertionError(
        "seed=0 and seed=1 gave the same test split: shuffle each class with the seeded rng"
    )
### BEGIN HIDDEN TESTS
_tiny = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
_tr, _va, _te = train_val_test_split(_tiny, 0.2, 0.2, seed=3)
check_equal(
    np.bincount(_tiny[_te]).tolist(), [1, 1], "stratified test split of 5+5 samples at 20 %"
)
check_equal(len(_tr), 6, "train size of 5+5 samples at 60 %")
check_equal(
    len(train_val_test_split(y_digits, 0.0, 0.25)[1]),
    0,
    "val_fraction=0 gives an empty validation split",
)
### END HIDDEN TESTS
print(f"split: {len(_train)} train, {len(_val)} val, {len(_test)} test, stratified by digit")
print("✓ test_training_split passed (10 points)")

# %% [markdown]
# ### Standardising inputs, from the training set only
#
# Networks train faster when each input feature has mean 0 and standard deviation 1:
# with raw pixels, a feature that is always large dominates the first layer's
# gradients. `Standardize.fit(x_train)` stores each pixel's mean and standard deviation
# *of the training images*; `standardize(x)` applies those same numbers to any split.
# Computing them on all 1 797 images would let the test set shape the inputs, a small
# but real leak.
#
# Some pixels (the top-left corner, and the first and last pixel of row 4) are 0 in every
# image, so their standard deviation is 0. Dividing by `std + eps` with `eps = 0.1` (on the [0, 1] pixel scale, about
# 1.6 of the 16 ink levels) keeps them at 0 and stops nearly-constant pixels from being
# blown up into large noisy inputs.


# %% nbgrader={"grade": false, "grade_id": "training_standardize", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export data
class Standardize:
    """Per-feature `(x - mean) / (std + eps)` with mean and std from the data given to `fit`."""

    def __init__(self, eps: float = 0.1):
        self.eps = eps
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def fit(self, x: np.ndarray) -> "Standardize":
        """Store the mean and standard deviation of each column of `x` (the training set)."""
        ### BEGIN SOLUTION
        x = np.asarray(x)
        self.mean, self.std = x.mean(axis=0), x.std(axis=0)
        ### END SOLUTION
        return self

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """`x` standardised with the stored statistics, in `x`'s dtype."""
        if self.mean is None:
            raise RuntimeError("Standardize: call fit(x_train) before transforming data")
        x = np.asarray(x)
        if x.shape[1:] != self.mean.shape:
            raise ValueError(
                f"Standardize: fitted on features of shape {self.mean.shape}, got x of shape {x.shape}"
            )
        ### BEGIN SOLUTION
        return ((x - self.mean) / (self.std + self.eps)).astype(x.dtype)
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_training_standardize", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
_xs = np.array([[0.0, 1.0], [0.0, 3.0], [0.0, 5.0]], dtype=np.float32)
_scaler = Standardize(eps=0.0).fit(_xs)
check_equal(_scaler.mean.tolist(), [0.0, 3.0], "Standardize.fit: mean of each column")
_std1 = float(np.std([1.0, 3.0, 5.0]))
if not np.isclose(_scaler.std[1], _std1):
    raise AssertionError(
        f"Standardize.fit: std of column [1, 3, 5] is {_scaler.std[1]}, expected {_std1:.6f}"
    )
_out = Standardize(eps=0.1).fit(_xs)(np.array([[0.0, 3.0 + _std1 + 0.1]], dtype=np.float32))
if not np.allclose(_out, [[0.0, 1.0]], atol=1e-6):
    raise AssertionError(
        f"Standardize(eps=0.1): (x - mean) / (std + eps) of [[0, mean + std + 0.1]] "
        f"should be [[0, 1]], got {_out.tolist()} (a constant column must stay 0)"
    )
check_equal(_out.dtype, np.dtype(np.float32), "dtype after standardising float32 input")
### BEGIN HIDDEN TESTS
_big = Standardize().fit(x_digits[:1000])(x_digits[:1000])
if not np.allclose(_big.mean(axis=0), 0, atol=1e-5):
    raise AssertionError("standardised training pixels should have mean 0 per pixel")
### END HIDDEN TESTS
print("Standardize: per-pixel statistics from the data given to fit, constant pixels stay 0")
print("✓ test_training_standardize passed (5 points)")

# %% [markdown]
# ## Part 4: Measuring a model: accuracy and `evaluate`
#
# The loss is what the optimizer minimises; *accuracy* (the fraction of images whose
# largest logit is the right class) is what a person cares about. `evaluate` runs a
# model over a loader without building a graph (`no_grad`: nothing will call
# `backward`, so there is no reason to keep every activation alive) and in evaluation
# mode (`model.eval()`), then puts the model back in the mode it was in.
#
# Averaging over batches needs care when the last batch is partial: the epoch's mean
# loss is `Σ (batch mean loss × batch size) / N`, not the mean of the batch means, which
# would give the two samples of a partial last batch the weight of a full batch.
#
# ```
#   batch sizes    32    32   ...   32    23      (1 079 training images, 34 batches)
#   batch losses   l₁    l₂   ...   l₃₃   l₃₄
#   epoch loss  =  (32·l₁ + 32·l₂ + ... + 32·l₃₃ + 23·l₃₄) / 1 079
# ```

# %%
#| export
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# In this notebook the data pipeline is defined above; the exported
# tinytorch/training.py imports it from tinytorch/data.py, where those cells go.
if "DataLoader" not in globals():
    from tinytorch.data import (
        DataLoader,
        Standardize,
        TensorDataset,
        load_digits,
        train_val_test_split,
    )

# %% nbgrader={"grade": false, "grade_id": "training_evaluate", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
from tinytorch.autograd import Variable, no_grad


def accuracy(logits, labels) -> float:
    """Fraction of rows of `logits` (N, C) whose largest entry is at the index `labels` (N,)."""
    logits = logits.data if isinstance(logits, Variable) else np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(
            f"accuracy: logits must be (N, C) and labels (N,), got {logits.shape} and {labels.shape}"
        )
    ### BEGIN SOLUTION
    return float(np.mean(logits.argmax(axis=1) == labels))
    ### END SOLUTION


def evaluate(model, loader: DataLoader, loss_fn=None) -> tuple[float, float]:
    """(mean loss per sample, accuracy) of `model` over one pass of `loader`, without
    recording a graph and in evaluation mode; the loss is NaN when `loss_fn` is None."""
    was_training = getattr(model, "training", True)
    model.eval()
    total_loss, correct, seen = 0.0, 0.0, 0
    try:
        with no_grad():
            for xb, yb in loader:
                ### BEGIN SOLUTION
                logits = model(Variable(xb))
                if loss_fn is not None:
                    total_loss += loss_fn(logits, yb).item() * len(yb)
                correct += accuracy(logits, yb) * len(yb)
                seen += len(yb)
                ### END SOLUTION
    finally:
        model.train(was_training)
    return (total_loss / seen if loss_fn is not None else float("nan")), correct / seen


# %% [markdown]
# The tests below use a tiny model whose logits are known: a `Linear` layer with
# hand-set weights (module 02), so the expected loss and accuracy can be written down.

# %% nbgrader={"grade": true, "grade_id": "test_training_evaluate", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
from tinytorch.nn import CrossEntropyLoss, Linear, ReLU, Sequential

_logits = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0], [1.0, 2.0]])
check_equal(accuracy(_logits, np.array([0, 1, 1, 1])), 0.75, "accuracy of 3 right out of 4")
_probe = Linear(2, 2, bias=False)
_probe.weight.data[...] = np.eye(2, dtype=np.float32)  # logits == inputs
_xe = np.array([[2.0, 0.0], [0.0, 2.0], [3.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
_ye = np.array([0, 1, 1, 0, 0])
_mean_loss = CrossEntropyLoss()(Variable(_xe), _ye).item()  # the mean over all 5 samples at once
_loader5 = DataLoader(TensorDataset(_xe, _ye), batch_size=2)  # batches of 2, 2, 1
_loss, _acc = evaluate(_probe, _loader5, CrossEntropyLoss())
check_equal(round(_acc, 6), 0.6, "evaluate: accuracy over 5 samples in batches of 2, 2, 1")
if not np.isclose(_loss, _mean_loss, rtol=1e-5):
    raise AssertionError(
        f"evaluate: mean loss {_loss:.6f}, expected {_mean_loss:.6f} (the mean over all 5 samples). "
        f"The mean of the three batch means would be wrong: weight each batch's loss by its size"
    )
check_equal(
    _probe.training, True, "model.training after evaluate (should be restored to train mode)"
)
### BEGIN HIDDEN TESTS
_probe.eval()
evaluate(_probe, _loader5)
check_equal(_probe.training, False, "model.training after evaluate of a model already in eval mode")
_probe.train()
if not np.isnan(evaluate(_probe, _loader5)[0]):
    raise AssertionError("evaluate without loss_fn should report the loss as NaN")
### END HIDDEN TESTS
print(f"evaluate: loss {_loss:.4f} (sample-weighted), accuracy {_acc:.0%}, train mode restored")
print("✓ test_training_evaluate passed (10 points)")

# %% [markdown]
# ## Part 5: The training loop
#
# One *step* is the four lines from the opening; one *epoch* is a step per batch of the
# loader. Here is one step on a tiny batch, drawn with module 01's `draw_graph`: the
# graph that `loss.backward()` walks, from the parameters to the loss (the rendering
# needs your finished engine, so it prints a hint until then).
#
# ```
#   ┌──────────────┐   ┌──────────────┐   ┌──────────────┐   ┌──────────────┐
#   │ zero_grad()  │──>│ forward, loss│──>│ backward()   │──>│ step()       │
#   │ .grad = None │   │ graph built  │   │ .grad filled │   │ params moved │
#   └──────────────┘   └──────────────┘   └──────────────┘   └──────────────┘
#           ^                                                        │
#           └──────────────────── next batch ────────────────────────┘
# ```
#
# Why `zero_grad` first: gradients *accumulate* (`+=`) into `.grad` (module 01), which is
# what you want when one parameter is used twice in a graph, and wrong across batches.
# Forget it and each step follows the sum of every gradient so far.
#
# `train_epoch` runs one epoch and returns the sample-weighted mean loss and the
# accuracy measured on the fly (on each batch's logits *before* that batch's update, as
# training scripts such as PyTorch's ImageNet example report it). `fit` (given) calls it once per epoch, evaluates on the
# validation loader, and records a `History`.

# %%
try:
    from tinytorch.viz import draw_graph

    _layer = Linear(3, 2, generator=np.random.default_rng(0))
    _layer.weight.name, _layer.bias.name = "W", "b"
    x = Variable(np.ones((4, 3), dtype=np.float32), name="x")
    logits = Sequential(_layer, ReLU())(x)
    logits.name = "logits"
    loss = CrossEntropyLoss()(logits, np.array([1, 0, 1, 1]))
    loss.name = "loss"
    print(draw_graph(loss))
    print(draw_graph(loss, backward=True))
except Exception as error:  # the engine or its drawing tool is not finished yet
    print(
        f"(the graph appears here once module 01's draw_graph works: {type(error).__name__}: {error})"
    )


# %% nbgrader={"grade": false, "grade_id": "training_loop", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def train_epoch(
    model, loss_fn, optimizer, loader: DataLoader, on_batch=None
) -> tuple[float, float]:
    """One pass over `loader`: for each batch zero the gradients, compute the loss, backward,
    step. Returns (mean loss per sample, accuracy); `on_batch(loss)` is called after each step."""
    model.train()
    total_loss, correct, seen = 0.0, 0.0, 0
    for xb, yb in loader:
        ### BEGIN SOLUTION
        optimizer.zero_grad()
        logits = model(Variable(xb))
        loss = loss_fn(logits, yb)
        loss.backward()
        optimizer.step()
        batch_loss = loss.item()
        total_loss += batch_loss * len(yb)
        correct += accuracy(logits, yb) * len(yb)
        seen += len(yb)
        ### END SOLUTION
        if on_batch is not None:
            on_batch(batch_loss)
    return total_loss / seen, correct / seen


@dataclass
class History:
    """Per-epoch numbers of a `fit` run (validation lists stay empty without a val loader)."""

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def epochs(self) -> int:
        return len(self.train_loss)


class _PlainBar:
    """Stands in for tqdm when it is not installed: one printed line per epoch."""

    def __init__(self, total: int, desc: str):
        self.total, self.desc, self.n = total, desc, 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, text: str) -> None:
        print(f"{self.desc}: {self.n}/{self.total} steps  {text}", flush=True)

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str = "training", enabled: bool = True):
    """A tqdm bar (a widget in Jupyter, text in a terminal), or a plain printed line per
    epoch when tqdm is missing; None when `enabled` is False."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _PlainBar(total, desc)
    try:
        return tqdm(total=total, desc=desc, unit="step", leave=True)
    except ImportError:  # in Jupyter without ipywidgets
        from tqdm.std import tqdm as text_tqdm

        return text_tqdm(total=total, desc=desc, unit="step", leave=True, file=sys.stdout)


def fit(
    model,
    loss_fn,
    optimizer,
    train_loader: DataLoader,
    epochs: int,
    val_loader: DataLoader | None = None,
    progress: bool = True,
    desc: str = "training",
) -> History:
    """Train for `epochs` epochs, evaluating on `val_loader` after each; returns the `History`."""
    if not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"fit: epochs must be a positive integer, got {epochs!r}")
    history, start = History(), time.perf_counter()
    bar = progress_bar(epochs * len(train_loader), desc, enabled=progress)
    on_batch = (lambda _loss: bar.update(1)) if bar is not None else None
    try:
        for epoch in range(1, epochs + 1):
            loss, acc = train_epoch(model, loss_fn, optimizer, train_loader, on_batch)
            history.train_loss.append(loss)
            history.train_acc.append(acc)
            summary = f"epoch {epoch}/{epochs} loss {loss:.4f} acc {acc:.3f}"
            if val_loader is not None:
                val_loss, val_acc = evaluate(model, val_loader, loss_fn)
                history.val_loss.append(val_loss)
                history.val_acc.append(val_acc)
                summary += f" val_loss {val_loss:.4f} val_acc {val_acc:.3f}"
            if bar is not None:
                bar.set_postfix_str(summary)
    finally:
        if bar is not None:
            bar.close()
    history.seconds = time.perf_counter() - start
    return history


# %% [markdown]
# The test trains a small network on a problem that is easy for the right loop and
# impossible to pass with a broken one: digits 0 and 1 only, 5 epochs. It also checks
# the two classic bugs separately: the gradients must be zeroed each step, and the
# reported loss must be the sample-weighted mean.

# %% nbgrader={"grade": true, "grade_id": "test_training_loop", "locked": true, "points": 15, "schema_version": 3, "solution": false, "task": false}
from tinytorch.optim import SGD

_zo = np.flatnonzero(y_digits < 2)
_loader01 = DataLoader(
    TensorDataset(x_digits[_zo], y_digits[_zo]), batch_size=32, shuffle=True, seed=0
)
_rng = np.random.default_rng(0)
_net = Sequential(Linear(64, 16, generator=_rng), ReLU(), Linear(16, 2, generator=_rng))
_opt = SGD(_net.parameters(), lr=0.1)
_before = evaluate(_net, _loader01, CrossEntropyLoss())[0]
_losses = [train_epoch(_net, CrossEntropyLoss(), _opt, _loader01)[0] for _ in range(5)]
_after, _acc01 = evaluate(_net, _loader01, CrossEntropyLoss())
if not _after < 0.5 * _before:
    raise AssertionError(
        f"5 epochs of train_epoch on digits 0/1 took the loss from {_before:.4f} to only "
        f"{_after:.4f}: is optimizer.step() called after loss.backward()?"
    )
if _acc01 < 0.95:
    raise AssertionError(
        f"after 5 epochs on digits 0 and 1 the accuracy is {_acc01:.1%}, expected at least 95%"
    )


_same = np.zeros((4, 64), dtype=np.float32)
_same_loader = DataLoader(TensorDataset(_same, np.zeros(4, dtype=np.int64)), batch_size=2)
_frozen = Sequential(Linear(64, 2, generator=np.random.default_rng(1)))
_grad_norms = []
_frozen_opt = SGD(
    _frozen.parameters(), lr=0.0
)  # lr 0: parameters never move, so each batch's gradient is the same
_orig_step = _frozen_opt.step


def _recording_step():
    _grad_norms.append(float(np.abs(_frozen[0].bias.grad).sum()))
    _orig_step()


_frozen_opt.step = _recording_step
_epoch_loss, _ = train_epoch(_frozen, CrossEntropyLoss(), _frozen_opt, _same_loader)
if len(_grad_norms) != 2:
    raise AssertionError(
        f"train_epoch called optimizer.step() {len(_grad_norms)} times for 2 batches, expected 2"
    )
if not np.isclose(_grad_norms[0], _grad_norms[1], rtol=1e-5):
    raise AssertionError(
        f"identical batches gave gradients of size {_grad_norms[0]:.4f} then {_grad_norms[1]:.4f} "
        "at the optimizer: call optimizer.zero_grad() before each backward, or gradients pile up"
    )
### BEGIN HIDDEN TESTS
_h = fit(_net, CrossEntropyLoss(), _opt, _loader01, epochs=2, val_loader=_loader01, progress=False)
check_equal((_h.epochs, len(_h.val_acc)), (2, 2), "fit(epochs=2) history lengths")
_uneven = DataLoader(TensorDataset(x_digits[:5], y_digits[:5]), batch_size=4)
_still = Sequential(Linear(64, 10, generator=np.random.default_rng(2)))
_l, _ = train_epoch(_still, CrossEntropyLoss(), SGD(_still.parameters(), lr=0.0), _uneven)
_expect = CrossEntropyLoss()(_still(Variable(x_digits[:5])), y_digits[:5]).item()
if not np.isclose(_l, _expect, rtol=1e-5):
    raise AssertionError(
        f"train_epoch loss {_l:.6f} with batches of 4 and 1, expected the sample mean {_expect:.6f}"
    )
### END HIDDEN TESTS
print(
    f"train_epoch: loss {_before:.3f} -> {_after:.3f} in 5 epochs on digits 0/1, accuracy {_acc01:.1%}; "
    "gradients zeroed each step"
)
print("✓ test_training_loop passed (15 points)")

# %% [markdown]
# ## Part 6: Learning curves
#
# A learning curve plots loss (or accuracy) per epoch, for training and validation
# together. Reading it is a skill: both falling means keep training; training falling
# while validation rises means the network is memorising the training images
# (overfitting); both flat and high means it is not learning (rate too small, or a bug).
#
# In a notebook `plot_history` draws it with matplotlib; in a terminal (or without
# matplotlib) `ascii_chart` draws it in text. The chart maps each value to a row:
#
# ```
#   row = round((value - low) / (high - low) * (height - 1))       0 = bottom row
#
#   high ├ value == high   -> row height - 1 (top)
#        │
#   low  ├ value == low    -> row 0 (bottom)
# ```
#
# and epoch `i` of `n` to column `round(i * (width - 1) / (n - 1))`. When every value is
# the same (`high == low`), put them all on the middle row `(height - 1) // 2`.
# Implement `value_rows`; the frame and labels are drawn for you.


# %% nbgrader={"grade": false, "grade_id": "training_chart", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def value_rows(values: Sequence[float], low: float, high: float, height: int) -> list[int]:
    """The chart row (0 = bottom, height - 1 = top) of each value on the scale low..high."""
    ### BEGIN SOLUTION
    if high == low:
        return [(height - 1) // 2 for _ in values]
    return [int(round((v - low) / (high - low) * (height - 1))) for v in values]
    ### END SOLUTION


CHART_MARKS = "*o+x#@"


def ascii_chart(
    series: dict[str, Sequence[float]],
    height: int = 10,
    width: int = 50,
    title: str = "",
    x_label: str = "epoch",
) -> str:
    """Several series on one shared y scale, drawn in a box; every line has the same width.

    Series are marked `* o + x # @` in order (a later series wins where two meet).
    """
    series = {name: [float(v) for v in values] for name, values in series.items() if len(values)}
    if not series:
        raise ValueError("ascii_chart: nothing to draw (every series is empty)")
    if len(series) > len(CHART_MARKS):
        raise ValueError(f"ascii_chart: at most {len(CHART_MARKS)} series, got {len(series)}")
    finite = [v for values in series.values() for v in values if math.isfinite(v)]
    low, high = (min(finite), max(finite)) if finite else (0.0, 0.0)
    n = max(len(values) for values in series.values())
    width = max(width, 2)
    grid = [[" "] * width for _ in range(height)]
    for mark, values in zip(CHART_MARKS, series.values(), strict=False):
        columns = [round(i * (width - 1) / (n - 1)) if n > 1 else 0 for i in range(len(values))]
        rows = value_rows([v if math.isfinite(v) else low for v in values], low, high, height)
        for column, row, v in zip(columns, rows, values, strict=True):
            if math.isfinite(v):
                grid[height - 1 - row][column] = mark
    labels = {0: f"{high:.4g}", height - 1: f"{low:.4g}"} if height > 1 else {0: f"{high:.4g}"}
    pad = max(len(text) for text in labels.values())
    lines = [" " * pad + " ┌" + "─" * width + "┐"]
    for index, row in enumerate(grid):
        label = labels.get(index, "")
        lines.append(
            f"{label:>{pad}} ├{''.join(row)}│" if label else " " * pad + " │" + "".join(row) + "│"
        )
    lines.append(" " * pad + " └" + "─" * width + "┘")
    axis = f"1{n:>{width - 1}}" if n > 1 else "1"
    lines.append(" " * (pad + 2) + axis.ljust(width) + " " + x_label)
    legend = "   ".join(f"{mark} {name}" for mark, name in zip(CHART_MARKS, series, strict=False))
    lines.append(" " * (pad + 2) + legend)
    if title:
        lines.insert(0, " " * (pad + 2) + title)
    full = max(len(line) for line in lines)
    return "\n".join(line.ljust(full) for line in lines)


def plot_history(history: History, ascii: bool | None = None):
    """Loss and accuracy per epoch: a matplotlib figure in a notebook (when matplotlib is
    installed), else the two ASCII charts printed; returns the figure or the text."""
    loss = {"train loss": history.train_loss, "val loss": history.val_loss}
    acc = {"train acc": history.train_acc, "val acc": history.val_acc}
    if ascii is None:
        ascii = "ipykernel" not in sys.modules
    if not ascii:
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            ascii = True
    if ascii:
        text = (
            ascii_chart(loss, title="loss per epoch")
            + "\n\n"
            + ascii_chart(acc, title="accuracy per epoch")
        )
        print(text)
        return text
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    for axes, group, name in ((left, loss, "loss"), (right, acc, "accuracy")):
        for label, values in group.items():
            if values:
                axes.plot(range(1, len(values) + 1), values, marker="o", label=label)
        axes.set_xlabel("epoch")
        axes.set_ylabel(name)
        axes.legend()
    figure.tight_layout()
    return figure


# %% nbgrader={"grade": true, "grade_id": "test_training_chart", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
check_equal(
    value_rows([0.0, 5.0, 10.0], 0.0, 10.0, 11),
    [0, 5, 10],
    "value_rows of 0, 5, 10 on a 0..10 scale, 11 rows",
)
check_equal(
    value_rows([1.0, 0.0], 0.0, 1.0, 10),
    [9, 0],
    "value_rows: high goes to the top row (height - 1), low to 0",
)
check_equal(
    value_rows([3.0, 3.0], 3.0, 3.0, 10),
    [4, 4],
    "value_rows when every value is equal: the middle row",
)
_chart = ascii_chart(
    {"train": [2.0, 1.0, 0.5, 0.25], "val": [2.1, 1.2, 0.9, 0.8]}, height=6, width=20
)
print(_chart)
_lines = _chart.splitlines()
if len({len(line) for line in _lines}) != 1:
    raise AssertionError(
        "ascii_chart lines differ in width: " + str([len(line) for line in _lines])
    )
_plot_rows = [line for line in _lines if "│" in line and "┌" not in line and "└" not in line]
check_equal(len(_plot_rows), 6, "rows inside the chart's box (height=6)")
if "*" not in _plot_rows[-1] or "o" not in _plot_rows[0]:
    raise AssertionError(
        "the lowest value (train's 0.25) should be on the bottom row and the highest "
        "(val's 2.1) on the top row; check value_rows"
    )
### BEGIN HIDDEN TESTS
check_equal(value_rows([0.5], 0.0, 1.0, 3), [1], "value_rows rounds to the nearest row")
_single = ascii_chart({"only": [1.0]}, height=3, width=5)
check_equal(
    len({len(line) for line in _single.splitlines()}), 1, "a one-point chart has aligned lines"
)
### END HIDDEN TESTS
print("ascii_chart: rows scaled correctly, box aligned")
print("✓ test_training_chart passed (10 points)")

# %% [markdown]
# ## Part 7: Saving and loading a trained model
#
# Training takes time; a trained model should outlive the Python process. The
# parameters are all there is to save (the architecture is code), and
# `model.state_dict()` (module 02) already gives them as `{"0.weight": array, ...}`.
# `np.savez` writes such a dict as a `.npz` file: a zip of `.npy` arrays, readable
# without tinytorch, and, unlike `pickle`, safe to open from someone else (loading
# it runs no code).
#
# ```
#   model ──state_dict()──> {"0.weight": (256, 64), "0.bias": (256,), ...} ──np.savez──> model.npz
#   model.npz ──np.load──> {name: array} ──load_state_dict()──> fresh model (same architecture)
# ```
#
# `load_state_dict` already refuses missing, unexpected or mis-shaped keys, naming
# them, so a file saved from a different architecture fails loudly.


# %% nbgrader={"grade": false, "grade_id": "training_save_load", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def save_model(model, path) -> Path:
    """Write `model.state_dict()` to `path` as an `.npz` file (numpy adds the suffix if
    missing); returns the path written."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    ### BEGIN SOLUTION
    np.savez(path, **model.state_dict())
    ### END SOLUTION
    return path


def load_model(model, path):
    """Load the parameters saved by `save_model` at `path` into `model` (same architecture);
    returns `model`."""
    ### BEGIN SOLUTION
    with np.load(path, allow_pickle=False) as saved:
        model.load_state_dict({name: saved[name] for name in saved.files})
    ### END SOLUTION
    return model


# %% nbgrader={"grade": true, "grade_id": "test_training_save_load", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
import tempfile

_m1 = Sequential(
    Linear(64, 8, generator=np.random.default_rng(1)),
    ReLU(),
    Linear(8, 10, generator=np.random.default_rng(2)),
)
_m2 = Sequential(
    Linear(64, 8, generator=np.random.default_rng(3)),
    ReLU(),
    Linear(8, 10, generator=np.random.default_rng(4)),
)
with tempfile.TemporaryDirectory() as _folder:
    _written = save_model(_m1, Path(_folder) / "digits-mlp")
    check_equal(_written.name, "digits-mlp.npz", "save_model's returned path (with .npz added)")
    if not _written.is_file():
        raise AssertionError(f"save_model did not write {_written}")
    check_equal(
        load_model(_m2, _written) is _m2, True, "load_model returns the model it loaded into"
    )
_p1, _p2 = _m1(Variable(x_digits[:50])).data, _m2(Variable(x_digits[:50])).data
check_equal(_p2, _p1, "outputs of the loaded model (should equal the saved model's exactly)")
### BEGIN HIDDEN TESTS
_wrong = Sequential(Linear(64, 9), ReLU(), Linear(9, 10))
with tempfile.TemporaryDirectory() as _folder:
    _file = save_model(_m1, Path(_folder) / "m.npz")
    check_raises(
        KeyError,
        ["0.weight"],
        lambda: load_model(_wrong, _file),
        "loading into a different architecture",
    )
### END HIDDEN TESTS
print("save_model / load_model: the loaded model predicts exactly what the saved one did")
print("✓ test_training_save_load passed (5 points)")

# %% [markdown]
# ## Part 8: Putting it together: digits
#
# `train_digits` (given: it only combines what you wrote) is the whole recipe, in the
# order a careful experiment runs:
#
# ```
#   1. split        stratified 60 / 20 / 20 with a fixed seed
#   2. choose       standardise with the training images' statistics, train an MLP
#                   64-256-10 (ReLU) with Adam (lr 0.001), batches of 32, 20 epochs,
#                   and watch the validation curve: this is where the recipe was chosen
#   3. final model  the same recipe, from scratch, on train + validation (80 %): the
#                   validation images have done their job, and more data helps
#   4. test         the test split is looked at once, at the end
# ```
#
# How good is "97 %"? The test split has 359 images, so one mistake is 0.28 %, and which
# images land in it matters more than that: over the split seeds 0 to 9 this recipe
# scored between 96.9 % (seed 0, the hardest draw) and 99.4 %, 98.3 % on average, on
# the reference machine. A single number from a single split is an estimate with an
# error bar of about a percent, not a property of the model. And it answers a narrower
# question than it seems: these 1 797 images were written by 13 people (the UCI "test"
# file), so every split shares writers between training and test. The number measures
# how well the network reads digits of people it has seen; strangers' handwriting is a
# harder test.


# %% nbgrader={"grade": false, "grade_id": "training_recipe", "locked": false, "schema_version": 3, "solution": false, "task": false}
#| export
@dataclass
class DigitsRun:
    """What `train_digits` returns: the model, its history, test accuracy and timing."""

    model: object
    history: History
    test_accuracy: float
    seconds: float
    scaler: Standardize
    test_images: np.ndarray
    test_labels: np.ndarray


def predict(model, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """The predicted class (index of the largest logit) of each row of `x`, without a graph."""
    was_training = getattr(model, "training", True)
    model.eval()
    try:
        with no_grad():
            parts = [
                model(Variable(x[i : i + batch_size])).data.argmax(axis=1)
                for i in range(0, len(x), batch_size)
            ]
    finally:
        model.train(was_training)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def digits_mlp(hidden: int = 256, seed: int = 0):
    """The MLP 64-hidden-10 with ReLU, initialised from `np.random.default_rng(seed)`."""
    from tinytorch.nn import Linear, ReLU, Sequential

    rng = np.random.default_rng(seed)
    return Sequential(Linear(64, hidden, generator=rng), ReLU(), Linear(hidden, 10, generator=rng))


def train_digits_model(
    x: np.ndarray,
    y: np.ndarray,
    fit_on: np.ndarray,
    val: np.ndarray | None = None,
    epochs: int = 20,
    seed: int = 0,
    hidden: int = 256,
    lr: float = 1e-3,
    batch_size: int = 32,
    progress: bool = True,
    desc: str = "training",
):
    """Standardise with the statistics of `x[fit_on]`, train `digits_mlp` on those rows
    with Adam, evaluate on `x[val]` each epoch if given. Returns (model, history, scaler)."""
    from tinytorch.nn import CrossEntropyLoss
    from tinytorch.optim import Adam

    scaler = Standardize().fit(x[fit_on])
    train_loader = DataLoader(
        TensorDataset(scaler(x[fit_on]), y[fit_on]), batch_size, shuffle=True, seed=seed
    )
    val_loader = (
        None if val is None else DataLoader(TensorDataset(scaler(x[val]), y[val]), batch_size=512)
    )
    model = digits_mlp(hidden, seed)
    optimizer = Adam(model.parameters(), lr=lr)
    history = fit(
        model, CrossEntropyLoss(), optimizer, train_loader, epochs, val_loader, progress, desc
    )
    return model, history, scaler


def train_digits(
    epochs: int = 20,
    seed: int = 0,
    split_seed: int = 1,
    hidden: int = 256,
    lr: float = 1e-3,
    batch_size: int = 32,
    progress: bool = True,
) -> DigitsRun:
    """The digits recipe: learning curves on train/validation, then the final model trained
    on train + validation, and its accuracy on the test split, measured once."""
    start = time.perf_counter()
    x, y = load_digits()
    train, val, test = train_val_test_split(y, 0.2, 0.2, seed=split_seed)
    settings = dict(
        epochs=epochs, seed=seed, hidden=hidden, lr=lr, batch_size=batch_size, progress=progress
    )
    _, history, _ = train_digits_model(x, y, train, val, desc="train, watch validation", **settings)
    development = np.sort(np.concatenate([train, val]))
    model, _, scaler = train_digits_model(
        x, y, development, desc="final: train + validation", **settings
    )
    test_images = scaler(x[test])
    _, test_accuracy = evaluate(
        model, DataLoader(TensorDataset(test_images, y[test]), batch_size=512)
    )
    return DigitsRun(
        model, history, test_accuracy, time.perf_counter() - start, scaler, test_images, y[test]
    )


# %% [markdown]
# The integration test: your Dataset, DataLoader, split, standardisation, training loop
# and evaluation together, with your module 02 layers and module 03 optimizer, must
# recognise at least 97 % of the held-out test digits of split seed 1 (99.2 % with the
# reference solution).

# %% nbgrader={"grade": true, "grade_id": "test_training_digits", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
_run = train_digits(epochs=20, seed=0, split_seed=1)
plot_history(_run.history)
print(
    f"test accuracy {_run.test_accuracy:.2%} on {len(_run.test_labels)} held-out digits "
    f"after {_run.history.epochs} epochs ({_run.seconds:.1f} s)"
)
if _run.test_accuracy < 0.97:
    raise AssertionError(
        f"test accuracy {_run.test_accuracy:.2%} is below 97%. Look at the learning curve: if the "
        "training loss does not fall, check train_epoch; if it falls but validation accuracy "
        "stays low, check the split and Standardize (fit on the training images only)"
    )
### BEGIN HIDDEN TESTS
_wrong_digits = np.flatnonzero(predict(_run.model, _run.test_images) != _run.test_labels)
check_equal(
    len(_wrong_digits),
    round((1 - _run.test_accuracy) * len(_run.test_labels)),
    "misclassified test digits counted by predict and by evaluate",
)
### END HIDDEN TESTS
print("✓ test_training_digits passed (10 points)")

# %% [markdown]
# ## What you built, and where it goes next
#
# * `Dataset`, `TensorDataset`, `Subset` and a `DataLoader` that batches, shuffles with
#   a seeded generator (a new order every epoch, the same run every time), keeps or
#   drops the partial last batch, and rejects bad arguments by name.
# * The UCI digits, offline and checksummed; a stratified, seeded train/validation/test
#   split; standardisation that learns only from the training images.
# * `evaluate`, `train_epoch` and `fit` with a progress bar; learning curves as a plot
#   or ASCII chart; `save_model` / `load_model` through `.npz` files.
# * A 64-256-10 MLP, trained by your own engine, layers and optimizer, that reads
#   handwritten digits it has never seen with at least 97 % accuracy.
#
# Next, module 05 opens up the memory side of the same training step: how many bytes
# the parameters, activations, gradients and graph of your network occupy, measured
# from the live graph, and how gradient checkpointing trades compute for memory.
