"""M²-Encoder (``m2-encoder:`` specs): a tiny random checkpoint in Ant's key layout, loaded through the public spec.

The reference forward below is written with plain torch ops on the checkpoint tensors, following Ant's
``vlmo/modules/vlmo_module.py`` (``infer_image``/``infer_text``, ``cls_vlffn_feats``) over its torchscale
``BEiT3``/``Encoder``/``EncoderLayer``/``MultiheadAttention``/``FeedForwardNetwork`` (pre-norm, sub-LN, multiway
``A``/``B`` experts, position rows from 2). The checkpoint is saved as a Lightning ``.ckpt`` (``{"state_dict":
..., "hyper_parameters": <object>}``), the form Ant's ``convert_pl_ckpt`` reads.
"""

from __future__ import annotations

import copy
import csv
import json
import pickle
import sys

import numpy as np
import pytest
import sentencepiece as spm
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms
from torchvision.transforms import InterpolationMode

from lr0fm.lrtk0 import LRTokens, tower_layout
from lr0fm.models import load_backbone
from lr0fm.models.m2_encoder_loader import M2_ARCHS, WEIGHTS_ENV, build_m2_encoder, resize_vision_positions
from lr0fm.models.m2_encoder_model import m2_dims
from lr0fm.models.paper_backbones import read_paper_backbones

#: Scaled down, Ant's config format: 2 + 1 layers of width 32 (4 heads), 8 px patches of a 32 px image.
TINY = {
    "encoder_embed_dim": 32,
    "encoder_attention_heads": 4,
    "encoder_layers": 2,
    "beit3_vl_layers": 1,
    "out_embed_dim": 16,
    "vocab_size": 80,
    "image_size": 32,
    "patch_size": 8,
    "max_text_len": 12,
}
SENTENCES = ["a photo of a red square", "a blue circle on the grass", "the quick brown fox jumps", "一张 照片"] * 40


class HyperParameters:
    """Stands for what Lightning pickles beside the weights (a class the loader must not import or run)."""

    def __init__(self, config: dict) -> None:
        self.config = config


def _linear(sd: dict, key: str, out_dim: int, in_dim: int, gen: torch.Generator, bias: bool = True) -> None:
    sd[f"{key}.weight"] = torch.randn(out_dim, in_dim, generator=gen) / in_dim**0.5
    if bias:
        sd[f"{key}.bias"] = torch.randn(out_dim, generator=gen) * 0.1


def _norm(sd: dict, key: str, dim: int, gen: torch.Generator) -> None:
    sd[f"{key}.weight"] = 1 + 0.1 * torch.randn(dim, generator=gen)
    sd[f"{key}.bias"] = 0.1 * torch.randn(dim, generator=gen)


def _encoder(sd: dict, prefix: str, layers: int, width: int, gen: torch.Generator) -> None:
    for i in range(layers):
        layer = f"{prefix}.layers.{i}"
        for way in "AB":
            for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                _linear(sd, f"{layer}.self_attn.{proj}.{way}", width, width, gen)
            _norm(sd, f"{layer}.self_attn.inner_attn_ln.{way}", width, gen)
            _norm(sd, f"{layer}.self_attn_layer_norm.{way}", width, gen)
            _linear(sd, f"{layer}.ffn.{way}.fc1", 4 * width, width, gen)
            _norm(sd, f"{layer}.ffn.{way}.ffn_layernorm", 4 * width, gen)
            _linear(sd, f"{layer}.ffn.{way}.fc2", width, 4 * width, gen)
            _norm(sd, f"{layer}.final_layer_norm.{way}", width, gen)
    for way in "AB":
        _norm(sd, f"{prefix}.layer_norm.{way}", width, gen)


