"""LR-TK0 training: loss, multi-scale data, LightningModule, resume, export, benchmark callback (CPU, offline)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tarfile
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from lrtk0_fixtures import KillAt, Killed, make_trainer
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torchvision import transforms

from lr0fm.benchmark.callback import ZeroShotBenchmark
from lr0fm.cli import main as cli_main
from lr0fm.datasets import DatasetError
from lr0fm.lrtk0 import load_lr_tokens
from lr0fm.lrtk0.data import (
    EpochBatchSampler,
    LRTK0DataModule,
    LRViewsDataset,
    RandomCropTransform,
    build_hr_images,
    draw_lr_sizes,
    square_lr_view,
)
from lr0fm.lrtk0.loss import distillation_loss, symmetric_info_nce
from lr0fm.lrtk0.module import LRTK0Module
from lr0fm.lrtk0.schedule import warmup_cosine
from lr0fm.models import load_backbone

os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: a tiny open_clip CLIP: 32 px, patch 8 (16 spatial tokens), width 32, 2 vision blocks
TINY_ARCH = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
BUCKETS = [[8, 12], [12, 20]]  # half-open: n in 8..11 and 12..19


def write_tiny_arch(folder: Path) -> str:
    """Write the tiny architecture JSON and return its backbone spec (random weights)."""
    path = folder / "tiny-lrtk0-vit.json"
    path.write_text(json.dumps(TINY_ARCH))
    return str(path)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models on 2 shared cores: one intra-op thread avoids heavy oversubscription slow-downs."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def arch(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_tiny_arch(tmp_path_factory.mktemp("arch"))


def make_module(arch: str, **kwargs) -> LRTK0Module:
    torch.manual_seed(0)
    return LRTK0Module(backbone=arch, lr=5e-3, weight_decay=0.0, **kwargs)


def data(num: int = 24, batch_size: int = 4, val_images: int = 0, **kwargs) -> LRTK0DataModule:
    return LRTK0DataModule(f"toy:{num}", buckets=BUCKETS, batch_size=batch_size, val_images=val_images, **kwargs)


# -- loss --------------------------------------------------------------------------------------------


def test_symmetric_info_nce_matches_clip_definition() -> None:
    torch.manual_seed(0)
    a, b = F.normalize(torch.randn(6, 8), dim=-1), F.normalize(torch.randn(6, 8), dim=-1)
    scale = torch.tensor(14.3)
    logits = scale * a @ b.t()
    by_hand = -(logits.log_softmax(1).diag().mean() + logits.log_softmax(0).diag().mean()) / 2
    torch.testing.assert_close(symmetric_info_nce(a, b, scale), by_hand)
    views = torch.stack([b, a, b])  # student HR == teacher: view 0 has the matching-pair minimum
    per_view = [symmetric_info_nce(v, b, scale) for v in views]
    loss, parts = distillation_loss(b, views, scale, hr_cosine_weight=2.0)  # default: the authors' sum
    torch.testing.assert_close(parts["cosine"], torch.tensor(0.0), atol=1e-6, rtol=0)
    torch.testing.assert_close(loss, per_view[0] + per_view[1] + per_view[2])
    mean, _ = distillation_loss(b, views, scale, reduction="mean")
    torch.testing.assert_close(mean, loss / 3)
    assert parts["hr"] < parts["lr"]


def test_distillation_loss_on_a_hand_computed_example() -> None:
    # two images, one LR view, 2-d embeddings: teacher e1, e2; student HR = teacher; student LR = e2, e1
    teacher = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    student = torch.stack([teacher, teacher.flip(0)])
    scale = torch.tensor(2.0)
    # HR view: logits [[2, 0], [0, 2]] -> each row/column CE = log(1 + e^-2); LR view: [[0, 2], [2, 0]] -> log(1 + e^2)
    expected = math.log(1 + math.exp(-2)) + math.log(1 + math.exp(2))
    loss, parts = distillation_loss(teacher, student, scale)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert parts["hr"].item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)


def test_warmup_cosine_schedule() -> None:
    values = [warmup_cosine(s, 4, 20, 0.1) for s in range(21)]
    assert values[:4] == [0.25, 0.5, 0.75, 1.0] and values[4] == 1.0
    assert values[-1] == pytest.approx(0.1) and all(x >= y for x, y in zip(values[4:], values[5:]))


# -- data --------------------------------------------------------------------------------------------


class NonSquareImages:
    """Two non-square RGB images (48x40 and 40x56), caption ids 0 and 0."""

    captions = ["a caption"]

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        sizes = ((48, 40), (40, 56))
        self.images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]

    def __len__(self) -> int:
        return 2

    def image(self, index: int) -> Image.Image:
        return self.images[index]

    def caption_id(self, index: int) -> int:
        return 0


def test_lr_views_are_the_authors_square_chain_and_come_from_half_open_buckets() -> None:
    images = NonSquareImages()
    to_tensor = transforms.Compose(
        [
            transforms.Resize(32, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(32),
            transforms.ToTensor(),
        ]
    )
    dataset = LRViewsDataset(images, to_tensor, BUCKETS, seed=3)
    first, again = dataset[(1, 1)], dataset[(1, 1)]
    assert first["hr"].shape == (3, 32, 32) and first["lr"].shape == (2, 3, 32, 32)
    assert torch.equal(first["lr"], again["lr"]) and first["index"] == 1
    # by hand, as LR_Robust_Dataset: img.resize((n, n)).resize((W, H)), then the transform
    image = images.image(1)
    for k, n in enumerate(draw_lr_sizes(BUCKETS, 3, 1, 1)):
        by_hand = to_tensor(image.resize((n, n), Image.BICUBIC).resize((40, 56), Image.BICUBIC))
        assert torch.equal(first["lr"][k], by_hand)
    assert torch.equal(first["hr"], to_tensor(image))
    sizes = [draw_lr_sizes(BUCKETS, 3, epoch, 5) for epoch in range(200)]
    assert {a for a, _ in sizes} == set(range(8, 12)) and {b for _, b in sizes} == set(range(12, 20))
    assert not torch.equal(first["lr"][0], first["hr"])  # the LR view lost detail


def test_random_crops_are_drawn_per_view_from_the_item_seed() -> None:
    images = NonSquareImages()
    crop = RandomCropTransform(32, (0.9, 1.0), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    dataset = LRViewsDataset(images, None, BUCKETS, seed=3, crop=crop)
    item, again, other_epoch = dataset[(0, 0)], dataset[(0, 0)], dataset[(1, 0)]
    assert torch.equal(item["hr"], again["hr"]) and torch.equal(item["lr"], again["lr"])
    assert not torch.equal(item["hr"], other_epoch["hr"])
    # by hand: torchvision's RandomResizedCrop under the view's seed, then ToTensor and Normalize
    seeds = np.random.default_rng((3, 0, 0, 1)).integers(0, 2**62, 3)
    views = [images.image(0)] + [square_lr_view(images.image(0), n) for n in draw_lr_sizes(BUCKETS, 3, 0, 0)]
    for k, (view, seed) in enumerate(zip(views, seeds)):
        torch.manual_seed(int(seed))
        bicubic = transforms.InterpolationMode.BICUBIC
        ref = transforms.RandomResizedCrop(32, scale=(0.9, 1.0), interpolation=bicubic)(view)
        ref = transforms.Normalize([0.5] * 3, [0.25] * 3)(transforms.ToTensor()(ref))
        assert torch.equal(item["hr"] if k == 0 else item["lr"][k - 1], ref)
    assert len(set(seeds.tolist())) == 3  # each view its own crop


def test_same_caption_sampler_puts_whole_groups_of_one_caption_in_a_batch() -> None:
    # 5 captions with 6, 4, 9, 3, 8 images: groups of 4 -> 1, 1, 2, 0, 2 groups (remainders left out)
    counts = [6, 4, 9, 3, 8]
    captions = [c for c, n in enumerate(counts) for _ in range(n)]
    single = EpochBatchSampler(len(captions), 8, seed=1, captions=captions, caption_group=4)
    assert len(single) == 24  # 6 groups = 24 images = 3 batches of 8
    order = [position for _, position in single]
    assert len(order) == len(set(order)) == 24
    for start in range(0, 24, 4):  # consecutive runs of 4 share a caption
        assert len({captions[p] for p in order[start : start + 4]}) == 1
    assert sum(1 for p in order if captions[p] == 3) == 0
    ranks = [EpochBatchSampler(len(captions), 4, r, 2, seed=1, captions=captions, caption_group=4) for r in range(2)]
    split = [[p for _, p in s] for s in ranks]
    for step in range(3):
        shards = split[0][4 * step : 4 * step + 4] + split[1][4 * step : 4 * step + 4]
        assert set(order[8 * step : 8 * step + 8]) == set(shards)
    single.set_epoch(1)
    assert [p for _, p in single] != order
    with pytest.raises(DatasetError, match="multiple of data.caption_group=4"):
        EpochBatchSampler(len(captions), 6, captions=captions, caption_group=4)


def test_sampler_rank_slices_rebuild_the_single_process_batches() -> None:
    single = EpochBatchSampler(50, 8, seed=1)
    ranks = [EpochBatchSampler(50, 4, rank=r, world_size=2, seed=1) for r in range(2)]
    for sampler in [single, *ranks]:
        sampler.set_epoch(2)
    one = list(single)
    split = [list(s) for s in ranks]
    assert len(one) == 48 and all(len(s) == 24 for s in split)  # 6 full global batches of 8
    for step in range(6):
        shards = split[0][4 * step : 4 * step + 4] + split[1][4 * step : 4 * step + 4]
        assert set(one[8 * step : 8 * step + 8]) == set(shards)
    single.set_epoch(3)
    assert list(single) != one
    with pytest.raises(DatasetError, match="cannot fill one global batch"):
        EpochBatchSampler(5, 4, world_size=2)


def write_synth_layout(root: Path, captions: int = 3, per_caption: int = 3) -> None:
    rng = np.random.default_rng(0)
    with (root / "captions.tsv").open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["caption_id", "source_line", "caption"])
        for cid in range(captions):
            writer.writerow([cid, 10 + cid, f"caption number {cid}"])
    for cid in range(captions):
        folder = root / "images" / f"{cid:05d}"
        folder.mkdir(parents=True)
        for idx in range(per_caption):
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / f"{idx:03d}.jpg")


def test_folder_and_webdataset_sources(tmp_path: Path) -> None:
    write_synth_layout(tmp_path)
    images = build_hr_images(f"folder:{tmp_path}", images_per_caption=2)
    assert len(images) == 6 and images.captions == [f"caption number {c}" for c in range(3)]
    assert [images.caption_id(i) for i in range(6)] == [0, 0, 1, 1, 2, 2]
    assert images.image(3).size == (48, 40)
    shard = tmp_path / "shards" / "synth-00000.tar"
    shard.parent.mkdir()
    with tarfile.open(shard, "w") as tar:
        for cid in range(2):
            for idx in range(2):
                key = f"{cid:05d}_{idx:03d}"
                for suffix, payload in (
                    ("jpg", (tmp_path / "images" / f"{cid:05d}" / f"{idx:03d}.jpg").read_bytes()),
                    ("txt", f"caption number {cid}".encode()),
                ):
                    info = tarfile.TarInfo(f"{key}.{suffix}")
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
    shards = build_hr_images(f"wds:{shard.parent}")
    assert len(shards) == 4 and shards.captions == ["caption number 0", "caption number 1"]
    assert np.array_equal(np.asarray(shards.image(2)), np.asarray(images.image(2)))
    assert [shards.caption_id(i) for i in range(4)] == [0, 0, 1, 1]


def test_bad_sources_name_the_expected_layout(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="toy:N"):
        build_hr_images("toy:zero")
    missing = r"folder .*missing' \(data.source\) does not exist.*folder:..., wds:..., toy"
    with pytest.raises(DatasetError, match=missing):
        build_hr_images(str(tmp_path / "missing"))
    with pytest.raises(DatasetError, match="neither an existing folder nor one of the forms folder:..., wds:..., toy"):
        build_hr_images("nosuchscheme")
    with pytest.raises(DatasetError, match="no image"):
        build_hr_images(f"folder:{tmp_path}")
    with pytest.raises(DatasetError, match=r"\*\.tar"):
        build_hr_images(f"wds:{tmp_path}")
    with pytest.raises(ValueError, match="bad LR bucket"):
        LRTK0DataModule(buckets=[[32, 16]])


# -- module ------------------------------------------------------------------------------------------


def test_one_student_forward_no_frozen_gradients_and_teacher_without_grad(arch: str) -> None:
    module = make_module(arch, token_init="zeros")
    module.train()
    assert {n for n, p in module.named_parameters() if p.requires_grad} == {
        "logit_scale",
        "tokens.block_tokens",
        "tokens.embed_token",
    }
    assert not any(m.training for m in module.backbone.modules())
    calls: list[tuple[int, bool]] = []
    module.backbone.visual.register_forward_hook(lambda m, a, out: calls.append((a[0].shape[0], out.requires_grad)))
    hr, lr = torch.randn(4, 3, 32, 32), torch.randn(4, 2, 3, 32, 32)
    batch = {"hr": hr, "lr": lr, "index": torch.arange(4), "caption": torch.zeros(4, dtype=torch.long)}
    module.log = lambda *args, **kwargs: None  # no trainer attached
    loss = module.training_step(batch, 0)
    assert calls == [(4, False), (12, True)]  # teacher: HR only, no graph; student: one HR + 2 LR forward
    loss.backward()
    assert all(p.grad is None for n, p in module.backbone.named_parameters() if not n.startswith("tokens"))
    assert module.tokens.block_tokens.grad.abs().sum() > 0
    with torch.no_grad():  # zero tokens: the student computes exactly the teacher
        torch.testing.assert_close(module.embed_student(hr), module.embed_teacher(hr))


def test_teacher_cache_gives_the_same_training(arch: str, tmp_path: Path) -> None:
    results = []
    for cache in (False, True):
        L.seed_everything(0)
        module = make_module(arch, teacher_cache=cache)
        make_trainer(tmp_path / str(cache), max_epochs=2, logger=False, enable_checkpointing=False).fit(module, data())
        results.append(module.tokens.block_tokens.detach().clone())
        assert len(module._teacher_cache) == (24 if cache else 0)
    torch.testing.assert_close(results[0], results[1])


def test_baselines_train_the_right_parameters(arch: str) -> None:
    vpt = make_module(arch, method="vpt", num_prompts=3)
    assert {n for n, p in vpt.named_parameters() if p.requires_grad} == {"logit_scale", "tokens.prompts"}
    unfrozen = make_module(arch, method="none", finetune="paper-text", unfreeze_last_blocks=1)
    trainable = [n for n, p in unfrozen.named_parameters() if p.requires_grad]
    assert unfrozen.tokens is None and unfrozen.teacher is not None
    assert trainable and all(n == "logit_scale" or "resblocks.1." in n for n in trainable)
    assert {scale for _, _, scale in unfrozen.unfrozen} == {0.01}
    with pytest.raises(ValueError, match="trains nothing"):
        make_module(arch, method="none")
    with pytest.raises(ValueError, match="unknown finetune 'all'"):
        make_module(arch, finetune="all")
    with pytest.raises(ValueError, match="unknown LR-TK0 method 'prompt'"):
        make_module(arch, method="prompt")


def test_teacher_precision_clamp_and_cache_checks(arch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.randn(2, 3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert make_module(arch, teacher_fp32=True).embed_teacher(x).dtype == torch.float32
        assert make_module(arch).embed_teacher(x).dtype == torch.bfloat16
    seen = []

    def capture(teacher, student, scale, **kwargs):
        seen.append(scale)
        return scale * 0, {}

    monkeypatch.setattr("lr0fm.lrtk0.module.distillation_loss", capture)
    batch = {"hr": x, "lr": x[:, None], "index": torch.arange(2), "caption": torch.zeros(2, dtype=torch.long)}
    for max_scale, expected in ((None, 500.0), (100.0, 100.0)):
        module = make_module(arch, init_temperature=1 / 500, max_logit_scale=max_scale)
        module.log = lambda *args, **kwargs: None
        module.training_step(batch, 0)
        assert seen.pop().item() == pytest.approx(expected)  # the authors never clamp their new scale
    module = make_module(arch, teacher_cache=True)
    trainer = make_trainer(Path("."), max_epochs=1, logger=False, enable_checkpointing=False)
    with pytest.raises(ValueError, match="teacher_cache.*crop_scale"):
        trainer.fit(module, data(crop_scale=[0.9, 1.0]))


def test_optimizer_groups_follow_the_authors_rates(arch: str) -> None:
    module = LRTK0Module(arch, lr=2e-4, head_lr=5e-4, optimizer="lamb", eps=1e-8, betas=(0.9, 0.98))
    module.trainer = type("T", (), {"estimated_stepping_batches": 10})()
    optimizer = module.configure_optimizers()["optimizer"]
    rates = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert rates[id(module.tokens.block_tokens)] == 2e-4 and rates[id(module.logit_scale)] == 5e-4
    assert optimizer.defaults["eps"] == 1e-8 and optimizer.defaults["betas"] == (0.9, 0.98)
    authors = LRTK0Module(arch, method="none", finetune="authors-code", lr=1e-3)
    authors.trainer = module.trainer
    groups = authors.configure_optimizers()["optimizer"].param_groups
    assert {round(g["lr"] / 1e-3, 6) for g in groups} >= {round(0.75**3, 6), 0.75, 1.0}


def test_resume_after_kill_reaches_the_uninterrupted_result(arch: str, tmp_path: Path) -> None:
    def run(root: Path, kill: int | None = None, ckpt_path: str | None = None) -> LRTK0Module:
        L.seed_everything(0)
        module = make_module(arch, warmup_steps=2)
        checkpoint = ModelCheckpoint(dirpath=root / "ckpt", save_last=True)
        callbacks = [checkpoint] + ([KillAt(kill)] if kill is not None else [])
        make_trainer(root, max_epochs=3, callbacks=callbacks, logger=False).fit(module, data(), ckpt_path=ckpt_path)
        return module

    reference = run(tmp_path / "full")
    with pytest.raises(Killed):
        run(tmp_path / "killed", kill=8)  # 6 steps per epoch: killed during epoch 2
    state = torch.load(tmp_path / "killed" / "ckpt" / "last.ckpt", weights_only=False)
    assert set(state["state_dict"]) == {"logit_scale", "tokens.block_tokens", "tokens.embed_token"}
    resumed = run(tmp_path / "killed", ckpt_path="last")
    torch.testing.assert_close(resumed.tokens.state_dict(), reference.tokens.state_dict())
    torch.testing.assert_close(resumed.logit_scale, reference.logit_scale)

    # the tokens of any kept checkpoint can be exported afterwards and load onto a fresh backbone
    last, export = tmp_path / "killed" / "ckpt" / "last.ckpt", tmp_path / "t.safetensors"
    assert cli_main(["export-tokens", str(last), "-o", str(export)]) == 0
    backbone = load_backbone(arch)
    tokens = load_lr_tokens(export, backbone)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(backbone.encode_image(images), resumed.backbone.encode_image(images))
    # the loaded tokens are a child of the backbone: moving it (a Trainer, .cuda()) moves them too
    backbone.to(torch.float64)
    assert tokens.block_tokens.dtype == torch.float64
    with torch.no_grad():
        torch.testing.assert_close(
            backbone.encode_image(images.double()).float(), resumed.backbone.encode_image(images), atol=1e-5, rtol=1e-4
        )


def test_export_tokens_rejects_what_is_not_a_tokens_checkpoint(arch: str, tmp_path: Path, capsys) -> None:
    assert cli_main(["export-tokens", str(tmp_path / "missing.ckpt")]) == 2
    assert "missing.ckpt' does not exist" in capsys.readouterr().err
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    assert cli_main(["export-tokens", str(tmp_path / "other.ckpt")]) == 2
    assert "not an LR-TK0 checkpoint" in capsys.readouterr().err
    # fine-tuned weights without tokens have no tokens-only export (VPT and RobustSAM runs do export:
    # tests/test_lrtk0_robust_sam.py)
    hparams = {"backbone": arch, "method": "none", "finetune": "paper-text"}
    torch.save({"state_dict": {}, "hyper_parameters": hparams}, tmp_path / "none.ckpt")
    assert cli_main(["export-tokens", str(tmp_path / "none.ckpt")]) == 2
    assert "method='none'" in capsys.readouterr().err
    # a VPT checkpoint that lacks its prompts is refused by name
    torch.save({"state_dict": {}, "hyper_parameters": {"backbone": arch, "method": "vpt"}}, tmp_path / "vpt.ckpt")
    assert cli_main(["export-tokens", str(tmp_path / "vpt.ckpt")]) == 2
    err = capsys.readouterr().err
    assert "lacks the trainable tensors" in err and "tokens.prompts" in err


def test_fit_exports_tokens_and_logs_benchmark_scalars(arch: str, tmp_path: Path) -> None:
    L.seed_everything(0)
    module = make_module(arch)
    benchmark = ZeroShotBenchmark(["toy-texture", "toy-color"], resolutions=[8, 16], max_samples=12, batch_size=12)
    trainer = make_trainer(tmp_path, max_epochs=1, callbacks=[benchmark], enable_checkpointing=False)
    trainer.fit(module, data(val_images=8))
    export = Path(trainer.log_dir) / "lr_tokens.safetensors"
    backbone = load_backbone(arch)
    tokens = load_lr_tokens(export, backbone)
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(backbone.encode_image(images), module.backbone.encode_image(images))
        tokens.detach()
        assert not torch.allclose(backbone.encode_image(images), module.backbone.encode_image(images))
    events = EventAccumulator(str(trainer.log_dir)).Reload()
    scalars = set(events.Tags()["scalars"])
    for res in ("8", "16", "hr"):
        assert {f"val/acc_{res}", f"val/sar_{res}", f"val/war_{res}"} <= scalars
    assert {"train/loss", "train/loss_lr", "val/loss"} <= scalars
    acc = events.Scalars("val/acc_hr")[0].value
    assert 0.0 <= acc <= 1.0  # fractions, as results.csv
    with pytest.raises(ValueError, match="at least one dataset"):
        ZeroShotBenchmark([])


def test_caption_classifier_variant_trains_on_caption_ids(arch: str, tmp_path: Path) -> None:
    L.seed_everything(0)
    module = make_module(arch, caption_loss_weight=1.0)
    trainer = make_trainer(tmp_path, max_epochs=1, logger=False, enable_checkpointing=False)
    datamodule = data()
    trainer.fit(module, datamodule)
    assert module.caption_head.weight.shape == (len(datamodule.captions), 32)  # a linear head on the embedding
    assert module.caption_head.weight.requires_grad
    caption_loss = trainer.callback_metrics["train/loss_caption"]
    assert torch.isfinite(caption_loss) and caption_loss > 0


class _Payload:
    """Unpickling this runs ``Path.touch`` on a marker file: what a crafted checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_export_tokens_refuses_a_crafted_pickle_without_running_it(tmp_path: Path, capsys) -> None:
    marker = tmp_path / "pwned"
    torch.save({"state_dict": {}, "hyper_parameters": {"backbone": _Payload(marker)}}, tmp_path / "evil.ckpt")
    assert cli_main(["export-tokens", str(tmp_path / "evil.ckpt")]) == 2
    assert "refuses to unpickle" in capsys.readouterr().err
    assert not marker.exists()
