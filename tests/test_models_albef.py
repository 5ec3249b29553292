"""ALBEF (``albef:`` specs): a tiny random checkpoint in the original key layout, loaded through the public spec.

The reference ITC forward below is written with plain torch ops on the checkpoint tensors, following
ALBEF's ``models/vit.py`` (pre-norm ViT, [CLS] after the final norm) and ``models/xbert.py`` in
``mode='text'`` (post-norm BERT layers below ``fusion_layer``), as the authors' ``zero_shot_classification.py``
calls them.
"""

from __future__ import annotations

import csv
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms
from torchvision.transforms import InterpolationMode

from lr0fm.lrtk0 import LRTokens, tower_layout
from lr0fm.models import load_backbone
from lr0fm.models.albef_loader import ALBEF_MEAN, ALBEF_STD, WEIGHTS_ENV
from lr0fm.models.paper_backbones import read_paper_backbones

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

WIDTH, DEPTH, PATCH, GRID, MLP = 128, 2, 16, 4, 256  # ViT: 2 heads of 64, 64 px checkpoint grid
HIDDEN, LAYERS, FUSION, INTER, MAXPOS = 128, 4, 2, 256, 40  # BERT: layers >= FUSION have cross-attention
EMBED, QUEUE = 32, 8
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "photo", "of", "red", "green", "blue", "the", "."]


def _linear(sd: dict, key: str, out_dim: int, in_dim: int, gen: torch.Generator) -> None:
    sd[f"{key}.weight"] = torch.randn(out_dim, in_dim, generator=gen) / math.sqrt(in_dim)
    sd[f"{key}.bias"] = torch.randn(out_dim, generator=gen) * 0.1


def _norm(sd: dict, key: str, dim: int, gen: torch.Generator) -> None:
    sd[f"{key}.weight"] = 1 + 0.1 * torch.randn(dim, generator=gen)
    sd[f"{key}.bias"] = 0.1 * torch.randn(dim, generator=gen)


def _vit(prefix: str, gen: torch.Generator) -> dict:
    sd = {
        f"{prefix}.cls_token": torch.randn(1, 1, WIDTH, generator=gen) * 0.1,
        f"{prefix}.pos_embed": torch.randn(1, 1 + GRID * GRID, WIDTH, generator=gen) * 0.1,
        f"{prefix}.patch_embed.proj.weight": torch.randn(WIDTH, 3, PATCH, PATCH, generator=gen) / (4 * PATCH),
        f"{prefix}.patch_embed.proj.bias": torch.randn(WIDTH, generator=gen) * 0.1,
    }
    for i in range(DEPTH):
        block = f"{prefix}.blocks.{i}"
        _norm(sd, f"{block}.norm1", WIDTH, gen)
        _linear(sd, f"{block}.attn.qkv", 3 * WIDTH, WIDTH, gen)
        _linear(sd, f"{block}.attn.proj", WIDTH, WIDTH, gen)
        _norm(sd, f"{block}.norm2", WIDTH, gen)
        _linear(sd, f"{block}.mlp.fc1", MLP, WIDTH, gen)
        _linear(sd, f"{block}.mlp.fc2", WIDTH, MLP, gen)
    _norm(sd, f"{prefix}.norm", WIDTH, gen)
    return sd