def original_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights with the key names of Ant's ``VLMo`` (test_only, ITC) and :data:`TINY`'s shapes."""
    gen = torch.Generator().manual_seed(seed)
    width, out, patch = TINY["encoder_embed_dim"], TINY["out_embed_dim"], TINY["patch_size"]
    patches = (TINY["image_size"] // patch) ** 2
    sd = {
        "backbone.text_embed.weight": torch.randn(TINY["vocab_size"], width, generator=gen) * 0.5,
        "backbone.vision_embed.proj.weight": torch.randn(width, 3, patch, patch, generator=gen) / (2 * patch),
        "backbone.vision_embed.proj.bias": torch.randn(width, generator=gen) * 0.1,
        "backbone.vision_embed.mask_token": torch.randn(1, 1, width, generator=gen),
        "backbone.vision_embed.cls_token": torch.randn(1, 1, width, generator=gen) * 0.5,
        "backbone.encoder.embed_positions.A.weight": torch.randn(patches + 3, width, generator=gen) * 0.5,
        "backbone.encoder.embed_positions.B.weight": torch.randn(1024, width, generator=gen) * 0.5,
        "logit_scale": torch.tensor(4.6),
        "logit_vl_scale": torch.tensor(4.5),
    }
    _encoder(sd, "backbone.encoder", TINY["encoder_layers"], width, gen)
    _encoder(sd, "backbone_vl", TINY["beit3_vl_layers"], width, gen)
    _norm(sd, "norm", width, gen)
    _linear(sd, "pooler.dense", width, width, gen)
    for head in ("itc_text_proj", "itc_image_proj", "itc_vl_text_proj", "itc_vl_image_proj"):
        _linear(sd, f"{head}.fc", out, width, gen, bias=False)
    return sd


def _ln(x: torch.Tensor, sd: dict, key: str, eps: float = 1e-5) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], sd[f"{key}.weight"], sd[f"{key}.bias"], eps)


def _lin(x: torch.Tensor, sd: dict, key: str) -> torch.Tensor:
    return F.linear(x, sd[f"{key}.weight"], sd.get(f"{key}.bias"))


def reference_encoder(sd: dict, prefix: str, x: torch.Tensor, way: str, padding: torch.Tensor | None) -> torch.Tensor:
    """torchscale's ``Encoder`` layers and final ``layer_norm``, one expert for the whole sequence."""
    heads = TINY["encoder_attention_heads"]
    batch, length, width = x.shape
    for i in range(TINY["encoder_layers"] if prefix == "backbone.encoder" else TINY["beit3_vl_layers"]):
        layer = f"{prefix}.layers.{i}"
        h = _ln(x, sd, f"{layer}.self_attn_layer_norm.{way}")
        q, k, v = (
            _lin(h, sd, f"{layer}.self_attn.{p}.{way}").view(batch, length, heads, -1).transpose(1, 2)
            for p in ("q_proj", "k_proj", "v_proj")
        )
        scores = (q * (width // heads) ** -0.5) @ k.transpose(-1, -2)
        if padding is not None:
            scores = scores.masked_fill(padding[:, None, None, :], float("-inf"))
        attn = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, length, width)
        x = x + _lin(_ln(attn, sd, f"{layer}.self_attn.inner_attn_ln.{way}"), sd, f"{layer}.self_attn.out_proj.{way}")
        h = F.gelu(_lin(_ln(x, sd, f"{layer}.final_layer_norm.{way}"), sd, f"{layer}.ffn.{way}.fc1"))
        x = x + _lin(_ln(h, sd, f"{layer}.ffn.{way}.ffn_layernorm"), sd, f"{layer}.ffn.{way}.fc2")
    return _ln(x, sd, f"{prefix}.layer_norm.{way}")


def reference_image(sd: dict, images: torch.Tensor) -> torch.Tensor:
    """``infer_image``'s ``cls_vlffn_feats`` before the L2 norm: inception normalise, vision experts throughout."""
    x = F.conv2d((images - 0.5) / 0.5, sd["backbone.vision_embed.proj.weight"], sd["backbone.vision_embed.proj.bias"],
                 stride=TINY["patch_size"]).flatten(2).transpose(1, 2)  # fmt: skip
    x = torch.cat([sd["backbone.vision_embed.cls_token"].expand(len(x), -1, -1), x], dim=1)
    x = x + sd["backbone.encoder.embed_positions.A.weight"][2 : 2 + x.shape[1]]
    x = reference_encoder(sd, "backbone.encoder", x, "A", None)
    x = reference_encoder(sd, "backbone_vl", x, "A", None)
    return x[:, 0] @ sd["itc_vl_image_proj.fc.weight"].T


def reference_text(sd: dict, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``infer_text``'s ``cls_vlffn_feats``: language experts in ``backbone``, vision experts in ``backbone_vl``."""
    padding = mask == 0
    keep = mask.unsqueeze(-1).float()
    x = sd["backbone.text_embed.weight"][ids] + sd["backbone.encoder.embed_positions.B.weight"][2 : 2 + ids.shape[1]]
    x = reference_encoder(sd, "backbone.encoder", x * keep, "B", padding)
    x = reference_encoder(sd, "backbone_vl", x * keep, "A", padding)
    return x[:, 0] @ sd["itc_vl_text_proj.fc.weight"].T


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """(spec, original state dict, folder): config .json, Lightning .ckpt and sp.model of a tiny M²-Encoder."""
    folder = tmp_path_factory.mktemp("m2")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCES),
        model_prefix=str(folder / "sp"),
        vocab_size=60,
        user_defined_symbols=["[CLS]", "<|blank_3|>"],
        hard_vocab_limit=False,
        minloglevel=2,
    )
    (folder / "Encoder_tiny.json").write_text(json.dumps(TINY))
    sd = original_state_dict()
    checkpoint = {
        "state_dict": {**sd, "visual_tokenizer.quantize.embedding.weight": torch.zeros(4, 2)},
        "epoch": 3,
        "hyper_parameters": HyperParameters(dict(TINY)),
    }
    torch.save(checkpoint, folder / "m2_encoder_tiny.ckpt")
    spec = (
        f"m2-encoder:{folder / 'Encoder_tiny.json'}:{folder / 'm2_encoder_tiny.ckpt'}?tokenizer={folder / 'sp.model'}"
    )
    return spec, sd, folder


