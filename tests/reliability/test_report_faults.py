"""``lr0fm report`` and ``lr0fm metrics report`` under a full disk: one line naming the file, earlier outputs intact."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run(args: list[str], limit_blocks: int | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    limit = f"ulimit -f {limit_blocks}; " if limit_blocks else ""
    cmd = f"{limit}exec {sys.executable} -m lr0fm.cli " + " ".join(args)
    return subprocess.run(["bash", "-c", cmd], env=env, capture_output=True, text=True, timeout=300)


def files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("command", "limit"),
    [(["metrics", "report", "lr0fm66"], 4), (["report", "lr0fm66", "--analyses", "gamma_heatmap"], 40)],
    ids=["metrics-report", "report"],
)
def test_a_full_disk_names_the_file_and_keeps_the_earlier_report(tmp_path, command, limit):
    out = tmp_path / "out"
    assert run([*command, "--output", str(out)]).returncode == 0
    before = files(out)
    done = run([*command, "--output", str(out)], limit_blocks=limit)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if "error:" in x]
    assert "File too large" in line and str(out) in line and "rerun to continue" in line
    after = files(out)
    assert set(after) == set(before)  # no temporary left behind, nothing new half-written
    for path in after:  # every file is a whole one: the earlier run's bytes, never a cut version
        assert after[path] == before[path], path
