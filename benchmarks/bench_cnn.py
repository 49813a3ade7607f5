"""The module 06 CNN against the module 04 MLP on the UCI digits, split by split.

Both are trained with module 04's recipe (stratified 60/20/20 split, standardisation
fitted on the training images, Adam, batches of 32; the final model on train +
validation, tested once on the test split) on the split seeds given, and the test
accuracies are compared on the same splits: mean, worst, and on how many splits the CNN
wins. Run:

    tinytorch-course bench cnn                 # split seeds 0..9
    tinytorch-course bench cnn --seeds 2       # quicker
    tinytorch-course bench cnn --quick         # a smoke run (1 split, 1 epoch)
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from tinytorch.conv import train_digits_cnn  # noqa: E402
from tinytorch.training import train_digits  # noqa: E402


def compare(seeds: range, cnn_epochs: int, mlp_epochs: int) -> dict[str, np.ndarray]:
    """Test accuracy of each model on each split seed, and the seconds each took."""
    results = {"mlp": [], "cnn": [], "mlp_s": [], "cnn_s": []}
    for split_seed in seeds:
        mlp = train_digits(epochs=mlp_epochs, split_seed=split_seed, progress=False)
        cnn = train_digits_cnn(epochs=cnn_epochs, split_seed=split_seed, progress=False)
        for name, run in (("mlp", mlp), ("cnn", cnn)):
            results[name].append(run.test_accuracy)
            results[f"{name}_s"].append(run.seconds)
        print(
            f"split seed {split_seed}: MLP {mlp.test_accuracy:.2%} ({mlp.seconds:.1f} s)   "
            f"CNN {cnn.test_accuracy:.2%} ({cnn.seconds:.1f} s)",
            flush=True,
        )
    out = {k: np.array(v) for k, v in results.items()}
    out["mlp_p"] = sum(p.data.size for p in mlp.model.parameters())
    out["cnn_p"] = sum(p.data.size for p in cnn.model.parameters())
    return out


def report(results: dict[str, np.ndarray], n_test: int = 359) -> str:
    mlp, cnn = results["mlp"], results["cnn"]
    wins, ties = int((cnn > mlp).sum()), int((cnn == mlp).sum())
    lines = [
        f"{'':<22}{'MLP 64-256-10':>16}{'CNN':>12}",
        f"{'parameters':<22}{results['mlp_p']:>16,}{results['cnn_p']:>12,}",
        f"{'mean test accuracy':<22}{mlp.mean():>16.2%}{cnn.mean():>12.2%}",
        f"{'worst split':<22}{mlp.min():>16.2%}{cnn.min():>12.2%}",
        f"{'best split':<22}{mlp.max():>16.2%}{cnn.max():>12.2%}",
        f"{'mistakes (mean)':<22}{(1 - mlp).mean() * n_test:>16.1f}"
        f"{(1 - cnn).mean() * n_test:>12.1f}",
        f"{'seconds per run':<22}{results['mlp_s'].mean():>16.1f}{results['cnn_s'].mean():>12.1f}",
        "",
        f"the CNN wins on {wins} of {len(mlp)} splits, ties on {ties}, "
        f"loses on {len(mlp) - wins - ties}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="split seeds 0..N-1 (default 10)")
    parser.add_argument("--cnn-epochs", type=int, default=15)
    parser.add_argument("--mlp-epochs", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 split, 1 epoch")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.cnn_epochs, args.mlp_epochs = 1, 1, 1
    start = time.perf_counter()
    results = compare(range(args.seeds), args.cnn_epochs, args.mlp_epochs)
    print()
    print(report(results))
    print(f"\n{time.perf_counter() - start:.0f} s in all, OPENBLAS_NUM_THREADS="
          f"{os.environ['OPENBLAS_NUM_THREADS']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