def test_original_checkpoint_round_trips_and_matches_the_reference_forward(files) -> None:
    spec, sd, _ = files
    backbone = load_backbone(spec)
    loaded = backbone.model.state_dict()
    assert set(loaded) == set(sd)  # no missing, no unexpected (the visual tokenizer is dropped)
    assert all(torch.equal(loaded[k], v) for k, v in sd.items())
    assert set(backbone.state_dict()) == {f"model.{k}" for k in sd}  # the vision view adds no second copy
    assert backbone.info["num_params"] == sum(v.numel() for v in sd.values())
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    tokens = backbone.tokenizer(["a photo of a red square", "a fox", "red"])
    assert tokens["attention_mask"][1].sum() < 12  # padded prompts exercise the key padding mask
    with torch.no_grad():
        torch.testing.assert_close(backbone.encode_image(images), reference_image(sd, images))
        torch.testing.assert_close(
            backbone.encode_text(tokens), reference_text(sd, tokens["input_ids"], tokens["attention_mask"])
        )


def test_tokenizer_is_glm_as_m2_encoder_calls_it(files) -> None:
    spec, _, folder = files
    tokenizer = load_backbone(spec).tokenizer
    sp = spm.SentencePieceProcessor(model_file=str(folder / "sp.model"))
    size = sp.GetPieceSize()
    cls, eos, mask = sp.PieceToId("[CLS]"), size, size + 1  # [CLS] is a piece; the others come after the vocab

    def pieces(text: str) -> list[int]:
        return [sp.PieceToId(p) for p in sp.EncodeAsPieces(text)]

    short = tokenizer(["a red fox"])
    body = pieces("a red fox")
    assert short["input_ids"][0].tolist() == [cls, *body, eos] + [eos] * (12 - len(body) - 2)
    assert short["attention_mask"][0].tolist() == [1] * (len(body) + 2) + [0] * (12 - len(body) - 2)
    long_text = "the quick brown fox jumps on the grass"
    assert tokenizer([long_text])["input_ids"][0].tolist() == [cls, *pieces(long_text)[-10:], eos]  # left cut
    blanks = [cls, *pieces("a<|blank_3|>b"), eos]  # three spaces are one <|blank_3|> piece
    assert sp.PieceToId("<|blank_3|>") in blanks
    assert tokenizer(["a   b"])["input_ids"][0, : len(blanks)].tolist() == blanks
    special = [cls, *pieces("red"), mask, *pieces("fox"), eos]  # kept whole, the spaces next to it stripped
    assert tokenizer(["red [MASK] fox"])["input_ids"][0, : len(special)].tolist() == special
    assert len(tokenizer) == size + 2


