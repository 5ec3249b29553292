"""EVA-CLIP-8B/-18B: scaled-down copies in the original checkpoint layout, loaded through the ``eva-clip:`` spec."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms as T

from lr0fm.cli import main as cli_main
from lr0fm.lrtk0 import LRTokens
from lr0fm.models import WeightsUnavailableError, load_backbone
from lr0fm.models.eva_clip_loader import (
    CONFIG_DIR,
    build_eva_clip,
    eva_trunk_args,
    map_eva_clip_state_dict,
    register_eva_trunk,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ARCHS = {"EVA-CLIP-8B": "eva_clip_8b_patch14_224", "EVA-CLIP-18B": "eva_clip_18b_patch14_224"}
#: Scaled down: 2 blocks of width 256 keep the 128-wide heads, 28 px keeps the 14 px patches.
TINY = {"img_size": 28, "embed_dim": 256, "depth": 2, "num_heads": 2}
TEXT = {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}
EMBED = 16
OPENAI_MEAN, OPENAI_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def original_state_dict(trunk: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights with the key names and shapes of the authors' eva_clip EVA-CLIP-8B/-18B state dict."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape: int, scale: float = 0.05) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale

    def norm_weight(n: int) -> torch.Tensor:
        return 1 + rnd(n, scale=0.1)

    w, p, grid = trunk["embed_dim"], trunk["patch_size"], trunk["img_size"] // trunk["patch_size"]
    hidden = int(w * trunk["mlp_ratio"])
    sd = {
        "visual.cls_token": rnd(1, 1, w),
        "visual.pos_embed": rnd(1, grid * grid + 1, w),
        "visual.patch_embed.proj.weight": rnd(w, 3, p, p),
        "visual.patch_embed.proj.bias": rnd(w),
        "visual.norm.weight": norm_weight(w),
        "visual.head.weight": rnd(EMBED, w),
    }
    for i in range(trunk["depth"]):
        b = f"visual.blocks.{i}."
        sd |= {
            b + "norm1.weight": norm_weight(w),
            b + "attn.qkv.weight": rnd(3 * w, w),
            b + "attn.proj.weight": rnd(w, w),
            b + "attn.proj.bias": rnd(w),
            b + "norm2.weight": norm_weight(w),
            b + "mlp.fc1.weight": rnd(hidden, w),
            b + "mlp.fc1.bias": rnd(hidden),
            b + "mlp.fc2.weight": rnd(w, hidden),
            b + "mlp.fc2.bias": rnd(w),
        }
    tw = TEXT["width"]
    sd |= {
        "text.positional_embedding": rnd(TEXT["context_length"], tw),
        "text.token_embedding.weight": rnd(TEXT["vocab_size"], tw),
        "text.ln_final.weight": norm_weight(tw),
        "text.ln_final.bias": rnd(tw),
        "text.text_projection": rnd(tw, EMBED),
        "logit_scale": torch.tensor(4.6052),
    }
    for i in range(TEXT["layers"]):
        b = f"text.transformer.resblocks.{i}."
        sd |= {
            b + "ln_1.weight": norm_weight(tw),
            b + "ln_1.bias": rnd(tw),
            b + "attn.in_proj_weight": rnd(3 * tw, tw),
            b + "attn.in_proj_bias": rnd(3 * tw),
            b + "attn.out_proj.weight": rnd(tw, tw),
            b + "attn.out_proj.bias": rnd(tw),
            b + "ln_2.weight": norm_weight(tw),
            b + "ln_2.bias": rnd(tw),
            b + "mlp.c_fc.weight": rnd(4 * tw, tw),
            b + "mlp.c_fc.bias": rnd(4 * tw),
            b + "mlp.c_proj.weight": rnd(tw, 4 * tw),
            b + "mlp.c_proj.bias": rnd(tw),
        }
    return sd


def rms(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * weight


def reference_image_embedding(sd: dict[str, torch.Tensor], trunk: dict, images: torch.Tensor) -> torch.Tensor:
    """The original EVAVisionTransformer forward (EVA-CLIP-18B/shinji/eva_clip/eva_vit_model.py) written out:
    post-norm blocks ``x + norm1(attn(x))``, ``x + norm2(mlp(x))``, RMS norms, class token, bias-free head."""
    heads = trunk["num_heads"]
    x = F.conv2d(images, sd["visual.patch_embed.proj.weight"], sd["visual.patch_embed.proj.bias"], stride=14)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([sd["visual.cls_token"].expand(len(x), -1, -1), x], dim=1) + sd["visual.pos_embed"]
    batch, n, width = x.shape
    for i in range(trunk["depth"]):
        b = f"visual.blocks.{i}."
        q, k, v = (x @ sd[b + "attn.qkv.weight"].T).reshape(batch, n, 3, heads, -1).permute(2, 0, 3, 1, 4)
        attn = ((q * (width // heads) ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
        out = F.linear(
            (attn @ v).transpose(1, 2).reshape(batch, n, width), sd[b + "attn.proj.weight"], sd[b + "attn.proj.bias"]
        )
        x = x + rms(out, sd[b + "norm1.weight"])
        hidden = F.gelu(F.linear(x, sd[b + "mlp.fc1.weight"], sd[b + "mlp.fc1.bias"]))
        x = x + rms(F.linear(hidden, sd[b + "mlp.fc2.weight"], sd[b + "mlp.fc2.bias"]), sd[b + "norm2.weight"])
    return rms(x, sd["visual.norm.weight"])[:, 0] @ sd["visual.head.weight"].T


def reference_text_embedding(sd: dict[str, torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
    """open_clip's text transformer built on its own, loaded with the original ``text.*`` tensors."""
    text = open_clip.transformer.TextTransformer(output_dim=EMBED, **TEXT)
    text.load_state_dict({k.removeprefix("text."): v for k, v in sd.items() if k.startswith("text.")})
    return text.eval()(tokens)


