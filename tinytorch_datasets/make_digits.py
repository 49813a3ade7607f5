"""Regenerate `digits.npz` from scikit-learn's copy of the UCI handwritten digits.

Run with a Python that has scikit-learn installed (it is not a dependency of
TinyTorch; use a throwaway virtual environment):

    python3 -m venv /tmp/skl && /tmp/skl/bin/pip install scikit-learn
    /tmp/skl/bin/python tinytorch_datasets/make_digits.py

The output is byte-identical run to run: the zip members carry a fixed timestamp,
so the SHA-256 in README.md and in the tests stays valid.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

OUTPUT = Path(__file__).with_name("digits.npz")
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can hold


def read_sklearn_csv() -> tuple[np.ndarray, np.ndarray]:
    """Pixels (1797, 8, 8) and labels (1797,) from sklearn/datasets/data/digits.csv.gz."""
    import sklearn

    source = Path(sklearn.__file__).parent / "datasets" / "data" / "digits.csv.gz"
    with gzip.open(source, "rt", encoding="utf-8") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if table.shape != (1797, 65):
        raise ValueError(f"{source}: expected 1797 rows of 64 pixels + 1 label, got {table.shape}")
    pixels, labels = table[:, :64], table[:, 64]
    if pixels.min() < 0 or pixels.max() > 16 or set(np.unique(labels)) != set(range(10)):
        raise ValueError(f"{source}: pixels must be 0..16 and labels 0..9")
    print(f"read {source} (sha256 {hashlib.sha256(source.read_bytes()).hexdigest()})")
    return pixels.reshape(-1, 8, 8).astype(np.uint8), labels.astype(np.uint8)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    """Like `np.savez_compressed`, but with fixed member timestamps (reproducible bytes)."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, npy_bytes(array), compresslevel=9)


def main() -> None:
    images, labels = read_sklearn_csv()
    write_npz(OUTPUT, images=images, labels=labels)
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size} bytes)")
    print(f"sha256 {hashlib.sha256(OUTPUT.read_bytes()).hexdigest()}")
    print("class counts", np.bincount(labels, minlength=10).tolist())


if __name__ == "__main__":
    main()
