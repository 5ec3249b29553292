"""Fixed cost per extra (model, dataset) cell of a sweep, measured as a user runs it: whole processes.

Twelve small generated datasets (photo-sized JPEGs in the on-disk layout of ``folder:``) and a small random
open_clip ViT at 224 px (``benchmarks/benchmark_speed.py``'s ``SPEED_CLIP``), five resolutions. Timed in the
same run, every process started from the shell with stdout to a log file as under SLURM:

* ``one``: ``lr0fm benchmark`` on one of the datasets;
* ``twelve``: ``lr0fm benchmark`` on all twelve in one process (one Trainer, one ``validate`` per model);
* ``per-cell``: the same twelve datasets as twelve in-process ``run_benchmark`` calls of one dataset each (a
  Trainer, its workers and a ``validate`` per cell: how the sweep ran before), inside one process.

The floor: ``twelve / one`` at most 1.5. The script prints both ratios and the cost of each extra cell.

Or, with ``--vs-naive`` (the CPU case of the benchmark-engine issue: 600 JPEGs of 500x375, 60 classes x 20
templates, the same ViT, five resolutions), whole processes again: ``lr0fm benchmark`` against the naive
per-resolution protocol as its own script (``benchmarks/naive_protocol.py``, no Lightning), with their top-1.
The naive script also runs with ``OMP_WAIT_POLICY=PASSIVE`` (``lr0fm benchmark``'s default when it has
DataLoader workers), to separate what the wait policy gives from what the one-pass engine gives.

    python benchmarks/benchmark_sweep.py [--datasets 12] [--images 16] [--workers 2] [--repeat 2] [--vs-naive]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_speed import SPEED_CLIP, make_dataset  # noqa: E402

RESOLUTIONS = ["16", "32", "64", "128", "hr"]


def run(cmd: list[str], log: Path, **env_vars: str) -> float:
    """Seconds a whole process takes, its stdout and stderr going to ``log``."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore", **env_vars)
    start = time.perf_counter()
    with log.open("w") as fh:
        done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{' '.join(cmd[:6])} ... failed; see {log}")
    return elapsed


PER_CELL = """
import sys
from lr0fm.benchmark.config import BenchmarkConfig
from lr0fm.benchmark.runner import run_benchmark
model, out, workers, *datasets = sys.argv[1:]
for i, dataset in enumerate(datasets):
    run_benchmark(BenchmarkConfig(models=[model], datasets=[dataset], resolutions={res}, output=f"{{out}}/{{i}}",
                                  accelerator="cpu", workers=int(workers), batch_size=64, predictions=False,
                                  seed=0), log=lambda *_: None)
"""


