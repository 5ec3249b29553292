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
    assert cli_main(args) == 0
    return yaml.safe_load(capsys.readouterr().out)


AUTHORS = {  # the LR0.FM authors' runs (shyammarjit/LR0.FM train.sh / main_lr.py / params.py)
    "eva02_b16": dict(
        backbone="EVA02-B-16:merged2b_s8b_b131k",
        optimizer="lamb",
        lr=2e-4,
        head_lr=5e-4,
        weight_decay=0.05,
        betas=[0.9, 0.999],
        eps=1e-8,
        warmup_steps=2000,
        token_init="trunc_normal",
        token_std=0.02,
        embed_token_std=None,
        epochs=200,
        batch_size=8,
        devices=1,
        clip=5.0,
    ),
    "metaclip_b16": dict(
        backbone="ViT-B-16-quickgelu:metaclip_fullcc",
        optimizer="adamw",
        lr=5e-4,
        head_lr=None,
        weight_decay=0.2,
        betas=[0.9, 0.98],
        eps=1e-6,
        warmup_steps=2000,
        token_init="normal",
        token_std=0.02,
        embed_token_std=0.01,
        epochs=10,
        batch_size=128,
        devices=2,
        clip=None,
    ),
    "openclip_b16": dict(
        backbone="ViT-B-16:datacomp_xl_s13b_b90k",
        optimizer="adamw",
        lr=5e-4,
        head_lr=None,
        weight_decay=0.2,
        betas=[0.9, 0.98],
        eps=1e-6,
        warmup_steps=2000,
        token_init="normal",
        token_std=0.02,
        embed_token_std=0.01,
        epochs=10,
        batch_size=128,
        devices=2,
        clip=None,
    ),
}


def checkpoint_monitors(config: dict) -> list[str]:
    callbacks = config["trainer"]["callbacks"]
    return [cb["init_args"]["monitor"] for cb in callbacks if cb["class_path"].endswith("ModelCheckpoint")]


@pytest.mark.parametrize("name", sorted(AUTHORS))
def test_paper_configs_hold_the_authors_hyper_parameters(capsys, name) -> None:
    config, want = resolved(capsys, CONFIGS / f"{name}.yaml"), AUTHORS[name]
    model, data, trainer = config["model"], config["data"], config["trainer"]
    assert model["backbone"] == want["backbone"] and model["method"] == "lr_tokens"
    for key in ("optimizer", "lr", "head_lr", "weight_decay", "betas", "eps", "warmup_steps", "token_init",
                "token_std", "embed_token_std"):  # fmt: skip
        assert model[key] == want[key], key
    assert (model["loss_reduction"], model["max_logit_scale"], model["teacher_fp32"]) == ("sum", None, True)
    assert model["hr_cosine_weight"] == 0.0 and model["caption_loss_weight"] == 0.0 and model["finetune"] is None
    assert trainer["max_epochs"] == want["epochs"] and trainer["devices"] == want["devices"]
    assert trainer["gradient_clip_val"] == want["clip"]
    assert data["batch_size"] == want["batch_size"] and data["buckets"] == [[16, 32], [32, 64], [64, 128]]
    assert (data["crop_scale"], data["caption_group"], data["images_per_caption"]) == ([0.9, 1.0], 4, 30)
    # the kept checkpoint is chosen on held-out synthetic images, never on an evaluation dataset
    assert checkpoint_monitors(config) == ["val/loss"] and data["val_images"] > 0


def test_the_authors_checkpoint_rule_is_an_opt_in_ablation(capsys) -> None:
    config = resolved(capsys, CONFIGS / "eva02_b16.yaml", CONFIGS / "ablations" / "select_on_pets16.yaml")
    assert checkpoint_monitors(config) == ["val/acc_16"]
    (benchmark,) = [cb for cb in config["trainer"]["callbacks"] if cb["class_path"].endswith("ZeroShotBenchmark")]
    assert benchmark["init_args"]["datasets"] == ["oxford-pets"] and benchmark["init_args"]["resolutions"] == [16]


@pytest.mark.parametrize("ablation", ["unfrozen_no_tokens", "unfrozen_tokens", "unfrozen_authors_code_no_tokens",
                                      "unfrozen_authors_code_tokens", "caption_classifier"])  # fmt: skip
def test_table_5_ablations_train_on_50_images_per_caption(capsys, ablation) -> None:
    config = resolved(capsys, CONFIGS / "eva02_b16.yaml", CONFIGS / "ablations" / f"{ablation}.yaml")
    assert config["data"]["images_per_caption"] == 50


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
