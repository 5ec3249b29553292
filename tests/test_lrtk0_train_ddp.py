"""`lr0fm fit` as users run it: 2-process DDP (gloo, CPU) equals 1 process on the same global batch.

Also checks that the run's config lands in ``lightning_logs/version_N/config.yaml`` and re-runs it, and that
``lr0fm validate --ckpt_path`` evaluates a checkpoint and ``lr0fm export-tokens`` exports its tokens.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_lrtk0_train import write_tiny_arch


def fit(workdir: Path, config: Path, *extra: str, subcommand: str = "fit") -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "lr0fm.cli", subcommand, "--config", str(config), *extra]
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def losses(version_dir: Path) -> list[float]:
    events = EventAccumulator(str(version_dir)).Reload()
    return [event.value for event in events.Scalars("train/loss")]


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ddp")
    content = {
        "seed_everything": 0,
        "num_threads": 1,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "max_epochs": 2,
            "log_every_n_steps": 1,
            "enable_progress_bar": False,
            "enable_model_summary": False,
        },
        "model": {"backbone": write_tiny_arch(folder), "lr": 0.01, "weight_decay": 0.0, "warmup_steps": 1},
        "data": {"source": "toy:24", "buckets": [[8, 12], [12, 20]], "batch_size": 8},
    }
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(content))
    return path


def test_two_process_ddp_matches_one_process_and_config_is_saved(config: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    fit(one, config)
    fit(two, config, "--trainer.devices=2", "--trainer.strategy=ddp", "--data.batch_size=4")
    single, ddp = one / "lightning_logs" / "version_0", two / "lightning_logs" / "version_0"
    expected = losses(single)
    assert len(expected) == 6  # 3 global batches x 2 epochs
    assert losses(ddp) == pytest.approx(expected, rel=1e-4, abs=1e-5)
    tokens_one, tokens_two = (load_file(str(d / "lr_tokens.safetensors")) for d in (single, ddp))
    for name in tokens_one:
        torch.testing.assert_close(tokens_two[name], tokens_one[name], rtol=1e-4, atol=1e-5)
    saved = yaml.safe_load((ddp / "config.yaml").read_text())
    assert str(saved["trainer"]["devices"]) == "2" and saved["data"]["batch_size"] == 4
    assert saved["trainer"]["use_distributed_sampler"] is False
    rerun = tmp_path / "rerun"
    rerun.mkdir()
    fit(rerun, single / "config.yaml")  # the saved config re-runs the same training
    assert losses(rerun / "lightning_logs" / "version_0") == pytest.approx(expected, rel=1e-5, abs=1e-6)
    # Lightning's default top-1 checkpoint and lr0fm's per-epoch last.ckpt, in each run's own folder
    assert sorted(p.name for p in (single / "checkpoints").glob("*.ckpt")) == ["epoch=1-step=6.ckpt", "last.ckpt"]
    assert (ddp / "checkpoints" / "last.ckpt").is_file()
    checkpoint = single / "checkpoints" / "last.ckpt"
    validated = fit(one, config, "--data.val_images=8", f"--ckpt_path={checkpoint}", subcommand="validate")
    assert "val/loss" in validated.stdout
    # `lr0fm export-tokens` on a LightningCLI checkpoint gives the tokens that fit exported itself
    export = subprocess.run(
        [sys.executable, "-m", "lr0fm.cli", "export-tokens", str(checkpoint), "-o", str(tmp_path / "ckpt.safetensors")],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert export.returncode == 0, export.stderr[-3000:]
    exported = load_file(str(tmp_path / "ckpt.safetensors"))
    for name in tokens_one:
        torch.testing.assert_close(exported[name], tokens_one[name], rtol=0, atol=0)