def main() -> None:
    """Time the three ways on the same data and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=12)
    parser.add_argument("--images", type=int, default=16, help="images per dataset")
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="interleaved repetitions; the best time is reported")
    parser.add_argument("--vs-naive", action="store_true", help="also time whole processes against the naive protocol")
    parser.add_argument("--naive-images", type=int, default=600)
    parser.add_argument("--naive-classes", type=int, default=60)
    args = parser.parse_args()
    if args.vs_naive:
        vs_naive(args)
        return

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = tmp / "speed-clip.json"
        model.write_text(json.dumps(SPEED_CLIP))
        datasets = [
            f"folder:{make_dataset(tmp / f'd{i}', args.images, args.classes, seed=i)}" for i in range(args.datasets)
        ]
        spec = f"{model}"
        common = ["--model", spec, "--resolutions", *RESOLUTIONS, "--accelerator", "cpu", "--seed", "0",
                  "--workers", str(args.workers), "--no_predictions"]  # fmt: skip
        cli = [sys.executable, "-m", "lr0fm.cli", "benchmark"]
        script = PER_CELL.format(res=RESOLUTIONS)
        times: dict[str, float] = {}
        for rep in range(args.repeat):
            runs = {
                "one": [*cli, *common, "--dataset", datasets[0], "--output", str(tmp / f"one{rep}")],
                "twelve": [*cli, *common, "--dataset", *datasets, "--output", str(tmp / f"all{rep}")],
                "per-cell": [
                    sys.executable,
                    "-c",
                    script,
                    spec,
                    str(tmp / f"cell{rep}"),
                    str(args.workers),
                    *datasets,
                ],  # fmt: skip
            }
            for name, cmd in runs.items():
                seconds = run(cmd, tmp / f"{name}{rep}.log")
                times[name] = min(times.get(name, float("inf")), seconds)
        n = args.datasets
        print(f"{n} datasets x {args.images} images ({args.classes} classes, 500x375 JPEGs), 5 resolutions, "
              f"random ViT at 224 px, {args.workers} workers, CPU; whole processes, best of {args.repeat}")  # fmt: skip
        one = times["one"]
        print(f"  one dataset, one process            {one:7.1f} s")
        print(f"  {n} datasets, one process (lr0fm)   {times['twelve']:7.1f} s   {times['twelve'] / one:.2f}x one")
        print(f"  {n} datasets, Trainer per cell      {times['per-cell']:7.1f} s   {times['per-cell'] / one:.2f}x one")
        extra = (times["twelve"] - times["one"]) / (n - 1)
        extra_cell = (times["per-cell"] - times["one"]) / (n - 1)
        print(f"  cost of each extra cell: {extra:.2f} s (one Trainer per sweep) vs {extra_cell:.2f} s (per cell)")
        print(f"  one Trainer per sweep is {times['per-cell'] / times['twelve']:.2f}x faster than a Trainer per cell")


def vs_naive(args) -> None:
    """Whole processes: ``lr0fm benchmark`` vs the naive protocol's script on the CPU case; top-1 of both."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = tmp / "speed-clip.json"
        model.write_text(json.dumps(SPEED_CLIP))
        folder = make_dataset(tmp / "data", args.naive_images, args.naive_classes)
        naive = [sys.executable, str(Path(__file__).with_name("naive_protocol.py")), str(model), str(folder), "64",
                 str(args.workers), "paper", *RESOLUTIONS]  # fmt: skip
        times: dict[str, float] = {}
        for rep in range(args.repeat):
            out = tmp / f"lr0fm{rep}"
            engine = [sys.executable, "-m", "lr0fm.cli", "benchmark", "--model", str(model), "--dataset",
                      f"folder:{folder}", "--resolutions", *RESOLUTIONS, "--accelerator", "cpu", "--seed", "0",
                      "--workers", str(args.workers), "--output", str(out)]  # fmt: skip
            passive = {"OMP_WAIT_POLICY": "PASSIVE"}
            runs = (("naive", naive, {}), ("naive-passive", naive, passive), ("lr0fm", engine, {}))
            for name, cmd, env in runs:
                times[name] = min(times.get(name, float("inf")), run(cmd, tmp / f"{name}{rep}.log", **env))
        naive_top1 = json.loads((tmp / "naive0.log").read_text().strip().splitlines()[-1])
        rows = [json.loads(line) for line in (tmp / "lr0fm0" / "results.jsonl").read_text().splitlines()]
        engine_top1 = {str(r["resolution"]): r["top1"] for r in rows}
        setup = f"{args.naive_images} JPEGs (500x375/375x500), {args.naive_classes} classes x 20 templates"
        print(f"{setup}, random ViT at 224 px, 5 resolutions, {args.workers} workers, CPU; whole processes, "
              f"best of {args.repeat}")  # fmt: skip
        naive, passive, engine = times["naive"], times["naive-passive"], times["lr0fm"]
        print(f"  naive protocol script                          {naive:7.1f} s")
        print(f"  naive protocol script, OMP_WAIT_POLICY=PASSIVE {passive:7.1f} s   {naive / passive:.2f}x faster")
        print(f"  lr0fm benchmark (defaults)                     {engine:7.1f} s   {naive / engine:.2f}x faster "
              f"({passive / engine:.2f}x the naive script with lr0fm's OpenMP wait policy)")  # fmt: skip
        print(f"  identical top-1 at every resolution: {naive_top1 == engine_top1}  ({engine_top1})")


if __name__ == "__main__":
    main()
