"""The RobustSAM baseline (paper Table 4) as an LR-TK0 method, and method-tagged exports (RobustSAM, VPT).

Tiny random towers and a tiny open_clip CLIP on CPU; the toy world's images for training.
"""

from __future__ import annotations

import copy
import csv
import json
import os
from pathlib import Path

import lightning as L
import pytest
import timm
import torch
import torch.nn.functional as F
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from lrtk0_fixtures import KillAt, Killed, make_trainer
from open_clip.transformer import VisionTransformer
from safetensors.torch import load_file, save_file

from lr0fm.benchmark.sweep import BenchmarkModel
from lr0fm.cli import main as cli_main
from lr0fm.lrtk0 import LRTokens, TowerError, load_lr_tokens, read_lr_tokens_config, save_lr_tokens
from lr0fm.lrtk0.data import LRTK0DataModule
from lr0fm.lrtk0.loss import robust_sam_loss
from lr0fm.lrtk0.module import LRTK0Module
from lr0fm.lrtk0.robust_sam import RobustSAM
from lr0fm.lrtk0.vpt import VisualPromptTokens
from lr0fm.models import load_backbone

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WIDTH = 32
#: a tiny open_clip CLIP: 32 px, patch 8 (grid 4x4), width 32, 2 vision blocks
TINY_ARCH = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": WIDTH, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "lrtk0"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def arch(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("arch") / "tiny-robust-sam-vit.json"
    path.write_text(json.dumps(TINY_ARCH))
    return str(path)


def open_clip_tower(**kwargs) -> VisionTransformer:
    torch.manual_seed(0)
    options = dict(image_size=32, patch_size=8, width=WIDTH, layers=2, heads=2, mlp_ratio=2.0, output_dim=16)
    return VisionTransformer(**{**options, **kwargs}).eval()


def eva_tower() -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model(
        "eva02_tiny_patch14_224", pretrained=False, img_size=56, embed_dim=WIDTH, depth=2, num_heads=2,
        num_classes=0, global_pool="token",
    ).eval()  # fmt: skip


def data(num: int = 16, batch_size: int = 4) -> LRTK0DataModule:
    return LRTK0DataModule(f"toy:{num}", buckets=[[8, 12], [12, 20]], batch_size=batch_size, val_images=0)


def make_module(arch: str, **kwargs) -> LRTK0Module:
    torch.manual_seed(0)
    return LRTK0Module(backbone=arch, method="robust_sam", lr=1e-3, weight_decay=0.0, **kwargs)


# -- the parts on the tower ----------------------------------------------------------------------------


@pytest.mark.parametrize("make_tower", [open_clip_tower, eva_tower], ids=["open_clip", "timm-eva"])
def test_parts_change_the_embedding_only_while_attached_and_on(make_tower) -> None:
    tower = make_tower()
    size = 32 if make_tower is open_clip_tower else 56
    x = torch.randn(3, 3, size, size)
    with torch.no_grad():
        reference = tower(x)
        robust = RobustSAM(tower)
        on = tower(x)
        with robust.disabled():
            off = tower(x)
        robust.detach()
        detached = tower(x)
        robust.attach()
        again = tower(x)
    assert torch.equal(off, reference) and torch.equal(detached, reference)
    assert not torch.allclose(on, reference, atol=1e-3)
    torch.testing.assert_close(again, on)


def test_eva_forward_is_the_authors_robust_token_and_head() -> None:
    # EVAVisionTransformer_Robust_SAM: proj(robust_mlp(token_block(norm(x)[:, 0]))) with the class token replaced
    tower, x = eva_tower(), torch.randn(2, 3, 56, 56)
    robust = RobustSAM(tower)
    with torch.no_grad():
        robust.robust_token.normal_()
        with robust.recording() as record:
            got = tower(x)
        robust.detach()
        replaced = copy.deepcopy(tower)
        replaced.cls_token.copy_(robust.robust_token.view(1, 1, -1))
        tokens = replaced.forward_features(x)  # after the final norm
        want = robust.token_head(tokens[:, 0])
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(record["last"], tokens[:, 1:])  # what the last feature block reads
    assert record["first"].shape == (2, 16, WIDTH)


