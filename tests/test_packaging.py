"""A wheel built from the repository, installed non-editable and run from outside the checkout.

Checks that everything a user reaches by name ships inside the package: the paper's 66 backbone names, the
benchmark/LR-TK0/synth/toy presets, the published results table, the toy world's plug-in registration.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed into a folder of its own (no dependencies: the test environment provides them)."""
    out = tmp_path_factory.mktemp("wheel")
    # build from a copy of the sources: an in-tree build reuses ./build/lib, where files deleted or renamed
    # since an earlier build would still ship
    source = out / "source"
    skip = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "lightning_logs")
    shutil.copytree(REPO, source, symlinks=True, ignore=skip)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    build = subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(source)],
                           capture_output=True, text=True)  # fmt: skip
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = out.glob("lr0fm-*.whl")
    target = out / "site"
    install = subprocess.run([*pip, "install", "--no-deps", "--no-compile", "--target", str(target), str(wheel)],
                             capture_output=True, text=True)  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    return target


def lr0fm(site: Path, cwd: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m lr0fm.cli ARGS`` importing the installed wheel, from ``cwd`` (outside the checkout)."""
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "lr0fm.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def test_the_installed_wheel_is_the_one_imported(site: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", "import lr0fm; print(lr0fm.__file__)"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert done.stdout.strip().startswith(str(site)), done


def test_paper_names_presets_and_published_table_ship_with_the_wheel(site: Path, tmp_path: Path) -> None:
    listing = lr0fm(site, tmp_path, "benchmark", "--list_models", "*")
    assert listing.returncode == 0, listing.stderr[-2000:]
    paper_lines = [line for line in listing.stdout.splitlines() if "[paper protocol:" in line]
    from lr0fm.models.paper_backbones import read_paper_backbones

    names = {line.split("  ->  ")[0] for line in paper_lines}  # the 66 and the rest of the lr0fm-plus table
    assert len(read_paper_backbones()) == 66 and names == set(read_paper_backbones("lr0fm-plus"))
    resolve = (  # every loadable paper name resolves to a spec that parses (weights are not downloaded here)
        "from lr0fm.models.paper_backbones import read_paper_backbones\n"
        "from lr0fm.models import check_spec\n"
        "table = read_paper_backbones()\n"
        "specs = [check_spec(name) for name, e in table.items() if not e.get('needs_adapter')]\n"
        "print(len(table), len(specs))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", resolve], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.stdout.split() == ["66", "66"], done.stderr[-2000:]
    metrics = lr0fm(
        site, tmp_path, "metrics", "report", "lr0fm66", "--num_classes", "paper", "--output", "m", "--quiet"
    )
    assert metrics.returncode == 0, metrics.stderr[-2000:]
    assert (tmp_path / "m" / "summary.csv").read_text().count("EVA-02-CLIP-B/16,") == 4  # 16, 32, 64, 128 px
    datasets = lr0fm(site, tmp_path, "benchmark", "--list_datasets", "toy-*")
    assert datasets.stdout.split() == ["toy-color", "toy-shape", "toy-size", "toy-texture"]  # the toy plug-in


def test_toy_benchmark_and_toy_fit_run_from_their_packaged_presets(site: Path, tmp_path: Path) -> None:
    bench = lr0fm(site, tmp_path, "benchmark", "--config", "toy", "--output", "out", "--resolutions", "16", "hr",
                  "--workers", "0")  # fmt: skip
    assert bench.returncode == 0, bench.stdout[-2000:] + bench.stderr[-2000:]
    assert "toyclip on toy-texture" in bench.stdout and (tmp_path / "out" / "results.csv").is_file()
    fit = lr0fm(site, tmp_path, "fit", "--config", "toy", "--trainer.max_steps", "2", "--trainer.limit_val_batches",
                "0", "--data.source", "toy:64", "--data.val_images", "0")  # fmt: skip
    assert fit.returncode == 0, fit.stdout[-2000:] + fit.stderr[-2000:]
    assert (tmp_path / "lightning_logs" / "version_0" / "lr_tokens.safetensors").is_file()
    for command in (["synth", "--config", "paper_8k"], ["toy", "pretrain", "--config", "pretrain2"]):
        wrong = lr0fm(site, tmp_path, *command, "--output", "x")
        assert wrong.returncode == 2 and "Did you mean" in wrong.stderr, wrong.stderr[-1000:]