def test_preprocessing_is_ants_square_transform(files) -> None:
    backbone = load_backbone(files[0])
    published = transforms.Compose([
        transforms.Resize((32, 32), interpolation=InterpolationMode.BICUBIC),
        transforms.ToTensor(),
    ])  # fmt: skip
    rng = np.random.default_rng(0)
    for size in ((61, 40), (33, 70), (32, 32)):
        image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3)).astype(np.uint8), "RGB")
        assert torch.equal(backbone.preprocess(image), published(image))


def test_lr_tokens_attach_and_detach_on_the_image_path_only(files) -> None:
    backbone = load_backbone(files[0])
    layout = tower_layout(backbone)
    assert (layout.kind, layout.grid, layout.width, layout.num_blocks) == ("m2_encoder", (4, 4), 32, 3)
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    tokens_in = backbone.tokenizer(["a red square", "a blue circle"])
    with torch.no_grad():
        image_ref, text_ref = backbone.encode_image(images), backbone.encode_text(tokens_in)
        tokens = LRTokens(backbone)
        assert tokens.num_tokens == 16 * 4
        assert not torch.allclose(backbone.encode_image(images), image_ref)
        assert torch.equal(backbone.encode_text(tokens_in), text_ref)  # the text shares the layers, not the tokens
        with tokens.disabled():
            assert torch.equal(backbone.encode_image(images), image_ref)
        tokens.detach()
        assert torch.equal(backbone.encode_image(images), image_ref)


def test_copies_pickles_and_bf16_keep_the_image_path_on_their_own_model(files) -> None:
    backbone = load_backbone(files[0])
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        reference = backbone.encode_image(images)
        for other in (copy.deepcopy(backbone), pickle.loads(pickle.dumps(backbone))):
            assert other.visual.vision_embed is other.model.backbone.vision_embed
            assert torch.equal(other.encode_image(images), reference)
            assert torch.equal(other.tokenizer(["a fox"])["input_ids"], backbone.tokenizer(["a fox"])["input_ids"])
        half = load_backbone(files[0], precision="bf16")
        assert half.model.backbone.text_embed.weight.dtype == torch.bfloat16
        torch.testing.assert_close(half.encode_image(images).float(), reference, atol=0.05, rtol=0.05)


def test_deepspeed_prefix_and_a_smaller_position_grid_load_as_ants_loader_does(files, tmp_path) -> None:
    spec, sd, folder = files
    positions = "backbone.encoder.embed_positions.A.weight"
    table = sd[positions]  # 3 + 4x4 rows; a checkpoint trained on an 8x8 grid is cut, one on 2x2 "area"-resized
    wide = torch.cat([table, torch.randn(48, table.shape[1])])
    torch.save({"module": {f"_forward_module.{k}": (wide if k == positions else v) for k, v in sd.items()}},
               tmp_path / "deepspeed.pt")  # fmt: skip
    loaded = load_backbone(f"m2-encoder:{folder / 'Encoder_tiny.json'}:{tmp_path / 'deepspeed.pt'}?tokenizer=" + str(
        folder / "sp.model")).model.state_dict()  # fmt: skip
    assert torch.equal(loaded[positions], table)
    small = resize_vision_positions(table, 3 + 16)
    assert torch.equal(small, table)
    grown = resize_vision_positions(table[:7], 3 + 16)  # 2x2 -> 4x4: "area" repeats each row over a 2x2 block
    assert (
        torch.equal(grown[:3], table[:3])
        and torch.equal(grown[3 + 5], table[3])
        and torch.equal(grown[3 + 15], table[6])
    )