def _bert(prefix: str, gen: torch.Generator) -> dict:
    sd = {
        f"{prefix}.embeddings.word_embeddings.weight": torch.randn(len(WORDS), HIDDEN, generator=gen) * 0.5,
        f"{prefix}.embeddings.position_embeddings.weight": torch.randn(MAXPOS, HIDDEN, generator=gen) * 0.5,
        f"{prefix}.embeddings.token_type_embeddings.weight": torch.randn(2, HIDDEN, generator=gen) * 0.5,
        f"{prefix}.embeddings.position_ids": torch.arange(MAXPOS).unsqueeze(0),
    }
    _norm(sd, f"{prefix}.embeddings.LayerNorm", HIDDEN, gen)
    for i in range(LAYERS):
        layer = f"{prefix}.encoder.layer.{i}"
        for name in ("query", "key", "value"):
            _linear(sd, f"{layer}.attention.self.{name}", HIDDEN, HIDDEN, gen)
        _linear(sd, f"{layer}.attention.output.dense", HIDDEN, HIDDEN, gen)
        _norm(sd, f"{layer}.attention.output.LayerNorm", HIDDEN, gen)
        if i >= FUSION:  # ALBEF's fusion layers attend to the image (key/value from the vision width)
            _linear(sd, f"{layer}.crossattention.self.query", HIDDEN, HIDDEN, gen)
            _linear(sd, f"{layer}.crossattention.self.key", HIDDEN, WIDTH, gen)
            _linear(sd, f"{layer}.crossattention.self.value", HIDDEN, WIDTH, gen)
            _linear(sd, f"{layer}.crossattention.output.dense", HIDDEN, HIDDEN, gen)
            _norm(sd, f"{layer}.crossattention.output.LayerNorm", HIDDEN, gen)
        _linear(sd, f"{layer}.intermediate.dense", INTER, HIDDEN, gen)
        _linear(sd, f"{layer}.output.dense", HIDDEN, INTER, gen)
        _norm(sd, f"{layer}.output.LayerNorm", HIDDEN, gen)
    return sd


def albef_state_dict(pretrain: bool = True, seed: int = 0) -> dict:
    """A random ALBEF state dict with every key group of the original files, sizes scaled down.

    ``pretrain``: ``ALBEF_4M.pth`` layout (``text_encoder.bert.*`` + MLM head ``text_encoder.cls.*``); else the
    retrieval fine-tunes' layout (``text_encoder.*``, ``idx_queue``).
    """
    gen = torch.Generator().manual_seed(seed)
    text = "text_encoder.bert" if pretrain else "text_encoder"
    text_m = "text_encoder_m.bert" if pretrain else "text_encoder_m"
    sd = {**_vit("visual_encoder", gen), **_bert(text, gen)}
    _linear(sd, "vision_proj", EMBED, WIDTH, gen)
    _linear(sd, "text_proj", EMBED, HIDDEN, gen)
    _linear(sd, "itm_head", 2, HIDDEN, gen)
    sd.update(
        {k.replace("visual_encoder", "visual_encoder_m", 1): v.clone() for k, v in _vit("visual_encoder", gen).items()}
    )
    sd.update({k.replace(text, text_m, 1): v for k, v in _bert(text, gen).items()})
    _linear(sd, "vision_proj_m", EMBED, WIDTH, gen)
    _linear(sd, "text_proj_m", EMBED, HIDDEN, gen)
    sd["temp"] = torch.tensor(0.07)
    sd["image_queue"] = F.normalize(torch.randn(EMBED, QUEUE, generator=gen), dim=0)
    sd["text_queue"] = F.normalize(torch.randn(EMBED, QUEUE, generator=gen), dim=0)
    sd["queue_ptr"] = torch.zeros(1, dtype=torch.long)
    if pretrain:
        _linear(sd, "text_encoder.cls.predictions.transform.dense", HIDDEN, HIDDEN, gen)
        _norm(sd, "text_encoder.cls.predictions.transform.LayerNorm", HIDDEN, gen)
        _linear(sd, "text_encoder.cls.predictions.decoder", len(WORDS), HIDDEN, gen)
        sd["text_encoder.cls.predictions.bias"] = sd["text_encoder.cls.predictions.decoder.bias"].clone()
    else:
        sd["idx_queue"] = torch.full((1, QUEUE), -100, dtype=torch.long)
    return sd


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    base = tmp_path_factory.mktemp("albef")
    vocab = base / "bert"
    vocab.mkdir()
    (vocab / "vocab.txt").write_text("\n".join(WORDS) + "\n", encoding="utf-8")
    pretrain, retrieval = albef_state_dict(True), albef_state_dict(False, seed=1)
    torch.save({"model": pretrain, "epoch": 29, "config": {"image_res": 64}}, base / "ALBEF_4M.pth")
    torch.save({"model": retrieval}, base / "albef_coco_retrieval_lavis.pt")
    return {"base": base, "vocab": vocab, "pretrain": pretrain, "retrieval": retrieval}


