"""Time `lr0fm metrics optimize-weights` on a synthetic 66-model x 15-dataset table.

Prints the paper-eq.-2 objective of the starting (published) weights and of the optimised weights, the
number of trials and the wall time. With --table, runs on a real results table instead (e.g. the published
LR0.FM table in examples/).

    python benchmarks/optimize_weights.py [--trials 60] [--seed 0] [--table examples/lr0fm66_results.csv]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lr0fm.catalog import DATASETS, NUM_CLASSES
from lr0fm.metrics.cli import main as metrics_main


def synthetic_table(path: Path, num_models: int = 66, seed: int = 0) -> Path:
    """A results table shaped like LR0.FM's: a shared robustness factor plus dataset-specific behaviour."""
    rng = np.random.default_rng(seed)
    skill = rng.normal(size=num_models)  # general robustness of each model
    quirk = rng.normal(size=(num_models, len(DATASETS)))  # dataset-specific behaviour
    share = np.linspace(0.9, 0.2, len(DATASETS))  # how much each dataset follows the shared factor
    rng.shuffle(share)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["model", "dataset", "resolution", "top1"])
        for i in range(num_models):
            for j, d in enumerate(DATASETS):
                chance = 1 / NUM_CLASSES[d]
                hr = float(np.clip(rng.uniform(0.3, 0.9), chance + 0.01, 1))
                w.writerow([f"model-{i:02d}", d, "hr", f"{hr:.4f}"])
                for k, n in enumerate([16, 32, 64, 128]):
                    z = share[j] * skill[i] + (1 - share[j]) * quirk[i, j]
                    keep = 1 / (1 + np.exp(-(z + 1.2 * k - 1.5)))  # retained fraction grows with resolution
                    w.writerow([f"model-{i:02d}", d, n, f"{max(chance, hr * keep):.4f}"])
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--table", help="results table (default: a synthetic 66 x 15 table)")
    parser.add_argument("--num_classes", action="append", default=[], metavar="DATASET=N")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(args.table) if args.table else synthetic_table(Path(tmp) / "synthetic66.csv")
        out = Path(tmp) / "weights.yaml"
        argv = [
            "optimize-weights",
            str(table),
            "--resolution",
            "16",
            "--trials",
            str(args.trials),
            "--seed",
            str(args.seed),
            "--output",
            str(out),
        ]
        for nc in args.num_classes:
            argv += ["--num_classes", nc]
        t0 = time.perf_counter()
        rc = metrics_main(argv)
        elapsed = time.perf_counter() - t0
        print(
            f"optimize-weights on {table.name}: {elapsed:.1f} s for {args.trials} Ax trials "
            f"({elapsed / max(args.trials, 1):.2f} s/trial, refinement included)"
        )
        print(out.read_text())
    return rc


if __name__ == "__main__":
    sys.exit(main())