def make_tiny(arch: str, tmp_path) -> tuple[str, dict[str, torch.Tensor], dict]:
    """(spec, original state dict, trunk args) of a scaled-down ``arch`` saved as an original checkpoint."""
    name = register_eva_trunk(f"test_tiny_{ARCHS[arch]}", **eva_trunk_args(ARCHS[arch], **TINY))
    config = json.loads((CONFIG_DIR / f"{arch}.json").read_text())
    config["embed_dim"] = EMBED
    config["vision_cfg"] |= {"timm_model_name": name, "image_size": TINY["img_size"]}
    config["text_cfg"] = dict(TEXT)
    config_path, weights = tmp_path / f"tiny-{arch}.json", tmp_path / "tiny.pt"
    config_path.write_text(json.dumps(config))
    trunk = eva_trunk_args(name)
    sd = original_state_dict(trunk)
    torch.save(sd, weights)
    return f"eva-clip:{config_path}:{weights}", sd, trunk


@pytest.fixture(params=sorted(ARCHS))
def tiny(request, tmp_path):
    """A scaled-down EVA-CLIP of each architecture (:func:`make_tiny`)."""
    return make_tiny(request.param, tmp_path)


def test_original_checkpoint_loads_and_matches_the_reference_forward(tiny):
    spec, sd, trunk = tiny
    backbone = load_backbone(spec)
    loaded = backbone.model.state_dict()
    # every original tensor sits, unchanged, under its mapped name, and nothing else is in the model
    renamed = {
        ("visual.head.proj." + k.removeprefix("visual.head.")) if k.startswith("visual.head.")
        else ("visual.trunk." + k.removeprefix("visual.")) if k.startswith("visual.") else k: v
        for k, v in sd.items()
    }  # fmt: skip
    assert set(loaded) == set(renamed)
    assert all(torch.equal(loaded[k], v) for k, v in renamed.items())
    images = torch.randn(2, 3, 28, 28, generator=torch.Generator().manual_seed(3))
    texts = ["a photo of a red square", "a blue circle"]
    tokens = backbone.tokenizer(texts)
    assert torch.equal(tokens, open_clip.tokenize(texts))
    with torch.no_grad():
        torch.testing.assert_close(backbone.encode_image(images), reference_image_embedding(sd, trunk, images))
        torch.testing.assert_close(backbone.encode_text(tokens), reference_text_embedding(sd, tokens))
    assert backbone.info["num_params"] == sum(v.numel() for v in sd.values())


def test_preprocessing_is_eva_clips_eval_transform(tiny):
    backbone = load_backbone(tiny[0].rpartition(":")[0] + ":none")
    published = T.Compose([
        T.Resize(28, interpolation=T.InterpolationMode.BICUBIC),
        T.CenterCrop(28),
        T.Lambda(lambda im: im.convert("RGB")),
        T.ToTensor(),
        T.Normalize(OPENAI_MEAN, OPENAI_STD),
    ])  # fmt: skip
    rng = np.random.default_rng(0)
    for size, mode in (((61, 40), "RGB"), ((33, 70), "L")):
        image = Image.fromarray(
            rng.integers(0, 256, (size[1], size[0], 3 if mode == "RGB" else 1)).squeeze().astype(np.uint8), mode
        )
        assert torch.equal(backbone.preprocess(image), published(image))