def spec(files, name: str = "ALBEF_4M.pth", size: int = 64) -> str:
    return f"albef:{files['base'] / name}?tokenizer={files['vocab']}&image_size={size}"


# ---- the reference: ALBEF's ITC forward in plain torch ops ---------------------------------------------------


def _ln(x, sd, key, eps):
    return F.layer_norm(x, x.shape[-1:], sd[f"{key}.weight"], sd[f"{key}.bias"], eps)


def _lin(x, sd, key):
    return x @ sd[f"{key}.weight"].T + sd[f"{key}.bias"]


def _heads(x, n):
    b, length, c = x.shape
    return x.reshape(b, length, n, c // n).transpose(1, 2)


def reference_image(sd: dict, images: torch.Tensor) -> torch.Tensor:
    """``vision_proj(visual_encoder(images)[:, 0])`` of ALBEF's vit.py, pos_embed resized as its helper does."""
    x = F.conv2d(
        images, sd["visual_encoder.patch_embed.proj.weight"], sd["visual_encoder.patch_embed.proj.bias"], stride=PATCH
    )
    grid = x.shape[-1]
    x = x.flatten(2).transpose(1, 2)
    pos = sd["visual_encoder.pos_embed"]
    if grid != GRID:  # interpolate_pos_embed: bicubic on the patch positions, class token kept
        patches = pos[:, 1:].reshape(1, GRID, GRID, WIDTH).permute(0, 3, 1, 2)
        patches = F.interpolate(patches, size=(grid, grid), mode="bicubic", align_corners=False)
        pos = torch.cat([pos[:, :1], patches.permute(0, 2, 3, 1).reshape(1, grid * grid, WIDTH)], dim=1)
    x = torch.cat([sd["visual_encoder.cls_token"].expand(len(x), -1, -1), x], dim=1) + pos
    heads = WIDTH // 64
    for i in range(DEPTH):
        p = f"visual_encoder.blocks.{i}"
        q, k, v = _lin(_ln(x, sd, f"{p}.norm1", 1e-6), sd, f"{p}.attn.qkv").chunk(3, dim=-1)
        q, k, v = _heads(q, heads), _heads(k, heads), _heads(v, heads)
        attn = (q @ k.transpose(-2, -1) / math.sqrt(64)).softmax(-1)
        x = x + _lin((attn @ v).transpose(1, 2).flatten(2), sd, f"{p}.attn.proj")
        h = F.gelu(_lin(_ln(x, sd, f"{p}.norm2", 1e-6), sd, f"{p}.mlp.fc1"))
        x = x + _lin(h, sd, f"{p}.mlp.fc2")
    return _lin(_ln(x, sd, "visual_encoder.norm", 1e-6)[:, 0], sd, "vision_proj")


def reference_text(sd: dict, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``text_proj`` of the [CLS] state after BERT's layers below the fusion layer (xbert ``mode='text'``)."""
    t = "text_encoder.bert" if "text_encoder.bert.embeddings.word_embeddings.weight" in sd else "text_encoder"
    x = (
        sd[f"{t}.embeddings.word_embeddings.weight"][ids]
        + sd[f"{t}.embeddings.position_embeddings.weight"][: ids.shape[1]]
        + sd[f"{t}.embeddings.token_type_embeddings.weight"][0]
    )
    x = _ln(x, sd, f"{t}.embeddings.LayerNorm", 1e-12)
    bias = (1.0 - mask[:, None, None, :].float()) * -10000.0
    heads = HIDDEN // 64
    for i in range(FUSION):
        p = f"{t}.encoder.layer.{i}"
        q, k, v = (_heads(_lin(x, sd, f"{p}.attention.self.{n}"), heads) for n in ("query", "key", "value"))
        attn = (q @ k.transpose(-2, -1) / math.sqrt(64) + bias).softmax(-1)
        ctx = _lin((attn @ v).transpose(1, 2).flatten(2), sd, f"{p}.attention.output.dense")
        x = _ln(ctx + x, sd, f"{p}.attention.output.LayerNorm", 1e-12)
        h = F.gelu(_lin(x, sd, f"{p}.intermediate.dense"))
        x = _ln(_lin(h, sd, f"{p}.output.dense") + x, sd, f"{p}.output.LayerNorm", 1e-12)
    return _lin(x[:, 0], sd, "text_proj")


def albef_test_transform(size: int) -> transforms.Compose:
    """ALBEF/data/__init__.py ``create_dataset_zero_shot`` at HR (``low_resolution == original_resolution``)."""
    return transforms.Compose(
        [
            transforms.Resize((size, size), interpolation=InterpolationMode.BICUBIC),
            lambda image: image.convert("RGB"),
            transforms.ToTensor(),
            transforms.Normalize(ALBEF_MEAN, ALBEF_STD),
        ]
    )


# ---- tests ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "size"), [("ALBEF_4M.pth", 64), ("albef_coco_retrieval_lavis.pt", 96)])
def test_embeddings_match_reference_forward(files, name, size) -> None:
    backbone = load_backbone(spec(files, name, size), seed=0)
    sd = files["pretrain" if name == "ALBEF_4M.pth" else "retrieval"]
    images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(3))
    tokens = backbone.tokenizer(["a photo of red.", "the blue"])
    with torch.no_grad():
        torch.testing.assert_close(backbone.encode_image(images), reference_image(sd, images), rtol=1e-4, atol=1e-4)
        expected = reference_text(sd, tokens["input_ids"], tokens["attention_mask"])
        torch.testing.assert_close(backbone.encode_text(tokens), expected, rtol=1e-4, atol=1e-4)
    assert backbone.family == "albef" and backbone.image_size == size
    assert backbone.info["text_layers"] == FUSION
    assert len(backbone.model.text_encoder.encoder.layer) == FUSION


def test_state_dict_round_trips_and_extra_parts_are_dropped(files) -> None:
    backbone = load_backbone(spec(files))
    loaded = backbone.model.state_dict()
    sd = {k.replace("text_encoder.bert.", "text_encoder.", 1): v for k, v in files["pretrain"].items()}
    used = {k for k in sd if k in loaded}
    assert set(loaded) == used  # nothing missing: every model tensor came from the checkpoint
    for key in used:
        torch.testing.assert_close(loaded[key], sd[key], rtol=0, atol=0)
    dropped = set(sd) - used
    assert backbone.info["dropped_keys"] == len(dropped)
    kinds = {"visual_encoder_m", "text_encoder_m", "vision_proj_m", "text_proj_m", "itm_head", "temp"}
    assert {k.split(".")[0] for k in dropped} == kinds | {"image_queue", "text_queue", "queue_ptr", "text_encoder"}
    text_dropped = {k for k in dropped if k.startswith("text_encoder.")}
    assert all(".cls." in k or "layer.2." in k or "layer.3." in k or "position_ids" in k for k in text_dropped)


def test_unexpected_and_missing_keys_are_named(files, tmp_path) -> None:
    extra = dict(files["pretrain"], **{"visual_encoder.head.weight": torch.zeros(3, WIDTH)})
    torch.save(extra, tmp_path / "extra.pth")  # bare state dict is accepted too
    with pytest.raises(ValueError, match=r"unexpected \['visual_encoder.head.weight'\]"):
        load_backbone(f"albef:{tmp_path / 'extra.pth'}?tokenizer={files['vocab']}&image_size=64")
    missing = {k: v for k, v in files["pretrain"].items() if k != "text_proj.bias"}
    torch.save({"model": missing}, tmp_path / "missing.pth")
    with pytest.raises(ValueError, match=r"missing \['text_proj.bias'\]"):
        load_backbone(f"albef:{tmp_path / 'missing.pth'}?tokenizer={files['vocab']}&image_size=64")


def test_missing_file_names_lookup_and_download_url(files, monkeypatch) -> None:
    monkeypatch.setenv(WEIGHTS_ENV, str(files["base"]))
    found = load_backbone(f"albef:ALBEF_4M.pth?tokenizer={files['vocab']}&image_size=64")
    assert found.info["tag"] == str(files["base"] / "ALBEF_4M.pth")
    with pytest.raises(FileNotFoundError, match=r"storage.googleapis.com/sfr-pcl-data-research/ALBEF/ALBEF\.pth"):
        load_backbone("albef:ALBEF.pth")
    with pytest.raises(ValueError, match="Unknown option 'size'"):
        load_backbone("albef:ALBEF_4M.pth?size=3")
    short = files["base"] / "short"  # e.g. a hub id not found offline: only the special tokens
    short.mkdir()
    (short / "vocab.txt").write_text("\n".join(WORDS[:5]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"has 5 tokens but the checkpoint's word embedding has 13 rows"):
        load_backbone(f"albef:ALBEF_4M.pth?tokenizer={short}&image_size=64")


def test_paper_name_loads_from_the_weights_directory_with_its_protocol(files, tmp_path, monkeypatch) -> None:
    (tmp_path / "bert-base-uncased").mkdir()  # the table's default tokenizer, found offline next to the weights
    (tmp_path / "bert-base-uncased" / "vocab.txt").write_text("\n".join(WORDS) + "\n", encoding="utf-8")
    (tmp_path / "ALBEF_4M.pth").write_bytes((files["base"] / "ALBEF_4M.pth").read_bytes())
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    backbone = load_backbone("ALBEF (4M)")
    assert backbone.spec == "albef:ALBEF_4M.pth" and backbone.image_size == 384  # the authors' image_res
    assert (backbone.info["paper_name"], backbone.info["paper_protocol"]) == ("ALBEF (4M)", "albef")
    images = torch.randn(1, 3, 384, 384, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():  # pos_embed resized from the checkpoint's 4x4 grid to 24x24
        torch.testing.assert_close(
            backbone.encode_image(images), reference_image(files["pretrain"], images), rtol=1e-4, atol=1e-4
        )


def test_preprocess_and_tokenizer_match_the_authors(files) -> None:
    backbone = load_backbone(spec(files, size=96))
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8))
    torch.testing.assert_close(backbone.preprocess(image), albef_test_transform(96)(image), rtol=0, atol=0)
    tokens = backbone.tokenizer(["A Photo of RED."])
    ids = tokens["input_ids"][0].tolist()
    assert tokens["input_ids"].shape == (1, 35)
    assert ids[:7] == [WORDS.index(w) for w in ("[CLS]", "a", "photo", "of", "red", ".", "[SEP]")]
    assert set(ids[7:]) == {0} and tokens["attention_mask"][0].sum() == 7


def test_lr_tokens_attach_and_detach(files) -> None:
    backbone = load_backbone(spec(files))
    layout = tower_layout(backbone)
    assert (layout.kind, layout.grid, layout.width, layout.num_blocks) == ("timm", (GRID, GRID), WIDTH, DEPTH)
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        plain = backbone.encode_image(images)
        tokens = LRTokens(backbone)
        changed = backbone.encode_image(images)
        with tokens.disabled():
            off = backbone.encode_image(images)
        tokens.detach()
        after = backbone.encode_image(images)
    assert not torch.allclose(changed, plain)
    torch.testing.assert_close(off, plain, rtol=0, atol=0)
    torch.testing.assert_close(after, plain, rtol=0, atol=0)


def test_two_resolution_benchmark_runs(files, tmp_path) -> None:
    from lr0fm.cli import main as cli_main

    out = tmp_path / "bench"
    args = ["benchmark", "--model", spec(files), "--dataset", "toy-color", "--resolutions", "16", "hr"]
    args += ["--output", str(out), "--accelerator", "cpu", "--workers", "0", "--batch_size", "32", "--seed", "0"]
    assert cli_main(args) == 0
    with (out / "results.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["resolution"] for r in rows) == ["16", "hr"]
    assert all(0.0 <= float(r["top1"]) <= 100.0 and int(r["num_samples"]) > 0 for r in rows)


def test_paper_table_names_the_original_albef_files() -> None:
    albef = {n: e for n, e in read_paper_backbones().items() if e["family"] == "ALBEF"}
    assert len(albef) == 4
    for entry in albef.values():
        assert not entry.get("needs_adapter") and str(entry["spec"]).startswith("albef:")
        file = str(entry["spec"]).removeprefix("albef:")
        assert entry["weights"]["file"] == file and entry["weights"]["url"].endswith("/" + file)
