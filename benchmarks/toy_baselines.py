"""The toy world's baselines, as a user runs them: vanilla vs SR front-ends vs LR tokens vs RobustSAM vs VPT.

Whole processes from the shell (stdout and stderr to a log file per step, as under SLURM), in one work folder:

1. ``lr0fm fit --config toy --config ablations/vpt`` and ``lr0fm fit --config toy --config ablations/robust_sam``
   (each in its own folder, so its export is ``lightning_logs/version_0/lr_tokens.safetensors``); with
   ``--fit_lr_tokens`` also ``lr0fm fit --config toy`` (else the shipped toy tokens, the export of that run);
2. ``lr0fm benchmark --config toy --output WORK/benchmark``: plain, ``--sr bicubic`` (the trivial SR baseline),
   ``--sr`` the shipped toy SR model (``benchmarks/train_toy_sr.py``), and ``--lr_tokens`` each export;
3. ``lr0fm report WORK/benchmark --allow_mixed_protocols`` (its ``sr_tradeoff`` figure puts them side by side).

It prints a markdown table: per variant, what it adds at inference (parameters; for SR the forward time per
image the run measured at each resolution), the wall time of its training process, and top-1 (%) at 8/16/32 px
and HR, as the mean over the three toy tasks and on toy-texture (the task that needs fine detail).

    python benchmarks/toy_baselines.py [--work lightning_logs/toy_baselines] [--fit_lr_tokens] [--reuse NAME=FILE]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOYCLIP = ROOT / "lr0fm" / "resources" / "toyclip"
SHIPPED_TOKENS = TOYCLIP / "toyclip_lr_tokens.safetensors"
TOY_SR = TOYCLIP / "toy_sr_compact_x4.safetensors"
TASKS = ("toy-color", "toy-texture", "toy-size")
RESOLUTIONS = ("8", "16", "32", "hr")

#: trained variants: name -> (what trains, the extra `lr0fm fit` configs after `--config toy`)
FITS = {
    "LR tokens": ("tokens added before every block", []),
    "VPT": ("prompts concatenated before the first block", ["--config", "ablations/vpt"]),
    # the toy token rate 0.02 diverges for RobustSAM (README, LR-TK0); 0.001 is the rate its README row used
    "RobustSAM": (
        "robust token, token head and feature blocks",
        ["--config", "ablations/robust_sam", "--model.lr", "0.001"],
    ),
}
#: SR front-ends: name -> (what runs, `--sr` spec, the rows' protocol)
SRS = {
    "bicubic x4": ("classical interpolation", "bicubic", "sr:bicubic-x4"),
    "toy SR (Compact x4)": ("Real-ESRGAN Compact, trained on toy images", str(TOY_SR), "sr:toy_sr_compact_x4"),
}


def lr0fm() -> list[str]:
    """The ``lr0fm`` command of this interpreter's environment."""
    script = Path(sys.executable).with_name("lr0fm")
    return [str(script)] if script.exists() else [sys.executable, "-m", "lr0fm.cli"]


def run(cmd: list[str], log: Path, cwd: Path = ROOT) -> float:
    """Seconds a whole process takes, its output going to ``log``; stops the script when it fails."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore")
    start = time.perf_counter()
    with log.open("w") as fh:
        done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    if done.returncode:
        sys.exit(f"{' '.join(cmd[:5])} ... failed (exit {done.returncode}); see {log}")
    return time.perf_counter() - start


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fit(name: str, extra: list[str], work: Path) -> tuple[Path, float]:
    """Train one variant in its own folder; its export and the wall time of the process."""
    folder = work / "fit" / name.replace(" ", "_")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    seconds = run([*lr0fm(), "fit", "--config", "toy", *extra], work / f"fit_{folder.name}.log", cwd=folder)
    exports = sorted(folder.glob("lightning_logs/version_*/lr_tokens.safetensors"))
    if not exports:
        sys.exit(f"{name}: no lr_tokens.safetensors under {folder}/lightning_logs; see {work}/fit_{folder.name}.log")
    return exports[-1], seconds


def read_rows(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def cells(rows: list[dict]) -> dict[tuple[str, str], float]:
    """``{(dataset, resolution): top1 %}`` of one variant's rows."""
    return {(r["dataset"], r["resolution"]): 100 * float(r["top1"]) for r in rows}


