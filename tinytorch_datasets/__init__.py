"""Small datasets shipped with TinyTorch, so that nothing is downloaded at run time.

This package holds data files only; `tinytorch.data.load_digits`,
`tinytorch.conv.load_fashion_mnist` and `tinytorch.attention.load_shakespeare` read them. It
lives outside `tinytorch/` because that folder is generated from the module notebooks
(and overwritten by a student's own exports), while the data is the same for everyone.
See README.md in this folder for each file's source, licence and checksum.
"""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).parent
DIGITS_FILE = DATA_DIR / "digits.npz"
# SHA-256 of digits.npz as written by make_digits.py; tests/test_data_digits.py checks it.
DIGITS_SHA256 = "b3b9c8cc11d765ce4264d8748bf3edbafa5038d91c93cf713ddbd6ae8652b410"
SHAKESPEARE_FILE = DATA_DIR / "shakespeare.txt.xz"
# SHA-256 of shakespeare.txt.xz (written by make_shakespeare.py) and of the text inside it.
SHAKESPEARE_SHA256 = "7833dd59a5594409b1db74209f0539bf8aa470d80f5a348379beadc9c4580280"
SHAKESPEARE_TEXT_SHA256 = "a74b54d1ef1dc44be145d3c93068267ab7beba0c7045a7b6a844b83ed5d7054f"
FASHION_MNIST_FILE = DATA_DIR / "fashion_mnist.idx.xz"
# SHA-256 of fashion_mnist.idx.xz (written by make_fashion_mnist.py) and of the four IDX
# files inside it, concatenated (train images, train labels, test images, test labels).
FASHION_MNIST_SHA256 = "7b8cd64bb06d178fd7cffa9a1bcceac9331cd401eb9e9c3c6ffa0cc447ebfb3b"
FASHION_MNIST_IDX_SHA256 = "14410854cf7a289477dcfc7df3f8ec24741e281cdcc425ede0d9a748ca630214"
