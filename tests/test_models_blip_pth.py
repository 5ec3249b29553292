"""Salesforce's original BLIP checkpoints (``blip:FILE.pth``) on a tiny random model in the original key layout.

The reference forward below is plain torch on the original tensors, written from salesforce/BLIP's
``models/vit.py`` (pre-norm ViT, LayerNorm eps 1e-6) and ``models/med.py`` (post-norm BERT, eps 1e-12), not
from transformers; the reference preprocessing is the authors' ``BLIP/data/__init__.py`` test transform.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from lr0fm.models import load_backbone

WIDTH, HEADS, PATCH, PRETRAIN_GRID, LAYERS, MLP, EMBED = 128, 2, 32, 7, 2, 256, 16
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "photo", "of", "the", "cat", "dog", "red", "green"]
VOCAB = len(WORDS) + 2  # BLIP's tokenizer adds [DEC] and [ENC]
PROMPTS = ["a photo of a cat", "the dog", "a red photo of the green dog"]


def _linear(state: dict, key: str, out_dim: int, in_dim: int, gen: torch.Generator) -> None:
    state[f"{key}.weight"] = torch.randn(out_dim, in_dim, generator=gen) * 0.05
    state[f"{key}.bias"] = torch.randn(out_dim, generator=gen) * 0.02


def _norm(state: dict, key: str, dim: int, gen: torch.Generator) -> None:
    state[f"{key}.weight"] = 1 + 0.1 * torch.randn(dim, generator=gen)
    state[f"{key}.bias"] = 0.1 * torch.randn(dim, generator=gen)


def _vit(prefix: str, gen: torch.Generator) -> dict:
    state = {
        f"{prefix}.cls_token": torch.randn(1, 1, WIDTH, generator=gen) * 0.02,
        f"{prefix}.pos_embed": torch.randn(1, 1 + PRETRAIN_GRID**2, WIDTH, generator=gen) * 0.02,
        f"{prefix}.patch_embed.proj.weight": torch.randn(WIDTH, 3, PATCH, PATCH, generator=gen) * 0.02,
        f"{prefix}.patch_embed.proj.bias": torch.randn(WIDTH, generator=gen) * 0.02,
    }
    for i in range(LAYERS):
        block = f"{prefix}.blocks.{i}"
        _norm(state, f"{block}.norm1", WIDTH, gen)
        _linear(state, f"{block}.attn.qkv", 3 * WIDTH, WIDTH, gen)
        _linear(state, f"{block}.attn.proj", WIDTH, WIDTH, gen)
        _norm(state, f"{block}.norm2", WIDTH, gen)
        _linear(state, f"{block}.mlp.fc1", MLP, WIDTH, gen)
        _linear(state, f"{block}.mlp.fc2", WIDTH, MLP, gen)
    _norm(state, f"{prefix}.norm", WIDTH, gen)
    return state


def _bert(prefix: str, gen: torch.Generator) -> dict:
    state = {
        f"{prefix}.embeddings.position_ids": torch.arange(40).unsqueeze(0),
        f"{prefix}.embeddings.word_embeddings.weight": torch.randn(VOCAB, WIDTH, generator=gen) * 0.5,
        f"{prefix}.embeddings.position_embeddings.weight": torch.randn(40, WIDTH, generator=gen) * 0.1,
    }
    _norm(state, f"{prefix}.embeddings.LayerNorm", WIDTH, gen)
    for i in range(LAYERS):
        layer = f"{prefix}.encoder.layer.{i}"
        for attention in ("attention", "crossattention"):
            for part in ("query", "key", "value"):
                _linear(state, f"{layer}.{attention}.self.{part}", WIDTH, WIDTH, gen)
            _linear(state, f"{layer}.{attention}.output.dense", WIDTH, WIDTH, gen)
            _norm(state, f"{layer}.{attention}.output.LayerNorm", WIDTH, gen)
        _linear(state, f"{layer}.intermediate.dense", MLP, WIDTH, gen)
        _linear(state, f"{layer}.output.dense", WIDTH, MLP, gen)
        _norm(state, f"{layer}.output.LayerNorm", WIDTH, gen)
    return state


def original_blip_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A pre-trained BLIP checkpoint's keys (blip_pretrain: momentum encoders, queues, decoder), shrunk."""
    gen = torch.Generator().manual_seed(seed)
    state = {**_vit("visual_encoder", gen), **_bert("text_encoder", gen)}
    for key in ("vision_proj", "text_proj"):
        _linear(state, key, EMBED, WIDTH, gen)
    _linear(state, "itm_head", 2, WIDTH, gen)
    state |= {
        f"{k.replace('visual_encoder', 'visual_encoder_m', 1)}": v.clone()
        for k, v in _vit("visual_encoder", gen).items()
    }
    state |= {k.replace("text_encoder", "text_encoder_m", 1): v for k, v in _bert("text_encoder", gen).items()}
    for key in ("vision_proj_m", "text_proj_m"):
        _linear(state, key, EMBED, WIDTH, gen)
    state |= {
        "image_queue": torch.randn(EMBED, 8, generator=gen),
        "text_queue": torch.randn(EMBED, 8, generator=gen),
        "idx_queue": torch.zeros(1, 8),
        "ptr_queue": torch.zeros(1, dtype=torch.long),
        "queue_ptr": torch.zeros(1, dtype=torch.long),
        "temp": torch.tensor(0.07),
        "text_decoder.bert.embeddings.word_embeddings.weight": torch.randn(VOCAB, WIDTH, generator=gen),
        "text_decoder.cls.predictions.bias": torch.zeros(VOCAB),
    }
    return state