def table(variants: list[dict]) -> str:
    """The markdown table: one line per variant."""
    head = "| variant | trains / runs | params added | training (s) | " + " | ".join(
        f"{r} px" if r != "hr" else "HR" for r in RESOLUTIONS
    )
    lines = [head + " | SR ms/img (8/16/32) |", "|" + "---|" * (len(RESOLUTIONS) + 5)]
    for v in variants:
        acc = cells(v["rows"])
        marks = []
        for r in RESOLUTIONS:
            mean = sum(acc[(t, r)] for t in TASKS) / len(TASKS)
            marks.append(f"{mean:.1f} ({acc[('toy-texture', r)]:.1f})")
        params = {r.get("sr_params") or r.get("lr_tokens_params") or "" for r in v["rows"]} - {""}
        ms = {r["resolution"]: r.get("sr_ms_per_image") for r in v["rows"] if r.get("sr_ms_per_image")}
        ms_text = " / ".join(f"{float(ms[r]):.2f}" for r in RESOLUTIONS[:-1] if r in ms) or "—"
        train = f"{v['train_s']:.0f}" if v.get("train_s") is not None else v.get("train_note", "—")
        lines.append(
            f"| {v['name']} | {v['what']} | {', '.join(sorted(params)) or '0'} | {train} | "
            + " | ".join(marks)
            + f" | {ms_text} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT / "lightning_logs" / "toy_baselines")
    parser.add_argument("--fit_lr_tokens", action="store_true", help="retrain the LR tokens (else the shipped ones)")
    parser.add_argument(
        "--reuse",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help=f"use this export for a trained variant instead of fitting it ({', '.join(FITS)})",
    )
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    reuse = dict(item.split("=", 1) for item in args.reuse)
    unknown = set(reuse) - set(FITS)
    if unknown:
        parser.error(f"--reuse {', '.join(sorted(unknown))}: not a trained variant; expected one of {', '.join(FITS)}")

    exports: dict[str, tuple[Path, float | None, str]] = {}
    for name, (_, extra) in FITS.items():
        if name in reuse:
            exports[name] = (Path(reuse[name]).resolve(), None, "reused")
        elif name == "LR tokens" and not args.fit_lr_tokens:
            exports[name] = (SHIPPED_TOKENS, None, "shipped")
        else:
            print(f"fit {name} ...", flush=True)
            path, seconds = fit(name, extra, work)
            exports[name] = (path, seconds, "")
            print(f"  {seconds:.0f} s -> {path}", flush=True)

    out = work / "benchmark"
    if out.exists():
        shutil.rmtree(out)
    bench = [*lr0fm(), "benchmark", "--config", "toy", "--output", str(out)]
    print("benchmark plain, SR front-ends, trained variants ...", flush=True)
    run(bench, work / "benchmark_plain.log")
    for _what, spec, _protocol in SRS.values():
        run([*bench, "--sr", spec], work / f"benchmark_sr_{spec.rsplit('/', 1)[-1]}.log")
    for name, (path, _, _) in exports.items():
        run([*bench, "--lr_tokens", str(path)], work / f"benchmark_{name.replace(' ', '_')}.log")
    run([*lr0fm(), "report", str(out), "--allow_mixed_protocols"], work / "report.log")

    rows = read_rows(out / "results.csv")
    variants = [
        {
            "name": "vanilla",
            "what": "nothing (frozen toyclip)",
            "rows": [r for r in rows if r["model"] == "toyclip" and r["protocol"] == "paper"],
            "train_s": None,
        }
    ]
    for name, (what, _, protocol) in SRS.items():
        variants.append({"name": name, "what": what, "rows": [r for r in rows if r["protocol"] == protocol]})
    for name, (path, seconds, note) in exports.items():
        digest = sha256(path)
        picked = [r for r in rows if r.get("lr_tokens_sha256") == digest]
        variants.append({"name": name, "what": FITS[name][0], "rows": picked, "train_s": seconds, "train_note": note})
    for v in variants:
        if len(v["rows"]) != len(TASKS) * len(RESOLUTIONS):
            sys.exit(
                f"{v['name']}: {len(v['rows'])} rows in {out}/results.csv, expected {len(TASKS) * len(RESOLUTIONS)}"
            )
    print(f"\ntop-1 % of toyclip: mean over {', '.join(TASKS)} (toy-texture in brackets); work folder {work}\n")
    print(table(variants))
    print(f"\nreport: {out}/report/index.html (sr_tradeoff: gain vs parameters added)")


if __name__ == "__main__":
    main()
