"""Small datasets shipped with TinyTorch, so that nothing is downloaded at run time.

This package holds data files only; `tinytorch.training.load_digits` and
`tinytorch.attention.load_shakespeare` read them. It
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
