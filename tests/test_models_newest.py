"""The newest open_clip families (SigLIP 2, MetaCLIP 2, PE-Core, MobileCLIP2, DFN) and the lr0fm-plus table.

Nothing is downloaded: each family's model is its own open_clip config scaled down (2 blocks, narrow towers;
timm trunks shrunk through ``timm.create_model`` keyword overrides), with random weights saved as the
pretrained tag's checkpoint and served in place of the download, so the real tag path runs -- its
preprocessing, its tokenizer (hub tokenizers replaced by a recording stand-in) and its QuickGELU flag.
"""

from __future__ import annotations

import copy
import csv
import os
from dataclasses import asdict

import open_clip
import pytest
import timm
import torch
from open_clip.tokenizer import SimpleTokenizer
from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict
from PIL import Image

from lr0fm.lrtk0 import LRTokens, TowerError, tower_layout
from lr0fm.models import check_spec, list_models, load_backbone
from lr0fm.models.groups import FAMILY_GROUPS, family_of, family_pairs
from lr0fm.models.paper_backbones import DEFAULT_PAPER_CONFIG, PLUS_PAPER_CONFIG, read_paper_backbones

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SMALL_VOCAB = 1000
_create_timm = timm.create_model


class RecordingHFTokenizer:
    """Stands in for open_clip's ``HFTokenizer`` (whose files are on the hub): records what it was asked for."""

    def __init__(self, source: str, context_length: int = 77, **kwargs) -> None:
        self.source, self.context_length, self.kwargs = str(source), context_length, kwargs

    def __call__(self, texts, context_length: int | None = None) -> torch.Tensor:
        texts = [texts] if isinstance(texts, str) else texts
        length = context_length or self.context_length
        ids = [[1 + (ord(c) % (SMALL_VOCAB - 1)) for c in text][:length] for text in texts]
        return torch.tensor([row + [0] * (length - len(row)) for row in ids], dtype=torch.long)


def _small_timm(name: str, *args, **kwargs):
    """Two-block timm trunks; MobileCLIP2-B's conv stem fixes its width at 768, FastViT is kept whole."""
    if name.startswith("fastvit"):
        return _create_timm(name, *args, **kwargs)
    size = {"depth": 2} if "mci" in name else {"depth": 2, "embed_dim": 64, "num_heads": 2}
    return _create_timm(name, *args, **{**kwargs, **size})


def _small_config(arch: str) -> dict:
    cfg = copy.deepcopy(open_clip.get_model_config(arch))
    cfg["embed_dim"] = 64
    cfg["text_cfg"].update(width=64, heads=2, layers=2)
    if cfg["text_cfg"].get("hf_tokenizer_name"):
        cfg["text_cfg"]["vocab_size"] = SMALL_VOCAB
    if not cfg["vision_cfg"].get("timm_model_name"):
        cfg["vision_cfg"].update(width=64, layers=2, head_width=32)
    return cfg


@pytest.fixture
def fake_pretrained(monkeypatch, tmp_path):
    """``fake_pretrained(arch, tag)``: make ``ARCH:TAG`` load a small random model of the family offline."""

    def install(arch: str, tag: str) -> None:
        monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, arch, _small_config(arch))
        monkeypatch.setattr(timm, "create_model", _small_timm)
        monkeypatch.setattr(open_clip.factory, "HFTokenizer", RecordingHFTokenizer)
        torch.manual_seed(0)
        checkpoint = tmp_path / f"{arch}-{tag}.pt"
        torch.save(open_clip.create_model(arch).state_dict(), checkpoint)
        serve = lambda cfg, *a, **k: str(checkpoint)  # noqa: E731
        monkeypatch.setattr(open_clip, "download_pretrained", serve)
        monkeypatch.setattr(open_clip.factory, "download_pretrained", serve)

    return install


def _image() -> Image.Image:
    generator = torch.Generator().manual_seed(1)
    pixels = torch.randint(0, 256, (150, 230, 3), generator=generator, dtype=torch.uint8)
    return Image.fromarray(pixels.numpy())


def _expected_preprocess(arch: str, tag: str) -> PreprocessCfg:
    """open_clip's evaluation preprocessing of a pretrained tag, built from its pretrained cfg."""
    size = open_clip.get_model_config(arch)["vision_cfg"]["image_size"]
    return PreprocessCfg(
        **merge_preprocess_dict(asdict(PreprocessCfg(size=size)), open_clip.get_pretrained_cfg(arch, tag))
    )


