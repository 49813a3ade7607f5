"""The shipped Fashion-MNIST file: its checksums, its contents, the loader that reads it,
the script that writes it, and a short training run on a few hundred images."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import lzma
from pathlib import Path

import numpy as np
import pytest

import tinytorch.conv as tt_conv
import tinytorch_datasets

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tinytorch_datasets"
FILE = DATA / "fashion_mnist.idx.xz"
# torchvision.datasets.FashionMNIST.classes, in label order.
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
           "Sneaker", "Bag", "Ankle boot")  # fmt: skip


@pytest.fixture(scope="module")
def loaded():
    return tt_conv.load_fashion_mnist()


def make_script():
    spec = importlib.util.spec_from_file_location("make_fm", DATA / "make_fashion_mnist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_file_and_decoded_checksums_match_the_published_ones():
    raw = FILE.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    assert digest == tinytorch_datasets.FASHION_MNIST_SHA256, "the file changed: rebuild it"
    assert tt_conv.FASHION_MNIST_SHA256 == tinytorch_datasets.FASHION_MNIST_SHA256
    stream_digest = hashlib.sha256(lzma.decompress(raw)).hexdigest()
    assert stream_digest == tinytorch_datasets.FASHION_MNIST_IDX_SHA256
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    assert digest in readme and stream_digest in readme, "README.md should state both"
    assert f"{len(raw):,}".replace(",", " ") in readme, "README.md should state the size"


def test_loader_returns_60000_train_and_10000_test_images_balanced_over_10_classes(loaded):
    (x_train, y_train), (x_test, y_test) = loaded
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == np.uint8 and x_test.dtype == np.uint8
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    assert x_train.min() == 0 and x_train.max() == 255
    assert tt_conv.FASHION_MNIST_CLASSES == CLASSES
    # The loaded arrays are the IDX files' bytes: rebuild the stream and hash it.
    stream = b"".join(
        bytes([0, 0, 8, array.ndim])
        + np.array(array.shape, ">u4").tobytes()
        + array.astype(np.uint8).tobytes()
        for array in (x_train, y_train, x_test, y_test)
    )
    assert hashlib.sha256(stream).hexdigest() == tinytorch_datasets.FASHION_MNIST_IDX_SHA256


def test_loader_refuses_a_changed_file(tmp_path, monkeypatch):
    changed = tmp_path / "fashion_mnist.idx.xz"
    changed.write_bytes(FILE.read_bytes()[:-1] + b"\0")
    monkeypatch.setattr(tinytorch_datasets, "FASHION_MNIST_FILE", changed)
    with pytest.raises(ValueError, match="SHA-256"):
        tt_conv.load_fashion_mnist()


def test_make_script_checks_headers_and_labels(tmp_path):
    make = make_script()
    labels = np.repeat(np.arange(10, dtype=np.uint8), 3)
    good = tmp_path / "labels.gz"
    good.write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + np.array([30], ">u4").tobytes()
                                   + labels.tobytes()))  # fmt: skip
    raw = make.checked_idx(good, 2049, (30,))
    assert raw[8:] == labels.tobytes()
    with pytest.raises(ValueError, match="expected 2049"):
        make.checked_idx(good, 2049, (31,))
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + np.array([30], ">u4").tobytes()
                                  + (labels + 1).tobytes()))  # fmt: skip
    with pytest.raises(ValueError, match="labels must be 0..9"):
        make.checked_idx(bad, 2049, (30,))


def test_a_few_hundred_images_train_a_cnn_well_above_chance():
    run = tt_conv.train_fashion_cnn(epochs=2, limit=600, progress=False)
    assert len(run.test_labels) == 100
    assert len(run.history.val_acc) == 2
    assert run.test_accuracy >= 0.45, run.history.val_acc