@pytest.fixture(scope="module")
def blip_files(tmp_path_factory) -> tuple[Path, Path, dict[str, torch.Tensor]]:
    root = tmp_path_factory.mktemp("blip-pth")
    state = original_blip_state()
    checkpoint = root / "model_base.pth"
    torch.save({"model": state}, checkpoint)
    tokenizer = root / "bert-tiny"
    tokenizer.mkdir()
    (tokenizer / "vocab.txt").write_text("\n".join(WORDS) + "\n", encoding="utf-8")
    (tokenizer / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}), encoding="utf-8")
    return checkpoint, tokenizer, state


@pytest.fixture(scope="module")
def backbone(blip_files):
    checkpoint, tokenizer, _ = blip_files
    return load_backbone(f"blip:{checkpoint}?tokenizer={tokenizer}")


def _layer_norm(x: torch.Tensor, state: dict, key: str, eps: float) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], state[f"{key}.weight"], state[f"{key}.bias"], eps)


def _lin(x: torch.Tensor, state: dict, key: str) -> torch.Tensor:
    return x @ state[f"{key}.weight"].T + state[f"{key}.bias"]


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | float = 0.0) -> torch.Tensor:
    batch, length, width = q.shape
    q, k, v = (t.reshape(batch, -1, HEADS, width // HEADS).transpose(1, 2) for t in (q, k, v))
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(width // HEADS) + bias, dim=-1)
    return (weights @ v).transpose(1, 2).reshape(batch, length, width)


def reference_image(state: dict, pixels: torch.Tensor, grid: int) -> torch.Tensor:
    """BLIP's ViT (models/vit.py) + vision_proj of [CLS], pos_embed resized as interpolate_pos_embed does."""
    pos = state["visual_encoder.pos_embed"]
    patches = pos[:, 1:].reshape(1, PRETRAIN_GRID, PRETRAIN_GRID, WIDTH).permute(0, 3, 1, 2)
    patches = F.interpolate(patches, size=(grid, grid), mode="bicubic", align_corners=False)
    pos = torch.cat([pos[:, :1], patches.permute(0, 2, 3, 1).reshape(1, grid * grid, WIDTH)], dim=1)
    x = F.conv2d(
        pixels,
        state["visual_encoder.patch_embed.proj.weight"],
        state["visual_encoder.patch_embed.proj.bias"],
        stride=PATCH,
    )
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([state["visual_encoder.cls_token"].expand(len(x), -1, -1), x], dim=1) + pos
    for i in range(LAYERS):
        b = f"visual_encoder.blocks.{i}"
        h = _layer_norm(x, state, f"{b}.norm1", 1e-6)
        q, k, v = _lin(h, state, f"{b}.attn.qkv").chunk(3, dim=-1)
        x = x + _lin(_attention(q, k, v), state, f"{b}.attn.proj")
        h = _layer_norm(x, state, f"{b}.norm2", 1e-6)
        x = x + _lin(F.gelu(_lin(h, state, f"{b}.mlp.fc1")), state, f"{b}.mlp.fc2")
    x = _layer_norm(x, state, "visual_encoder.norm", 1e-6)
    return _lin(x[:, 0], state, "vision_proj")


def reference_text(state: dict, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """BLIP's med.py BertModel in mode='text' (no cross-attention) + text_proj of [CLS]."""
    t = "text_encoder"
    x = (
        state[f"{t}.embeddings.word_embeddings.weight"][ids]
        + state[f"{t}.embeddings.position_embeddings.weight"][: ids.shape[1]]
    )
    x = _layer_norm(x, state, f"{t}.embeddings.LayerNorm", 1e-12)
    bias = (1.0 - mask[:, None, None, :].float()) * -10000.0
    for i in range(LAYERS):
        a = f"{t}.encoder.layer.{i}.attention"
        ctx = _attention(*(_lin(x, state, f"{a}.self.{p}") for p in ("query", "key", "value")), bias)
        x = _layer_norm(_lin(ctx, state, f"{a}.output.dense") + x, state, f"{a}.output.LayerNorm", 1e-12)
        layer = f"{t}.encoder.layer.{i}"
        h = F.gelu(_lin(x, state, f"{layer}.intermediate.dense"))
        x = _layer_norm(_lin(h, state, f"{layer}.output.dense") + x, state, f"{layer}.output.LayerNorm", 1e-12)
    return _lin(x[:, 0], state, "text_proj")


def _image(width: int = 50, height: int = 40, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_original_checkpoint_loads_every_key_and_matches_the_reference_forward(backbone, blip_files):
    _, _, state = blip_files
    model = backbone.model
    assert backbone.family == "blip" and not model.training and backbone.image_size == 384
    assert backbone.info["pos_embed_grid"] == [PRETRAIN_GRID, 384 // PATCH] and backbone.info["itm_head_loaded"]
    assert backbone.info["dropped_keys"] == sum(
        k.startswith(("visual_encoder_m.", "text_encoder_m.", "vision_proj_m.", "text_proj_m.", "text_decoder."))
        or k
        in (
            "image_queue",
            "text_queue",
            "idx_queue",
            "ptr_queue",
            "queue_ptr",
            "temp",
            "text_encoder.embeddings.position_ids",
        )
        for k in state
    )
    # every tensor of the HF model came from the checkpoint: compare its state dict with the mapped originals
    loaded = model.state_dict()
    torch.testing.assert_close(
        loaded["vision_model.encoder.layers.1.self_attn.projection.weight"],
        state["visual_encoder.blocks.1.attn.proj.weight"],
    )
    torch.testing.assert_close(
        loaded["text_encoder.encoder.layer.1.crossattention.self.key.bias"],
        state["text_encoder.encoder.layer.1.crossattention.self.key.bias"],
    )
    torch.testing.assert_close(loaded["itm_head.weight"], state["itm_head.weight"])

    images = [_image(seed=s) for s in range(2)]
    pixels = torch.stack([backbone.preprocess(im) for im in images])
    tokens = backbone.tokenizer(PROMPTS)
    assert tokens["input_ids"][:, 0].eq(2).all() and tokens["input_ids"].shape[1] <= 35  # [CLS] first
    with torch.no_grad():
        torch.testing.assert_close(
            backbone.encode_image(pixels), reference_image(state, pixels, 384 // PATCH), atol=1e-5, rtol=1e-4
        )
        torch.testing.assert_close(
            backbone.encode_text(tokens),
            reference_text(state, tokens["input_ids"], tokens["attention_mask"]),
            atol=1e-5,
            rtol=1e-4,
        )


def test_preprocessing_is_the_authors_blip_test_transform(backbone):
    from torchvision import transforms
    from torchvision.transforms import InterpolationMode

    published = transforms.Compose(
        [
            transforms.Resize((384, 384), interpolation=InterpolationMode.BICUBIC),
            lambda image: image.convert("RGB"),
            transforms.ToTensor(),
            transforms.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
        ]
    )
    for image in (_image(50, 40), _image(400, 300, seed=1).convert("L")):
        torch.testing.assert_close(backbone.preprocess(image), published(image), atol=1e-6, rtol=0)


def test_tokenizer_is_blips_with_dec_and_enc_tokens(backbone):
    tokenizer = backbone.tokenizer.tokenizer
    assert len(tokenizer) == VOCAB and tokenizer.bos_token == "[DEC]" and "[ENC]" in tokenizer.all_special_tokens
    long = backbone.tokenizer([" ".join(["photo"] * 60)])
    assert long["input_ids"].shape == (1, 35)


def test_lr_tokens_attach_and_detach_on_blip_towers(backbone, tmp_path):
    from transformers import BertTokenizer, BlipImageProcessor, BlipProcessor

    from lr0fm.lrtk0 import LRTokens, tower_layout

    hf_dir = tmp_path / "hf-blip"
    backbone.model.save_pretrained(hf_dir)
    processor = BlipImageProcessor(size={"height": 384, "width": 384}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    BlipProcessor(processor, BertTokenizer.from_pretrained(backbone.tokenizer.tokenizer.name_or_path)).save_pretrained(
        hf_dir
    )
    pixels = torch.stack([backbone.preprocess(_image(seed=s)) for s in range(2)])
    for model in (backbone, load_backbone(f"hf:{hf_dir}")):
        layout = tower_layout(model)
        assert (layout.kind, layout.grid, layout.width, layout.num_blocks) == ("hf_blip", (12, 12), WIDTH, LAYERS)
        with torch.no_grad():
            plain = model.encode_image(pixels)
            tokens = LRTokens(model, std=0.5)
            assert tokens.num_tokens == 144 * (LAYERS + 1)
            with_tokens = model.encode_image(pixels)
            with tokens.disabled():
                torch.testing.assert_close(model.encode_image(pixels), plain, atol=0, rtol=0)
            tokens.detach()
            torch.testing.assert_close(model.encode_image(pixels), plain, atol=0, rtol=0)
        assert not torch.allclose(with_tokens, plain, atol=1e-4)


@pytest.fixture
def small_toy_color():
    """``toy-color`` with 3 images per class (the benchmark of a 384 px model on all 600 takes half a minute)."""
    from lr0fm.datasets.registry import DATASETS, register_dataset
    from lr0fm.toy.datasets import build_toy_dataset

    name = "lr0fm-test-toy-color-small"
    register_dataset(name, needs_root=False)(lambda root=None: build_toy_dataset("toy-color", num_per_class=3))
    yield name
    DATASETS.remove(name)


def test_two_resolution_benchmark_runs_on_an_original_blip_checkpoint(
    blip_files, small_toy_color, tmp_path, monkeypatch
):
    from lr0fm.cli import main

    checkpoint, tokenizer, _ = blip_files
    monkeypatch.setenv("LR0FM_WEIGHTS", str(checkpoint.parent))  # a bare file name resolves there
    out = tmp_path / "out"
    argv = ["benchmark", "--model", f"blip:model_base.pth?tokenizer={tokenizer}", "--dataset", small_toy_color,
            "--resolutions", "16", "hr", "--workers", "0", "--output", str(out)]  # fmt: skip
    assert main(argv) == 0
    with (out / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["resolution"] for r in rows) == ["16", "hr"]
    assert {r["dataset"] for r in rows} == {small_toy_color} and all(int(r["num_samples"]) == 18 for r in rows)


def test_bad_files_and_names_get_actionable_errors(blip_files, small_toy_color, tmp_path, monkeypatch, capsys):
    from lr0fm.cli import main
    from lr0fm.models import check_spec

    checkpoint, tokenizer, state = blip_files
    monkeypatch.setenv("LR0FM_WEIGHTS", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"model_large\.pth.*storage\.googleapis\.com.*LR0FM_WEIGHTS"):
        load_backbone("BLIP-ViT-L/16 (129M)")
    assert check_spec("BLIP-ViT-B/16 (129M)") == "blip"
    argv = ["benchmark", "--model", "BLIP-ViT-B/16 (129M)", "--dataset", small_toy_color, "--resolutions", "16",
            "--workers", "0", "--output", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "lr0fm benchmark: error: Checkpoint file 'model_base.pth' was not found" in err and "LR0FM_WEIGHTS" in err
    odd = tmp_path / "odd.pth"
    torch.save({"model": {**state, "visual_encoder.head.weight": torch.zeros(2, WIDTH)}}, odd)
    with pytest.raises(ValueError, match=r"visual_encoder\.head\.weight"):
        load_backbone(f"blip:{odd}?tokenizer={tokenizer}")
    with pytest.raises(ValueError, match="tokenizer=DIR_OR_HUB_ID"):
        load_backbone(f"blip:{checkpoint}?vocab=x")
    not_torch = tmp_path / "notes.pth"
    not_torch.write_text("not a checkpoint", encoding="utf-8")
    with pytest.raises(ValueError, match="weights_only=True"):
        load_backbone(f"blip:{not_torch}?tokenizer={tokenizer}")
