"""The shipped UCI digits file: its checksum, its contents, and the loader that reads it."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

import tinytorch.data as tt_data
import tinytorch_datasets

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tinytorch_datasets"
# Images per digit 0..9, counted in scikit-learn's digits.csv.gz when digits.npz was made
# from it (tinytorch_datasets/make_digits.py prints them); also in the folder's README.
CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_file_checksum_matches_the_published_one():
    digest = hashlib.sha256((DATA / "digits.npz").read_bytes()).hexdigest()
    assert digest == tinytorch_datasets.DIGITS_SHA256, (
        "digits.npz changed: regenerate or restore it"
    )
    assert tt_data.DIGITS_SHA256 == tinytorch_datasets.DIGITS_SHA256
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    assert digest in readme, "tinytorch_datasets/README.md should state the file's SHA-256"
    assert ", ".join(map(str, CLASS_COUNTS)) in readme


def test_contents_are_1797_images_of_8x8_pixels_0_to_16_and_labels_0_to_9():
    with np.load(DATA / "digits.npz", allow_pickle=False) as data:
        assert sorted(data.files) == ["images", "labels"]
        images, labels = data["images"], data["labels"]
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert labels.shape == (1797,) and labels.dtype == np.uint8
    assert images.min() == 0 and images.max() == 16
    assert np.bincount(labels, minlength=10).tolist() == CLASS_COUNTS


def test_writer_reproduces_the_file_byte_for_byte(tmp_path):
    """make_digits.py writes zip members with a fixed timestamp: same arrays, same bytes."""
    spec = importlib.util.spec_from_file_location("make_digits", DATA / "make_digits.py")
    make_digits = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_digits)
    with np.load(DATA / "digits.npz") as data:
        images, labels = data["images"], data["labels"]
    copy = tmp_path / "digits.npz"
    make_digits.write_npz(copy, images=images, labels=labels)
    assert copy.read_bytes() == (DATA / "digits.npz").read_bytes()


def test_load_digits_scales_pixels_to_0_1_as_float32():
    x, y = tt_data.load_digits()
    assert x.shape == (1797, 64) and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    images, _ = tt_data.load_digits(flatten=False)
    assert images.shape == (1797, 8, 8)
    with np.load(DATA / "digits.npz") as data:
        np.testing.assert_array_equal(images * 16, data["images"])


def test_a_corrupted_file_is_refused_with_its_checksum(tmp_path, monkeypatch):
    broken = tmp_path / "digits.npz"
    shutil.copy(DATA / "digits.npz", broken)
    raw = bytearray(broken.read_bytes())
    raw[100] ^= 0xFF
    broken.write_bytes(bytes(raw))
    monkeypatch.setattr(tt_data, "digits_path", lambda: broken)
    with pytest.raises(ValueError, match="SHA-256"):
        tt_data.load_digits()


def test_the_file_is_found_without_the_datasets_package_on_the_path(monkeypatch):
    """A checkout run from elsewhere: the folder beside the tinytorch package is used."""
    import sys

    monkeypatch.setitem(sys.modules, "tinytorch_datasets", None)  # import fails
    monkeypatch.chdir("/")
    assert tt_data.digits_path().resolve() == (DATA / "digits.npz").resolve()
