"""Write `fashion_mnist.idx.xz` from Debian's `dataset-fashion-mnist` package.

    cd /tmp && apt-get download dataset-fashion-mnist
    dpkg-deb -x dataset-fashion-mnist_*.deb /tmp/fm
    python tinytorch_datasets/make_fashion_mnist.py /tmp/fm/usr/share/datasets/fashion-mnist

The four IDX files of Fashion-MNIST (gzip-compressed in the package) are decompressed,
checked (magic numbers, shapes, labels 0..9) and concatenated unchanged, in the order
train images, train labels, test images, test labels, into one xz stream (preset 9
extreme). Each IDX file starts with its own shape, so the stream needs no other index.
Compare the printed SHA-256s with README.md.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).parent / "fashion_mnist.idx.xz"
PARTS = [  # (file in the package, magic number, shape)
    ("train-images-idx3-ubyte.gz", 2051, (60000, 28, 28)),
    ("train-labels-idx1-ubyte.gz", 2049, (60000,)),
    ("t10k-images-idx3-ubyte.gz", 2051, (10000, 28, 28)),
    ("t10k-labels-idx1-ubyte.gz", 2049, (10000,)),
]


def checked_idx(path: Path, magic: int, shape: tuple[int, ...]) -> bytes:
    """The decompressed IDX bytes of `path`, after checking its header and contents."""
    raw = gzip.decompress(path.read_bytes())
    header = np.frombuffer(raw, ">u4", count=1 + len(shape))
    if int(header[0]) != magic or tuple(int(n) for n in header[1:]) != shape:
        raise ValueError(f"{path}: header {header.tolist()}, expected {magic} and {shape}")
    data = np.frombuffer(raw, np.uint8, offset=4 * (1 + len(shape)))
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: {data.size} values, expected {int(np.prod(shape))}")
    if len(shape) == 1 and (data.max() > 9 or np.bincount(data).min() != shape[0] // 10):
        raise ValueError(f"{path}: labels must be 0..9, each a tenth of the set")
    print(f"{path.name}: gzip SHA-256 {hashlib.sha256(path.read_bytes()).hexdigest()}")
    print(f"  IDX SHA-256 {hashlib.sha256(raw).hexdigest()} ({len(raw)} bytes)")
    return raw


def main(folder: str) -> None:
    stream = b"".join(checked_idx(Path(folder) / name, *rest) for name, *rest in PARTS)
    data = lzma.compress(stream, preset=9 | lzma.PRESET_EXTREME)
    OUT.write_bytes(data)
    print(f"{OUT.name}: {len(stream)} bytes of IDX, {len(data)} bytes of xz")
    print(f"IDX stream SHA-256 {hashlib.sha256(stream).hexdigest()}")
    print(f"file SHA-256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main(sys.argv[1])
