"""Backbone registry: every offline-capable spec form, on tiny randomly initialised models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

from lr0fm.models import WeightsUnavailableError, list_models, load_backbone

TINY_VIT = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}

# A timm vision tower (timm's tiny test ConvNeXt, no pretrained weights) with a SigLIP-style logit bias.
TINY_TIMM = {
    "embed_dim": 32,
    "init_logit_bias": -10,
    "vision_cfg": {
        "timm_model_name": "test_convnext",
        "timm_model_pretrained": False,
        "timm_pool": "avg",
        "timm_proj": "linear",
        "image_size": 32,
    },
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}

PROMPTS = ["a photo of a cat", "a photo of a dog", "a blurry photo"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """No test may reach the network: force the Hugging Face libraries into offline mode."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def _write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def tiny_vit_json(tmp_path) -> Path:
    return _write_json(tmp_path / "lr0fm-test-tiny-vit.json", TINY_VIT)


def _image(width: int = 50, height: int = 40, seed: int = 0) -> Image.Image:
    """A smooth, non-square RGB test image (exercises resize, crop and normalisation)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx / width, yy / height, (xx + yy) / (width + height)], axis=-1) * 200
    pixels = base + rng.uniform(0, 55, size=(1, 1, 3))
    return Image.fromarray(pixels.astype(np.uint8), mode="RGB")


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _forward_shapes(backbone, embed_dim: int) -> None:
    images = torch.stack([backbone.preprocess(_image(seed=i)) for i in range(2)])
    with torch.no_grad():
        image_emb = backbone.encode_image(images)
        text_emb = backbone.encode_text(backbone.tokenizer(PROMPTS))
    assert image_emb.shape == (2, embed_dim)
    assert text_emb.shape == (len(PROMPTS), embed_dim)
    assert torch.isfinite(image_emb).all() and torch.isfinite(text_emb).all()


def test_json_config_spec_builds_model_with_open_clip_val_transform(tiny_vit_json):
    backbone = load_backbone(str(tiny_vit_json), seed=0)
    assert not backbone.model.training
    assert backbone.family == "openclip"
    assert backbone.info["arch"] == "lr0fm-test-tiny-vit" and backbone.info["tag"] == "none"
    assert backbone.image_size == backbone.info["image_size"] == 32
    num_params = sum(p.numel() for p in backbone.model.parameters())
    assert backbone.info["num_params"] == backbone.num_params == num_params
    assert backbone.visual is backbone.model.visual
    _forward_shapes(backbone, embed_dim=32)

    _, _, reference = open_clip.create_model_and_transforms("lr0fm-test-tiny-vit")
    image = _image(71, 45)
    assert torch.equal(backbone.preprocess(image), reference(image))
    cfg = backbone.preprocess_cfg
    assert (cfg.size, cfg.interpolation, cfg.resize_mode) == (32, "bicubic", "shortest")
    assert cfg.mean == pytest.approx(open_clip.OPENAI_DATASET_MEAN)


def test_random_weights_are_seeded_and_leave_the_global_rng_alone(tiny_vit_json):
    load_backbone(str(tiny_vit_json))  # registers the architecture under its stem
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = load_backbone("lr0fm-test-tiny-vit:none", seed=1)
    assert torch.equal(torch.rand(3), expected_next)
    again = load_backbone("lr0fm-test-tiny-vit:none", seed=1)
    other = load_backbone("lr0fm-test-tiny-vit:none", seed=2)
    default = load_backbone("lr0fm-test-tiny-vit:none")
    zero = load_backbone(f"{tiny_vit_json}:none", seed=0)
    assert _same_weights(first.model, again.model)
    assert not _same_weights(first.model, other.model)
    assert _same_weights(default.model, zero.model)
    assert default.info["seed"] == 0


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_arch_with_local_checkpoint_loads_those_weights(tmp_path, tiny_vit_json, suffix):
    source = load_backbone(str(tiny_vit_json), seed=3)
    state = {k: v.contiguous() for k, v in source.model.state_dict().items()}
    checkpoint = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(checkpoint))
    else:
        torch.save(state, checkpoint)
    loaded = load_backbone(f"lr0fm-test-tiny-vit:{checkpoint}", seed=99)
    assert _same_weights(source.model, loaded.model)
    assert loaded.info["tag"] == str(checkpoint)


def test_local_dir_honours_stored_preprocess_cfg(tmp_path):
    model_dir = tmp_path / "tiny-local"
    model_dir.mkdir()
    preprocess_cfg = {
        "mean": [0.5, 0.4, 0.3],
        "std": [0.2, 0.25, 0.3],
        "interpolation": "bilinear",
        "resize_mode": "squash",
    }
    config = {"model_cfg": TINY_VIT, "preprocess_cfg": preprocess_cfg}
    _write_json(model_dir / "open_clip_config.json", config)
    source = load_backbone(str(_write_json(tmp_path / "tiny-local-src.json", TINY_VIT)), seed=5)
    save_file(
        {k: v.contiguous() for k, v in source.model.state_dict().items()},
        str(model_dir / "open_clip_model.safetensors"),
    )

    backbone = load_backbone(f"local-dir:{model_dir}")
    cfg = backbone.preprocess_cfg
    assert cfg.mean == pytest.approx(tuple(preprocess_cfg["mean"]))
    assert cfg.std == pytest.approx(tuple(preprocess_cfg["std"]))
    assert (cfg.interpolation, cfg.resize_mode, cfg.size) == ("bilinear", "squash", 32)
    assert _same_weights(source.model, backbone.model)
    assert backbone.info["arch"] is None and backbone.info["tag"] == str(model_dir)

    _, _, reference = open_clip.create_model_and_transforms(f"local-dir:{model_dir}")
    image = _image(60, 33)
    assert torch.equal(backbone.preprocess(image), reference(image))
    _forward_shapes(backbone, embed_dim=32)


def test_local_dir_without_weights_is_an_error(tmp_path):
    model_dir = tmp_path / "no-weights"
    model_dir.mkdir()
    _write_json(model_dir / "open_clip_config.json", {"model_cfg": TINY_VIT})
    with pytest.raises(WeightsUnavailableError, match="local-dir"):
        load_backbone(f"local-dir:{model_dir}")


def test_timm_vision_tower_config(tmp_path):
    backbone = load_backbone(str(_write_json(tmp_path / "lr0fm-test-tiny-timm.json", TINY_TIMM)), seed=0)
    assert backbone.image_size == 32
    assert type(backbone.visual).__name__ == "TimmModel"
    _forward_shapes(backbone, embed_dim=32)


def _save_tiny_blip(directory: Path) -> None:
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForImageTextRetrieval,
        BlipImageProcessor,
        BlipProcessor,
    )

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "photo", "of", "the", "cat", "dog", "blurry"]
    directory.mkdir()
    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(words) + "\n", encoding="utf-8")
    config = BlipConfig(
        text_config={
            "vocab_size": 32,
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "max_position_embeddings": 64,
            "encoder_hidden_size": 32,
            "pad_token_id": 0,
            "bos_token_id": 2,
            "sep_token_id": 3,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        image_text_hidden_size=16,
        projection_dim=16,
    )
    torch.manual_seed(0)
    BlipForImageTextRetrieval(config).save_pretrained(directory)
    image_processor = BlipImageProcessor(
        size={"height": 32, "width": 32}, image_mean=[0.48, 0.46, 0.41], image_std=[0.27, 0.26, 0.28]
    )
    BlipProcessor(image_processor, BertTokenizer(str(vocab))).save_pretrained(directory)


def test_blip_itc_embeddings_match_the_retrieval_head(tmp_path):
    from transformers import BlipForImageTextRetrieval, BlipProcessor

    blip_dir = tmp_path / "tiny-blip"
    _save_tiny_blip(blip_dir)
    backbone = load_backbone(f"hf:{blip_dir}")
    assert backbone.family == "blip" and not backbone.model.training
    cfg = backbone.preprocess_cfg
    assert (cfg.size, cfg.interpolation, cfg.resize_mode) == (32, "bicubic", "squash")
    assert cfg.mean == pytest.approx((0.48, 0.46, 0.41)) and cfg.std == pytest.approx((0.27, 0.26, 0.28))

    images = [_image(48, 40, seed=i) for i in range(2)]
    pixels = torch.stack([backbone.preprocess(im) for im in images])
    processor = BlipProcessor.from_pretrained(blip_dir)
    hf_pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(pixels, hf_pixels, atol=1e-4, rtol=0)  # squash resize, as BLIP's processor

    tokens = backbone.tokenizer(PROMPTS)
    with torch.no_grad():
        image_emb = backbone.encode_image(pixels)
        text_emb = backbone.encode_text(tokens)
        reference = BlipForImageTextRetrieval.from_pretrained(blip_dir).eval()
        scores = [
            reference(
                input_ids=tokens["input_ids"],
                attention_mask=tokens["attention_mask"],
                pixel_values=pixels[i : i + 1],
                use_itm_head=False,
            ).itm_score
            for i in range(2)
        ]
    assert image_emb.shape == (2, 16) and text_emb.shape == (len(PROMPTS), 16)
    similarity = F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T
    torch.testing.assert_close(similarity, torch.cat(scores), atol=1e-5, rtol=1e-5)


def test_hf_spec_rejects_non_blip_checkpoints(tmp_path):
    other = tmp_path / "bert"
    other.mkdir()
    _write_json(other / "config.json", {"model_type": "bert"})
    with pytest.raises(ValueError, match="'bert' model.*hf-hub"):
        load_backbone(f"hf:{other}")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_backbone(f"hf:{tmp_path / 'missing'}")


def test_list_models_wildcards_and_paper_names(tmp_path):
    vit_b16 = list_models("ViT-B-16:*")
    assert "ViT-B-16:laion2b_s34b_b88k" in vit_b16 and "ViT-B-16:openai" in vit_b16
    assert all(name.startswith("ViT-B-16:") for name in vit_b16)
    assert "ViT-B-16-SigLIP:webli" in list_models("*siglip*")  # case-insensitive
    assert "EVA02-B-16:merged2b_s8b_b131k" in list_models("eva02-b-16:*")
    assert list_models("toy*") == ["toyclip"]
    assert list_models("no-such-model*") == []
    everything = list_models()
    assert len(everything) == len(set(everything)) >= len(open_clip.list_pretrained())

    table = tmp_path / "paper.yaml"
    table.write_text("backbones:\n  - {name: Paper-ViT-B/16, family: OpenCLIP, spec: 'ViT-B-16:openai'}\n")
    assert list_models("Paper-*", paper_config=table) == ["Paper-ViT-B/16"]


def test_paper_names_resolve_through_the_backbone_table(tmp_path, tiny_vit_json):
    table = tmp_path / "paper.yaml"
    table.write_text(
        f"- {{name: Tiny-Paper, family: OpenCLIP, spec: '{tiny_vit_json}:none'}}\n"
        "- {name: ALBEF-14M, family: ALBEF, needs_adapter: true, note: no ALBEF loader}\n"
    )
    backbone = load_backbone("Tiny-Paper", paper_config=table, seed=4)
    assert backbone.info["paper_name"] == "Tiny-Paper" and backbone.info["paper_family"] == "OpenCLIP"
    assert backbone.spec == f"{tiny_vit_json}:none"
    by_spec = load_backbone(f"{tiny_vit_json}:none", seed=4, paper_config=table)
    assert _same_weights(backbone.model, by_spec.model)
    assert by_spec.info["paper_name"] == "Tiny-Paper"  # a spec listed in the table is annotated too
    with pytest.raises(ValueError, match="ALBEF-14M.*no ALBEF loader"):
        load_backbone("ALBEF-14M", paper_config=table)


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        ("ViT-B-16:laion2b_s34b_bb88k", ValueError, "Did you mean 'laion2b_s34b_b88k'"),
        ("ViT-B-17:openai", ValueError, "architecture 'ViT-B-17'. Did you mean 'ViT-B-16'"),
        ("toyclp", ValueError, "Did you mean 'toyclip'.*Accepted specs"),
        ("ViT-B-16", ValueError, "use 'ViT-B-16:TAG'"),
        ("ViT-B-16:", ValueError, "Empty tag"),
        ("ViT-B-16:/no/such/weights.pt", FileNotFoundError, "does not exist"),
        ("/no/such/arch.json", FileNotFoundError, "does not exist"),
        ("hf:", ValueError, "Empty source"),
    ],
)
def test_bad_specs_name_the_problem(spec, error, match):
    with pytest.raises(error, match=match):
        load_backbone(spec)


def test_bad_model_config_json(tmp_path):
    with pytest.raises(ValueError, match=r"lacks \['vision_cfg'\]"):
        load_backbone(str(_write_json(tmp_path / "broken.json", {"embed_dim": 8, "text_cfg": {}})))
    with pytest.raises(ValueError, match="local-dir:"):
        load_backbone(str(_write_json(tmp_path / "open_clip_config.json", {"model_cfg": TINY_VIT})))


def test_bad_precision(tiny_vit_json):
    with pytest.raises(ValueError, match="precision 'fp8'"):
        load_backbone(str(tiny_vit_json), precision="fp8")


def test_offline_pretrained_tag_says_how_to_load_local_weights(tmp_path):
    with pytest.raises(WeightsUnavailableError, match=r"'ViT-B-32:openai'.*'ViT-B-32:/path/to/weights"):
        load_backbone("ViT-B-32:openai", cache_dir=str(tmp_path))


def test_named_backbones_register_with_the_decorator():
    from lr0fm.models.families import BACKBONES, register_backbone

    calls = []

    @register_backbone("lr0fm-test-fake")
    def load(**kwargs):
        calls.append(kwargs)
        return "backbone"

    try:
        assert load_backbone("lr0fm-test-fake", device="cpu") == "backbone"
        assert calls == [{"device": "cpu"}]
        assert "lr0fm-test-fake" in list_models("lr0fm-test-*")
        assert "toyclip" in list_models("toy*")  # the toy world's plug-in registers it the same way
    finally:
        BACKBONES.remove("lr0fm-test-fake")


def test_repository_paper_table_specs_parse():
    from lr0fm.models import check_spec
    from lr0fm.models.families import SCHEMES
    from lr0fm.models.paper_backbones import DEFAULT_PAPER_CONFIG, read_paper_backbones

    if not DEFAULT_PAPER_CONFIG.is_file():
        pytest.skip(f"{DEFAULT_PAPER_CONFIG} not written yet")
    loadable = {name: e["spec"] for name, e in read_paper_backbones().items() if not e.get("needs_adapter")}
    assert loadable, "the paper table lists no loadable backbone"
    for name, spec in loadable.items():
        assert check_spec(name) == check_spec(str(spec)) in ("open_clip", *SCHEMES.names()), name  # raises when wrong


def test_backbone_is_a_module_that_pickles_copies_and_moves(tiny_vit_json):
    import copy
    import pickle

    from lr0fm.models.openclip_loader import OpenClipBackbone

    backbone = load_backbone(str(tiny_vit_json), seed=0)
    assert isinstance(backbone, OpenClipBackbone) and isinstance(backbone, torch.nn.Module)
    assert dict(backbone.named_children()) == {"model": backbone.model}  # a real submodule, registered once
    images = torch.stack([backbone.preprocess(_image(seed=s)) for s in range(2)])
    tokens = backbone.tokenizer(["a photo of a cat.", "a dog"])
    with torch.no_grad():
        reference = backbone.encode_image(images), backbone.encode_text(tokens)
        restored = pickle.loads(pickle.dumps(backbone))
        assert torch.equal(restored.encode_image(images), reference[0])
        assert torch.equal(restored.encode_text(restored.tokenizer(["a photo of a cat.", "a dog"])), reference[1])
        clone = copy.deepcopy(backbone)
        next(clone.visual.parameters()).add_(1.0)  # the copy owns its weights
        assert torch.equal(backbone.encode_image(images), reference[0])
        assert not torch.equal(clone.encode_image(images), reference[0])
    moved = backbone.to("meta")
    assert moved.device.type == "meta" and moved.encode_image(images).device.type == "meta"
