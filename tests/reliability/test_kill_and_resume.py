"""``kill -9`` at write boundaries of ``lr0fm benchmark``, then a rerun: the outputs equal an uninterrupted run's.

The process kills itself at a named point (``LR0FM_KILL_AT``, :mod:`lr0fm.faults`): exactly between two
writes, where a timed external kill would only land by chance. The fast cases cover the cell boundaries;
the slow one walks every atomic file replacement of a whole run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from benchmark_fixtures import make_image_folder, tiny_clip_json

REPO = Path(__file__).resolve().parents[2]
VOLATILE = {"run_id", "timestamp"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("kill")
    model = tiny_clip_json(base)
    folders = [make_image_folder(base / f"d{i}", num_classes=3, per_class=2, seed=i) for i in range(2)]
    return base, model, folders


def bench(world, out: Path, kill_at: str | None = None) -> int:
    _, model, folders = world
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    env.pop("LR0FM_KILL_AT", None)
    if kill_at:
        env["LR0FM_KILL_AT"] = kill_at
    cmd = [sys.executable, "-m", "lr0fm.cli", "benchmark", "--model", str(model),
           "--dataset", *[f"folder:{f}" for f in folders], "--resolutions", "8", "hr", "--output", str(out),
           "--accelerator", "cpu", "--workers", "0", "--batch_size", "4", "--seed", "0"]  # fmt: skip
    return subprocess.run(cmd, env=env, capture_output=True, timeout=300).returncode


def snapshot(out: Path) -> dict[str, object]:
    """Every output that must come out the same: rows (without run id/time), predictions, summary, metrics."""
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    files = {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and (p.suffix in (".jsonl", ".csv", ".md") and p.name not in ("results.jsonl", "results.csv"))
    }
    leftovers = sorted(str(p) for p in out.rglob("*.tmp"))
    return {
        "rows": sorted(json.dumps({k: v for k, v in r.items() if k not in VOLATILE}, sort_keys=True) for r in rows),
        "csv_lines": len((out / "results.csv").read_text().splitlines()),
        "files": files,
        "leftovers": leftovers,
    }


@pytest.fixture(scope="module")
def uninterrupted(world):
    out = world[0] / "uninterrupted"
    assert bench(world, out) == 0
    return snapshot(out)


@pytest.mark.parametrize("point", ["cell-predictions@1", "cell-row@1", "cell-predictions@2"])
def test_a_kill_at_a_cell_boundary_then_a_rerun_equals_an_uninterrupted_run(world, uninterrupted, tmp_path, point):
    out = tmp_path / "out"
    assert bench(world, out, kill_at=point) == -signal.SIGKILL
    assert bench(world, out) == 0
    assert snapshot(out) == uninterrupted


@pytest.mark.slow
def test_a_kill_at_every_file_replacement_then_a_rerun_equals_an_uninterrupted_run(world, uninterrupted, tmp_path):
    nth, killed = 1, 0
    while True:
        out = tmp_path / f"out{nth}"
        status = bench(world, out, kill_at=f"atomic-rename@{nth}")
        if status == 0:  # the run has fewer replacements than nth: every one was tried
            break
        assert status == -signal.SIGKILL
        killed += 1
        assert bench(world, out) == 0, f"rerun after a kill at replacement {nth} failed"
        assert snapshot(out) == uninterrupted, f"kill at replacement {nth}"
        nth += 1
    assert killed >= 8


def test_a_full_disk_names_the_file_and_keeps_earlier_outputs(world, uninterrupted, tmp_path):
    """A file-size limit (``ulimit -f``) stands in for a full disk: the write fails, nothing is torn."""
    out = tmp_path / "out"
    assert bench(world, out) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "config.yaml"}
    _, model, folders = world
    big = make_image_folder(tmp_path / "big", num_classes=3, per_class=15, seed=5)
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    cmd = (f"ulimit -f 8; exec {sys.executable} -m lr0fm.cli benchmark --model {model} --dataset "
           f"folder:{folders[0]} folder:{folders[1]} folder:{big} --resolutions 8 hr --output {out} "
           "--accelerator cpu --workers 0 --batch_size 4 --seed 0")  # fmt: skip
    proc = subprocess.run(["bash", "-c", cmd], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    (line,) = [x for x in proc.stderr.splitlines() if "error:" in x]
    assert "File too large" in line and str(out) in line and "rerun" in line and "Traceback" not in proc.stderr
    assert {p: p.read_bytes() for p in before} == before  # every earlier output is intact (config.yaml: this run's)
    assert not list(out.rglob("*.tmp"))
    assert bench(world, out) == 0  # the limit lifted: the folder is still usable