def test_lr_tokens_attach_and_detach(tiny):
    backbone = load_backbone(tiny[0])
    images = torch.randn(2, 3, 28, 28, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        reference = backbone.encode_image(images)
        tokens = LRTokens(backbone.visual)
        assert not torch.allclose(backbone.encode_image(images), reference)
        with tokens.disabled():
            assert torch.equal(backbone.encode_image(images), reference)
        tokens.detach()
        assert torch.equal(backbone.encode_image(images), reference)


def test_two_resolution_benchmark_runs(tmp_path):
    """One run: the scaled-down 18B has the 8B's structure."""
    out = tmp_path / "bench"
    argv = [
        "benchmark",
        "--model",
        make_tiny("EVA-CLIP-8B", tmp_path)[0],
        "--dataset",
        "toy-color",
        "--resolutions",
        "16",
        "hr",
        "--workers",
        "0",
    ]
    assert cli_main([*argv, "--output", str(out)]) == 0
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["resolution"] for r in rows} == {"16", "hr"}


@pytest.mark.parametrize(("arch", "low", "high"), [("EVA-CLIP-8B", 7.5e9, 8.5e9), ("EVA-CLIP-18B", 17.5e9, 18.5e9)])
def test_full_size_configs_on_the_meta_device(arch, low, high):
    from timm.layers import RmsNorm
    from timm.models.eva import EvaBlockPostNorm

    model = build_eva_clip(json.loads((CONFIG_DIR / f"{arch}.json").read_text()), device="meta")
    assert low < sum(p.numel() for p in model.parameters()) < high
    trunk = model.visual.trunk
    assert all(isinstance(block, EvaBlockPostNorm) for block in trunk.blocks)
    assert isinstance(trunk.norm, RmsNorm) and trunk.blocks[0].attn.head_dim == 128
    assert model.visual.head.proj.bias is None and trunk.blocks[0].attn.q_bias is None


def test_bad_inputs_are_clear_errors(tiny, tmp_path):
    spec, sd, _ = tiny
    config_path = spec.removeprefix("eva-clip:").rpartition(":")[0]
    broken = dict(sd)
    broken.pop("visual.norm.weight")
    broken["visual.norm.bias"] = torch.zeros(256)
    torch.save(broken, tmp_path / "broken.pt")
    with pytest.raises(
        ValueError, match=r"missing \['visual.trunk.norm.weight'\].*unexpected \['visual.trunk.norm.bias'\]"
    ):
        load_backbone(f"eva-clip:{config_path}:{tmp_path / 'broken.pt'}")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_backbone(f"eva-clip:{config_path}:{tmp_path / 'absent.pt'}")
    with pytest.raises(ValueError, match="Unknown EVA-CLIP architecture 'EVA-CLIP-9B'"):
        load_backbone("eva-clip:EVA-CLIP-9B:none")


def test_published_file_unavailable_names_it(monkeypatch, tmp_path):
    import huggingface_hub

    def offline(repo_id: str, filename: str, **kwargs: object) -> str:
        raise huggingface_hub.errors.LocalEntryNotFoundError(f"{repo_id}/{filename} is not in the cache")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(WeightsUnavailableError, match="BAAI/EVA-CLIP-8B.*EVA_CLIP_8B_psz14_s9B.pt"):
        load_backbone("EVA-CLIP-8B", cache_dir=str(tmp_path / "cache"))


def test_mapping_renames_the_optional_eva_clip_layouts():
    original = {
        "module.visual.blocks.0.attn.q_proj.weight": torch.zeros(1),
        "module.visual.blocks.0.attn.q_bias": torch.zeros(1),
        "module.visual.blocks.0.attn.v_bias": torch.zeros(1),
        "module.visual.blocks.0.attn.inner_attn_ln.weight": torch.zeros(1),
        "module.visual.blocks.0.mlp.ffn_ln.weight": torch.zeros(1),
        "module.visual.blocks.0.mlp.w1.weight": torch.zeros(1),
        "module.visual.blocks.0.mlp.w2.weight": torch.zeros(1),
        "module.visual.blocks.0.mlp.w3.weight": torch.zeros(1),
        "module.visual.rope.freqs_cos": torch.zeros(1),
        "module.text.attn_mask": torch.zeros(1),
    }
    prefix = "visual.trunk.blocks.0."
    assert sorted(map_eva_clip_state_dict({"module": original})) == sorted(
        prefix + k
        for k in (
            "attn.q_proj.weight", "attn.q_proj.bias", "attn.v_proj.bias", "attn.norm.weight", "mlp.norm.weight",
            "mlp.fc1_g.weight", "mlp.fc1_x.weight", "mlp.fc2.weight",
        )
    )  # fmt: skip