def test_two_resolution_benchmark_runs(files, tmp_path) -> None:
    from lr0fm.cli import main as cli_main

    out = tmp_path / "bench"
    args = ["benchmark", "--model", files[0], "--dataset", "toy-color", "--resolutions", "16", "hr"]
    assert cli_main([*args, "--workers", "0", "--output", str(out)]) == 0
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["resolution"] for r in rows} == {"16", "hr"}


@pytest.mark.parametrize(
    ("arch", "low", "high", "shape"),
    [
        ("M2-Encoder-0.4B", 0.25e9, 0.27e9, (768, 12, 9)),
        ("M2-Encoder-1B", 0.7e9, 0.75e9, (1024, 16, 21)),
        ("M2-Encoder-10B", 10.0e9, 10.3e9, (4096, 32, 21)),
    ],
)
def test_full_size_architectures_on_the_meta_device(arch, low, high, shape) -> None:
    model = build_m2_encoder(M2_ARCHS[arch], device="meta")
    assert low < sum(p.numel() for p in model.parameters()) < high
    dims = m2_dims(M2_ARCHS[arch])
    assert (dims["width"], dims["heads"], dims["layers"], dims["vl_layers"], dims["ffn"]) == (*shape, 3, 4 * shape[0])
    assert model.backbone.encoder.embed_positions.A.num_embeddings == 14 * 14 + 3
    assert model.backbone.text_embed.num_embeddings == 115244


def test_bad_inputs_are_clear_errors(files, tmp_path, monkeypatch) -> None:
    spec, sd, folder = files
    config, tokenizer = folder / "Encoder_tiny.json", folder / "sp.model"
    broken = dict(sd)
    broken.pop("norm.weight")
    broken["norm.scale"] = torch.ones(32)
    torch.save(broken, tmp_path / "broken.pt")
    with pytest.raises(ValueError, match=r"missing \['norm.weight'\].*unexpected \['norm.scale'\]"):
        load_backbone(f"m2-encoder:{config}:{tmp_path / 'broken.pt'}?tokenizer={tokenizer}")
    with pytest.raises(ValueError, match="Unknown M2-Encoder architecture 'M2-Encoder-2B'"):
        load_backbone("m2-encoder:M2-Encoder-2B:none")
    with pytest.raises(ValueError, match="Unknown option 'tokeniser'"):
        load_backbone(f"m2-encoder:{config}:none?tokeniser={tokenizer}")
    with pytest.raises(FileNotFoundError, match="tokenizer .*absent.model.* does not exist"):
        load_backbone(f"m2-encoder:{config}:none?tokenizer={tmp_path / 'absent.model'}")
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "modelscope", None)  # no download attempt, even where modelscope is installed
    for spec in ("M2-Encoder-0.4B", "m2-encoder:M2-Encoder-0.4B"):  # the paper name; the published file
        with pytest.raises(FileNotFoundError, match=r"m2_encoder_0\.4B\.ckpt.*modelscope\.cn/models/M2Cognition/M2-"):
            load_backbone(spec)
    with pytest.raises(FileNotFoundError, match="sp.model"):
        load_backbone(f"m2-encoder:{config}:none")


def test_paper_table_names_the_original_files() -> None:
    table = read_paper_backbones()
    for name, size in (("M2-Encoder-0.4B", "0.4B"), ("M2-Encoder-1B", "1B"), ("M2-Encoder-10B", "10B")):
        entry = table[name]
        assert not entry.get("needs_adapter")
        assert entry["spec"] == f"m2-encoder:{name}:m2_encoder_{size}.ckpt"
        assert entry["weights"]["file"] == M2_ARCHS[name]["model_file"] == f"m2_encoder_{size}.ckpt"
        assert M2_ARCHS[name]["modelscope"]["model_id"] in entry["weights"]["url"]
