"""The shipped LR-TK0 configs parse against the LightningCLI signatures and hold the paper's hyper-parameters.

``lr0fm fit --config ... --print_config`` validates every key and ``class_path`` without building a model,
so these run offline although the paper backbones' weights cannot be downloaded here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lr0fm.cli import main as cli_main

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "lrtk0"
ABLATIONS = sorted((CONFIGS / "ablations").glob("*.yaml"))


def resolved(capsys: pytest.CaptureFixture, *configs: Path) -> dict:
    """The full config LightningCLI resolves from ``configs`` (the last one wins)."""
    args = ["fit"] + [arg for path in configs for arg in ("--config", str(path))] + ["--print_config"]
    with pytest.raises(SystemExit) as done:
        cli_main(args)
    assert done.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("name", "backbone", "optimizer", "weight_decay", "epochs", "batch_size", "devices"),
    [
        ("eva02_b16", "EVA02-B-16:merged2b_s8b_b131k", "lamb", 0.05, 200, 8, "auto"),
        ("metaclip_b16", "ViT-B-16-quickgelu:metaclip_fullcc", "adamw", 0.2, 10, 64, 2),
        ("openclip_b16", "ViT-B-16:laion2b_s34b_b88k", "adamw", 0.2, 10, 64, 2),
    ],
)
def test_paper_configs_hold_the_authors_hyper_parameters(
    capsys, name, backbone, optimizer, weight_decay, epochs, batch_size, devices
) -> None:
    config = resolved(capsys, CONFIGS / f"{name}.yaml")
    model, data, trainer = config["model"], config["data"], config["trainer"]
    assert model["backbone"] == backbone and model["method"] == "lr_tokens"
    assert (model["optimizer"], model["lr"], model["weight_decay"]) == (optimizer, 5e-4, weight_decay)
    assert trainer["max_epochs"] == epochs and str(trainer["devices"]) == str(devices)
    assert data["batch_size"] == batch_size and data["buckets"] == [[16, 32], [32, 64], [64, 128]]
    assert model["hr_cosine_weight"] == 0.0  # the paper's loss: no extra HR term
    if name == "eva02_b16":
        assert model["warmup_steps"] == 2000


@pytest.mark.parametrize("ablation", ABLATIONS, ids=lambda p: p.stem)
def test_every_ablation_composes_with_a_paper_config(capsys, ablation: Path) -> None:
    base = resolved(capsys, CONFIGS / "eva02_b16.yaml")
    config = resolved(capsys, CONFIGS / "eva02_b16.yaml", ablation)
    changed = yaml.safe_load(ablation.read_text())
    assert changed and config != base
    for section, values in changed.items():
        for key, value in (values or {}).items() if isinstance(values, dict) else []:
            if key != "callbacks":
                assert config[section][key] == value, (ablation.name, section, key)


def test_toy_config_parses(capsys) -> None:
    config = resolved(capsys, CONFIGS / "toy.yaml")
    assert config["model"]["backbone"] == "toyclip" and config["trainer"]["accelerator"] == "cpu"