def test_robust_features_have_the_authors_shapes_and_clear_path() -> None:
    tower, x = open_clip_tower(), torch.randn(2, 3, 32, 32)
    robust = RobustSAM(tower)
    with robust.recording() as record:
        tower(x)
    degraded = robust.robust_features(record, clear=False)
    clear = robust.robust_features(record, clear=True)
    assert degraded.shape == clear.shape == (2, WIDTH // 8, 16, 16)  # width/8 channels at 4x the 4x4 grid
    grid = record["first"].transpose(1, 2).reshape(2, WIDTH, 4, 4)
    last = record["last"].transpose(1, 2).reshape(2, WIDTH, 4, 4)
    by_hand = robust.first_features.upsample_layer(grid) + robust.last_features.upsample_layer(last)
    torch.testing.assert_close(clear, by_hand)  # clear=True: only the transposed convs run
    assert not torch.allclose(degraded, clear)
    with pytest.raises(ValueError, match="nothing was recorded"):
        robust.robust_features({}, clear=True)


def test_unsupported_towers_are_clear_errors() -> None:
    with pytest.raises(TowerError, match="pool_type='avg'"):
        RobustSAM(open_clip_tower(pool_type="avg"))
    siglip = timm.create_model(
        "vit_base_patch16_siglip_224", pretrained=False, img_size=32, embed_dim=WIDTH, depth=2, num_heads=2,
        num_classes=0,
    )  # fmt: skip
    with pytest.raises(TowerError, match="no class token"):
        RobustSAM(siglip)
    with pytest.raises(TowerError, match="multiple of 8"):
        RobustSAM(open_clip_tower(width=36, heads=2))


def test_robust_sam_loss_follows_train_one_epoch_lr19() -> None:
    torch.manual_seed(0)
    teacher = F.normalize(torch.randn(4, 8), dim=-1)
    student = F.normalize(torch.randn(3, 4, 8), dim=-1)
    t_feat, s_feat = torch.randn(4, 2, 5, 5), torch.randn(3, 4, 2, 5, 5)
    loss, parts = robust_sam_loss(teacher, t_feat, student, s_feat)
    by_hand = 0.0
    for i in range(3):  # their loop over N_LR
        by_hand += ((s_feat[i] - t_feat) ** 2).mean() + ((student[i] - teacher) ** 2).sum(-1).mean()
    torch.testing.assert_close(loss, by_hand)
    mean, _ = robust_sam_loss(teacher, t_feat, student, s_feat, reduction="mean")
    torch.testing.assert_close(mean, by_hand / 3)
    cosine = (2 - 2 * (student * teacher).sum(-1)).mean()  # squared distance of unit vectors
    torch.testing.assert_close(parts["token"], cosine)
    zero, _ = robust_sam_loss(teacher, t_feat, teacher.expand(3, 4, 8), t_feat.expand(3, 4, 2, 5, 5))
    assert zero == 0


# -- training ----------------------------------------------------------------------------------------


def test_only_the_robust_parts_train_on_a_frozen_backbone(arch: str) -> None:
    module = make_module(arch)
    trainable = {name for name, p in module.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith("tokens.") for name in trainable)  # no temperature either
    assert {"tokens.robust_token", "tokens.first_features.conv_layer.weight"} <= trainable
    torch.manual_seed(0)
    batch = {"hr": torch.randn(4, 3, 32, 32), "lr": torch.randn(4, 2, 3, 32, 32), "index": torch.arange(4)}
    module.train()
    loss = module.training_step(batch, 0)
    loss.backward()
    for name, param in module.named_parameters():
        if param.requires_grad:
            assert param.grad is not None and param.grad.abs().sum() > 0, name
        else:
            assert param.grad is None, name
    with pytest.raises(ValueError, match="model.teacher_cache: false.*model.hr_cosine_weight: 0"):
        make_module(arch, teacher_cache=True, hr_cosine_weight=1.0)
    with pytest.raises(ValueError, match="model.finetune: null"):
        make_module(arch, finetune="paper-text")


def test_trains_checkpoints_resumes_and_exports(arch: str, tmp_path: Path) -> None:
    def run(root: Path, kill: int | None = None, ckpt_path: str | None = None) -> LRTK0Module:
        L.seed_everything(0)
        module = make_module(arch, warmup_steps=1)
        callbacks = [ModelCheckpoint(dirpath=root / "ckpt", save_last=True)] + ([KillAt(kill)] if kill else [])
        make_trainer(root, max_epochs=2, callbacks=callbacks, logger=False).fit(module, data(), ckpt_path=ckpt_path)
        return module

    reference = run(tmp_path / "full")
    with pytest.raises(Killed):
        run(tmp_path / "killed", kill=6)  # 4 steps per epoch: killed during epoch 2
    state = torch.load(tmp_path / "killed" / "ckpt" / "last.ckpt", weights_only=True)
    kept = set(state["state_dict"])
    assert "tokens.robust_token" in kept and "tokens.first_features.selective.BN.running_mean" in kept
    assert not any(name.startswith("backbone.") for name in kept)  # the frozen backbone is rebuilt from its spec
    resumed = run(tmp_path / "killed", ckpt_path="last")
    torch.testing.assert_close(resumed.tokens.state_dict(), reference.tokens.state_dict())  # BN statistics too
    initial = make_module(arch).tokens.state_dict()
    assert not torch.equal(resumed.tokens.robust_token, initial["robust_token"])

    # the fit-end export and the export of the kept checkpoint hold the inference parts, named robust_sam
    fit_export = tmp_path / "killed" / "lr_tokens.safetensors"
    assert fit_export.is_file()
    export = tmp_path / "robust.safetensors"
    assert cli_main(["export-tokens", str(tmp_path / "killed" / "ckpt" / "last.ckpt"), "-o", str(export)]) == 0
    config = read_lr_tokens_config(export)
    assert config["method"] == "robust_sam" and config["version"] == 2
    tensors = load_file(export)
    assert "robust_token" in tensors and not any(k.startswith(("first_features", "last_features")) for k in tensors)
    for name, tensor in load_file(fit_export).items():
        torch.testing.assert_close(tensor, tensors[name])

    # the benchmark's --lr_tokens path applies them: the same embeddings as the trained module, not vanilla ones
    backbone = BenchmarkModel(arch, None, str(export)).load()
    assert isinstance(backbone.lr_tokens, RobustSAM) and backbone.lr_tokens.first_features is None
    vanilla = load_backbone(arch).eval()
    images = torch.randn(3, 3, 32, 32)
    resumed.eval()
    with torch.no_grad():
        torch.testing.assert_close(backbone.encode_image(images), resumed.backbone.encode_image(images))
        assert not torch.allclose(backbone.encode_image(images), vanilla.encode_image(images), atol=1e-3)


def test_robust_sam_and_vpt_exports_score_in_the_benchmark_cli(arch: str, tmp_path: Path) -> None:
    backbone = load_backbone(arch)
    torch.manual_seed(1)
    exports = [
        save_lr_tokens(tmp_path / "r" / "lr_tokens.safetensors", RobustSAM(backbone), arch),
        save_lr_tokens(tmp_path / "v" / "lr_tokens.safetensors", VisualPromptTokens(backbone, num_prompts=3), arch),
    ]
    out = tmp_path / "bench"
    common = ["benchmark", "--model", arch, "--dataset", "toy-color", "--resolutions", "8", "hr", "--output",
              str(out), "--accelerator", "cpu", "--workers", "0", "--batch_size", "64", "--seed", "0"]  # fmt: skip
    assert cli_main(common) == 0
    for path in exports:
        assert cli_main([*common, "--lr_tokens", str(path)]) == 0
    with (out / "results.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    top1: dict[str, dict[str, str]] = {}
    for row in rows:
        top1.setdefault(row["model"], {})[row["resolution"]] = row["top1"]
    labels = [arch] + [BenchmarkModel(arch, None, str(path)).label for path in exports]
    assert sorted(top1) == sorted(labels)  # vanilla and both exports, told apart by their content hash
    # random RobustSAM parts replace the pooled feature by an MLP of it: the scores move
    assert top1[labels[1]] != top1[arch]


def test_exports_name_their_method_and_refuse_another(arch: str, tmp_path: Path) -> None:
    backbone = load_backbone(arch)
    vpt = save_lr_tokens(tmp_path / "vpt.safetensors", VisualPromptTokens(backbone, num_prompts=2), arch)
    assert read_lr_tokens_config(vpt)["method"] == "vpt"
    fresh = load_backbone(arch)
    loaded = load_lr_tokens(vpt, fresh)
    assert isinstance(loaded, VisualPromptTokens) and loaded.num_prompts == 2
    with pytest.raises(ValueError, match="holds 'vpt' parts.*not 'lr_tokens'"):
        load_lr_tokens(vpt, load_backbone(arch), method="lr_tokens")
    # a header that claims RobustSAM over LR-token tensors: refused by tensor names, not loaded
    config = read_lr_tokens_config(save_lr_tokens(tmp_path / "lr.safetensors", LRTokens(backbone), arch))
    tensors = load_file(tmp_path / "lr.safetensors")
    forged = tmp_path / "forged.safetensors"
    robust_config = {**config, "method": "robust_sam", "init": "trunc_normal", "std": 0.02}
    save_file(tensors, str(forged), metadata={"lr0fm_lr_tokens": json.dumps(robust_config)})
    with pytest.raises(TowerError, match="robust_sam parts in .* have tensors .*block_tokens"):
        load_lr_tokens(forged, load_backbone(arch))
    unknown = tmp_path / "unknown.safetensors"
    save_file(tensors, str(unknown), metadata={"lr0fm_lr_tokens": json.dumps({**config, "method": "lora"})})
    with pytest.raises(ValueError, match="method 'lora'.*lr_tokens, vpt, robust_sam"):
        read_lr_tokens_config(unknown)
    # version-1 files (no method key, e.g. the shipped toy tokens) are LR tokens
    old = tmp_path / "v1.safetensors"
    v1 = {k: v for k, v in config.items() if k != "method"} | {"version": 1}
    save_file(tensors, str(old), metadata={"lr0fm_lr_tokens": json.dumps(v1)})
    assert isinstance(load_lr_tokens(old, load_backbone(arch), method="lr_tokens"), LRTokens)


def test_vpt_run_exports_at_fit_end_and_from_its_checkpoint(arch: str, tmp_path: Path) -> None:
    L.seed_everything(0)
    module = LRTK0Module(backbone=arch, method="vpt", num_prompts=3, lr=5e-3, weight_decay=0.0)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    make_trainer(tmp_path, max_epochs=1, callbacks=[checkpoint], logger=False).fit(module, data(num=8))
    fit_export = tmp_path / "lr_tokens.safetensors"
    export = tmp_path / "vpt.safetensors"
    assert cli_main(["export-tokens", str(tmp_path / "ckpt" / "last.ckpt"), "-o", str(export)]) == 0
    for path in (fit_export, export):
        backbone = BenchmarkModel(arch, None, str(path)).load()
        images = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(backbone.encode_image(images), module.backbone.encode_image(images))


@pytest.mark.parametrize("base", ["toy", "eva02_b16", "metaclip_b16", "openclip_b16"])
def test_config_composes_with_the_toy_and_paper_configs(capsys, base: str) -> None:
    args = ["fit", "--config", base, "--config", "ablations/robust_sam", "--print_config"]
    assert cli_main(args) == 0
    model = yaml.safe_load(capsys.readouterr().out)["model"]
    assert model["method"] == "robust_sam" and model["loss_reduction"] == "sum"
    assert not model["teacher_cache"] and model["hr_cosine_weight"] == 0.0 and model["finetune"] is None
    if base == "toy":  # toyclip is shipped: the composed config builds the module
        accepted = {k: v for k, v in model.items() if k in LRTK0Module.__init__.__code__.co_varnames}
        module = LRTK0Module(**accepted)
        assert isinstance(module.tokens, RobustSAM) and module.tokens.layout.width == 128