#: One pair per family (plus MobileCLIP2's FastViT), the vision tower adapter it should get, and the tokenizer.
CASES = [
    ("ViT-B-16-SigLIP2-256", "webli", "timm", "timm/ViT-B-16-SigLIP2-256"),
    ("ViT-H-14-worldwide", "metaclip2_worldwide", "open_clip", "facebook/xlm-v-base"),
    ("PE-Core-B-16", "meta", "timm", None),
    ("MobileCLIP2-B", "dfndr2b", "timm", None),
    ("MobileCLIP2-S0", "dfndr2b", None, None),
    ("ViT-H-14", "dfn5b", "open_clip", None),
]


@pytest.mark.filterwarnings("ignore:QuickGELU mismatch")  # open_clip's own build of a dfn5b/metaclip2 tag
@pytest.mark.parametrize(("arch", "tag", "tower", "hf_tokenizer"), CASES, ids=[f"{a}:{t}" for a, t, _, _ in CASES])
def test_family_takes_its_preprocessing_tokenizer_and_lr_tokens(fake_pretrained, arch, tag, tower, hf_tokenizer):
    fake_pretrained(arch, tag)
    backbone = load_backbone(f"{arch}:{tag}")

    expected = _expected_preprocess(arch, tag)
    assert backbone.preprocess_cfg == expected  # size, mean/std, interpolation, resize mode of the tag
    _, _, open_clip_val = open_clip.create_model_and_transforms(arch, pretrained=tag)
    image = _image()
    reference = image_transform_v2(expected, is_train=False)(image)
    assert torch.equal(backbone.preprocess(image), reference)
    assert torch.equal(open_clip_val(image), reference)

    text_cfg = open_clip.get_model_config(arch)["text_cfg"]
    if hf_tokenizer:
        assert isinstance(backbone.tokenizer, RecordingHFTokenizer) and backbone.tokenizer.source == hf_tokenizer
        assert backbone.tokenizer.kwargs.get("clean") == text_cfg.get("tokenizer_kwargs", {}).get("clean")
    else:
        assert isinstance(backbone.tokenizer, SimpleTokenizer)
    assert backbone.tokenizer.context_length == text_cfg["context_length"]
    text = backbone.encode_text(backbone.tokenizer(["a photo of a red thing"]))
    assert text.shape == (1, 64) and torch.isfinite(text).all()

    if tower is None:  # MobileCLIP2-S*: a FastViT (MCi) tower is no ViT, so it takes no LR tokens
        with pytest.raises(TowerError, match="FastVit"):
            tower_layout(backbone)
        return
    size = backbone.image_size
    images = torch.stack([reference, reference.flip(-1)])
    with torch.no_grad():
        plain = backbone.encode_image(images)
    layout = tower_layout(backbone)
    assert layout.kind == tower and layout.num_blocks == 2
    assert layout.num_spatial_tokens == (size // 16 if "16" in arch or "MobileCLIP2-B" in arch else size // 14) ** 2
    tokens = LRTokens(backbone)
    with torch.no_grad():
        with_tokens = backbone.encode_image(images)
        with tokens.disabled():
            off = backbone.encode_image(images)
        tokens.detach()
        detached = backbone.encode_image(images)
    assert not torch.allclose(with_tokens, plain)
    assert torch.equal(off, plain) and torch.equal(detached, plain)


@pytest.mark.parametrize(("arch", "tag"), [("ViT-H-14", "dfn5b"), ("ViT-H-14-worldwide", "metaclip2_worldwide")])
def test_a_quickgelu_tag_on_a_gelu_architecture_runs_with_quickgelu(fake_pretrained, arch, tag):
    assert open_clip.get_pretrained_cfg(arch, tag)["quick_gelu"] and not open_clip.get_model_config(arch).get(
        "quick_gelu"
    )
    fake_pretrained(arch, tag)
    block = load_backbone(f"{arch}:{tag}").model.visual.transformer.resblocks[0]
    assert type(block.mlp.gelu).__name__ == "QuickGELU"


def test_two_resolution_benchmark_on_a_new_family(fake_pretrained, tmp_path, monkeypatch):
    import functools

    from lr0fm.cli import main
    from lr0fm.toy import datasets as toy_datasets

    fake_pretrained("PE-Core-B-16", "meta")
    monkeypatch.setattr(  # a few images per class: the 224 px model, not the data, is what is tested
        toy_datasets, "build_toy_dataset", functools.partial(toy_datasets.build_toy_dataset, num_per_class=3)
    )
    out = tmp_path / "out"
    argv = ["benchmark", "--model", "PE-Core-B/16", "--dataset", "toy-color", "--resolutions", "16", "hr"]
    assert main([*argv, "--workers", "0", "--batch_size", "16", "--output", str(out)]) == 0
    with open(out / "results.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["resolution"] for row in rows) == ["16", "hr"]
    assert {row["chain"] for row in rows} == {"paper-text"}  # open_clip's own transform after the n x n step
    assert all(0.0 <= float(row["top1"]) <= 100.0 for row in rows)


def test_every_pretrained_pair_of_the_new_families_resolves():
    pairs = {group: family_pairs(group, open_clip.list_pretrained()) for group in FAMILY_GROUPS}
    assert all(pairs.values()), {group: len(found) for group, found in pairs.items()}
    table = read_paper_backbones(PLUS_PAPER_CONFIG)
    specs = {str(entry.get("spec")) for entry in table.values()}
    for group, found in pairs.items():
        assert list_models(group) == found
        for spec in found:
            assert check_spec(spec) == "open_clip", spec
            arch, _, tag = spec.partition(":")
            assert family_of(arch, tag) == group
            twins = {spec, f"{arch.replace('-quickgelu', '')}-quickgelu:{tag}", spec.replace("-quickgelu", "")}
            assert twins & specs, f"{spec} (or its -quickgelu twin) is not in {PLUS_PAPER_CONFIG.name}"


def test_plus_table_includes_the_66_and_its_names_load_by_name():
    paper = read_paper_backbones(DEFAULT_PAPER_CONFIG)
    plus = read_paper_backbones("lr0fm-plus")
    assert len(paper) == 66 and all(plus[name] == entry for name, entry in paper.items())
    new = {name: entry for name, entry in plus.items() if name not in paper}
    assert {entry["family"] for entry in new.values()} == {"SigLIP2", "MetaCLIP2", "PE-Core", "MobileCLIP2", "DFN"}
    keys = {"name", "family", "protocol", "spec", "params", "pretrain_data", "pretrain_size", "resolution"}
    for name, entry in new.items():
        assert set(entry) == keys and entry["protocol"] == "paper-text", name
        assert check_spec(name) == "open_clip", name
    assert set(list_models("lr0fm-plus")) == set(plus) and set(list_models("lr0fm66")) == set(paper)


def test_plus_preset_sweeps_the_66_preset_and_every_new_backbone():
    import yaml

    from lr0fm.presets import resolve_config

    preset = yaml.safe_load(open(resolve_config("lr0fm_plus", "benchmark"), encoding="utf-8"))
    base = yaml.safe_load(open(resolve_config("lr0fm66", "benchmark"), encoding="utf-8"))
    paper = read_paper_backbones(DEFAULT_PAPER_CONFIG)
    new_specs = [str(e["spec"]) for n, e in read_paper_backbones(PLUS_PAPER_CONFIG).items() if n not in paper]
    assert preset["models"] == [*base["models"], *new_specs]
    assert {k: v for k, v in preset.items() if k not in ("models", "output")} == {
        k: v for k, v in base.items() if k not in ("models", "output")
    }


def test_table_include_errors_are_clear(tmp_path):
    (tmp_path / "a.yaml").write_text("include: b.yaml\nbackbones:\n  - {name: X, spec: 'RN50:openai'}\n")
    (tmp_path / "b.yaml").write_text("include: a.yaml\n")
    with pytest.raises(ValueError, match="includes itself"):
        read_paper_backbones(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("include: missing.yaml\n")
    with pytest.raises(FileNotFoundError, match="missing.yaml.*included from"):
        read_paper_backbones(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("include: e.yaml\nbackbones:\n  - {name: X, spec: 'RN50:openai'}\n")
    (tmp_path / "e.yaml").write_text("- {name: X, spec: 'RN101:openai'}\n")
    with pytest.raises(ValueError, match="'X' is listed twice"):
        read_paper_backbones(tmp_path / "d.yaml")
