"""Salesforce's original BLIP checkpoints (``model_base.pth``...) as ITC zero-shot backbones (spec ``blip:FILE``).

The LR0.FM authors evaluate the four pre-trained BLIP checkpoints through BLIP's ``blip_retrieval`` at 384 px
(``BLIP/zero_shot_classification.py`` and ``BLIP/configs/pretrained_*.yaml`` in shyammarjit/LR0.FM). This module
reads such a file and maps its key layout onto Hugging Face's ``BlipForImageTextRetrieval``, whose ITC heads
:class:`~lr0fm.models.blip_loader.BlipBackbone` already wraps:

* ``visual_encoder.*`` (BLIP's timm-derived ViT, salesforce/BLIP ``models/vit.py``) -> ``vision_model.*``:
  ``cls_token`` -> ``embeddings.class_embedding``, ``pos_embed`` -> ``embeddings.position_embedding``,
  ``patch_embed.proj`` -> ``embeddings.patch_embedding``, ``blocks.N.{norm1, norm2, attn.qkv, attn.proj,
  mlp.fc1, mlp.fc2}`` -> ``encoder.layers.N.{layer_norm1, layer_norm2, self_attn.qkv, self_attn.projection,
  mlp.fc1, mlp.fc2}``, ``norm`` -> ``post_layernorm`` (the renaming of transformers'
  ``convert_blip_original_pytorch_to_hf.py``).
* ``text_encoder.*`` (BLIP's ``models/med.py`` ``BertModel``: no pooler, cross-attention in every layer) keeps
  its names in ``BlipTextModel``; ``vision_proj``, ``text_proj`` and ``itm_head`` keep theirs.
* Dropped, as ITC does not use them (:data:`DROPPED_PREFIXES`, :data:`DROPPED_KEYS`): the momentum encoders
  ``*_m``, the queues, ``temp``, the captioning ``text_decoder`` and the ``position_ids`` buffer (rebuilt by
  transformers). Any other key is an error.

The converter keeps transformers' default vision LayerNorm eps (1e-5); this module uses BLIP's own 1e-6.
Sizes come from the tensor shapes (ViT-B/16 or ViT-L/16, BERT-base; attention heads are ``width // 64``, as
in BLIP's ``create_vit`` and ``configs/med_config.json``). As BLIP's ``load_checkpoint`` does with
``interpolate_pos_embed`` (``models/blip.py``, ``models/vit.py``), a position embedding pre-trained at another
grid (224 px: 14 x 14) is resized bicubically to the 384 px grid (24 x 24).

Preprocessing is the authors' test transform (``create_dataset_zero_shot`` in ``BLIP/data/__init__.py``):
``Resize((384, 384), bicubic)`` (no crop), RGB, ``ToTensor``, normalised with CLIP's mean/std. Text: BLIP's
``init_tokenizer`` (``bert-base-uncased`` plus the ``[DEC]`` bos token and the ``[ENC]`` special token), at
most 35 tokens; the text ITC embedding is ``text_proj`` of the unimodal text encoder's [CLS] output, the image
one ``vision_proj`` of the ViT's [CLS] output (the authors' ``zeroshot_classifier``/``evaluation``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.transform import PreprocessCfg

from lr0fm.models.base import Backbone, precision_dtype
from lr0fm.models.blip_loader import BlipBackbone, BlipTokenizer
from lr0fm.models.errors import weights_unavailable
from lr0fm.models.families import register_scheme
from lr0fm.models.seeding import seeded
from lr0fm.models.specs import SPEC_FORMS
from lr0fm.models.weights_files import (
    WEIGHTS_ENV,
    read_original_state_dict,
    resolve_weights_file,
    weights_folder_named,
)

#: Where Salesforce publishes the original checkpoints (salesforce/BLIP README; the authors' BLIP/model_info.md).
BLIP_URLS = {
    name: f"https://storage.googleapis.com/sfr-vision-language-research/BLIP/models/{name}"
    for name in ("model_base_14M.pth", "model_base.pth", "model_base_capfilt_large.pth", "model_large.pth")
}

#: ``blip_retrieval``'s input size in the authors' configs (``image_size: 384``).
BLIP_IMAGE_SIZE = 384

#: The tokenizer BLIP's ``init_tokenizer`` starts from (a hub id; ``?tokenizer=DIR`` passes a local copy).
DEFAULT_TOKENIZER = "bert-base-uncased"

#: Width of one attention head in BLIP's ViT-B/L and BERT-base (heads = width // 64).
HEAD_WIDTH = 64

#: Key prefixes of the original checkpoints that ITC zero-shot does not use: momentum encoders and the decoder.
DROPPED_PREFIXES = ("visual_encoder_m.", "text_encoder_m.", "vision_proj_m.", "text_proj_m.", "text_decoder.")

#: Keys that ITC zero-shot does not use: queues, temperature, and a buffer transformers rebuilds.
DROPPED_KEYS = (
    "image_queue",
    "text_queue",
    "idx_queue",
    "queue_ptr",
    "ptr_queue",
    "temp",
    "text_encoder.embeddings.position_ids",
)

_VISION_TOP = {
    "visual_encoder.cls_token": "vision_model.embeddings.class_embedding",
    "visual_encoder.pos_embed": "vision_model.embeddings.position_embedding",
    "visual_encoder.patch_embed.proj.weight": "vision_model.embeddings.patch_embedding.weight",
    "visual_encoder.patch_embed.proj.bias": "vision_model.embeddings.patch_embedding.bias",
    "visual_encoder.norm.weight": "vision_model.post_layernorm.weight",
    "visual_encoder.norm.bias": "vision_model.post_layernorm.bias",
}
_VISION_BLOCK = {
    "norm1": "layer_norm1",
    "norm2": "layer_norm2",
    "attn.qkv": "self_attn.qkv",
    "attn.proj": "self_attn.projection",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
_BLOCK_KEY = re.compile(r"^visual_encoder\.blocks\.(\d+)\.(norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.")
_KEPT_PREFIXES = ("text_encoder.", "vision_proj.", "text_proj.", "itm_head.")


def _require(state: Mapping[str, torch.Tensor], key: str, where: str) -> torch.Tensor:
    if key not in state:
        raise ValueError(
            f"{where} lacks {key!r}; expected an original BLIP checkpoint (visual_encoder.*, text_encoder.*, "
            "vision_proj, text_proj), e.g. model_base.pth."
        )
    return state[key]


def _heads(width: int, what: str) -> int:
    if width % HEAD_WIDTH:
        raise ValueError(f"BLIP {what} width {width} is not a multiple of the head width {HEAD_WIDTH}.")
    return width // HEAD_WIDTH


def _count(state: Mapping[str, torch.Tensor], pattern: str) -> int:
    found = re.compile(pattern)
    return len({m.group(1) for key in state if (m := found.match(key))})


def blip_config_from_state(
    state: Mapping[str, torch.Tensor], image_size: int = BLIP_IMAGE_SIZE, where: str = ""
) -> Any:
    """Infer the ``BlipConfig`` of an original BLIP state dict from its tensor shapes.

    Args:
        state: the original state dict.
        image_size: input size the model is built for (the authors: 384).
        where: the file name, for messages.

    Raises:
        ValueError: a required key is missing or a width does not split into 64-wide heads.

    """
    from transformers import BlipConfig

    where = where or "BLIP checkpoint"
    width = int(_require(state, "visual_encoder.cls_token", where).shape[-1])
    patch = int(_require(state, "visual_encoder.patch_embed.proj.weight", where).shape[-1])
    vocab, hidden = _require(state, "text_encoder.embeddings.word_embeddings.weight", where).shape
    cross_key = "text_encoder.encoder.layer.0.crossattention.self.key.weight"
    text_mlp = _require(state, "text_encoder.encoder.layer.0.intermediate.dense.weight", where)
    vision = {
        "hidden_size": width,
        "intermediate_size": int(_require(state, "visual_encoder.blocks.0.mlp.fc1.weight", where).shape[0]),
        "num_hidden_layers": _count(state, r"^visual_encoder\.blocks\.(\d+)\."),
        "num_attention_heads": _heads(width, "ViT"),
        "image_size": image_size,
        "patch_size": patch,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-6,  # BLIP's ViT: partial(nn.LayerNorm, eps=1e-6)
    }
    text = {
        "vocab_size": int(vocab),
        "hidden_size": int(hidden),
        "intermediate_size": int(text_mlp.shape[0]),
        "num_hidden_layers": _count(state, r"^text_encoder\.encoder\.layer\.(\d+)\."),
        "num_attention_heads": _heads(int(hidden), "text encoder"),
        "max_position_embeddings": int(
            _require(state, "text_encoder.embeddings.position_embeddings.weight", where).shape[0]
        ),
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
        "is_decoder": cross_key in state,  # builds the cross-attention modules the checkpoint holds
        "pad_token_id": 0,
        "bos_token_id": min(30522, int(vocab) - 1),
        "sep_token_id": min(102, int(vocab) - 1),
    }
    if cross_key in state and int(state[cross_key].shape[1]) != width:
        raise ValueError(f"{where}: text cross-attention width {state[cross_key].shape[1]} != ViT width {width}.")
    projection = int(_require(state, "vision_proj.weight", where).shape[0])
    return BlipConfig(text_config=text, vision_config=vision, image_text_hidden_size=projection)


def interpolate_position_embedding(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """Resize a ``[1, 1 + g*g, C]`` ViT position embedding to ``grid x grid`` patches (class token kept).

    Bicubic, ``align_corners=False``, as BLIP's ``interpolate_pos_embed`` (salesforce/BLIP ``models/vit.py``).
    """
    old = int(round((pos_embed.shape[1] - 1) ** 0.5))
    if old == grid:
        return pos_embed
    width = pos_embed.shape[-1]
    patches = pos_embed[:, 1:].reshape(1, old, old, width).permute(0, 3, 1, 2).float()
    patches = F.interpolate(patches, size=(grid, grid), mode="bicubic", align_corners=False)
    patches = patches.permute(0, 2, 3, 1).reshape(1, grid * grid, width).to(pos_embed.dtype)
    return torch.cat([pos_embed[:, :1], patches], dim=1)


def convert_blip_state_dict(
    state: Mapping[str, torch.Tensor], grid: int, where: str = ""
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map an original BLIP state dict onto ``BlipForImageTextRetrieval``'s keys.

    Args:
        state: the original state dict.
        grid: patch grid side the position embedding is resized to.
        where: the file name, for messages.

    Returns:
        The converted state dict and the (sorted) original keys that were dropped as unused by ITC.

    Raises:
        ValueError: keys that are neither mapped nor in the known dropped set (listed in the message).

    """
    converted: dict[str, torch.Tensor] = {}
    dropped, unknown = [], []
    for key, tensor in state.items():
        if key in _VISION_TOP:
            if key == "visual_encoder.pos_embed":
                tensor = interpolate_position_embedding(tensor, grid)
            converted[_VISION_TOP[key]] = tensor
        elif match := _BLOCK_KEY.match(key):
            index, part = match.groups()
            rest = key[match.end() :]
            converted[f"vision_model.encoder.layers.{index}.{_VISION_BLOCK[part]}.{rest}"] = tensor
        elif key in DROPPED_KEYS or key.startswith(DROPPED_PREFIXES):
            dropped.append(key)
        elif key.startswith(_KEPT_PREFIXES):
            converted[key] = tensor
        else:
            unknown.append(key)
    if unknown:
        shown = ", ".join(sorted(unknown)[:10]) + (" ..." if len(unknown) > 10 else "")
        raise ValueError(
            f"{where or 'BLIP checkpoint'} has {len(unknown)} key(s) that are not in BLIP's original layout: "
            f"{shown}. Expected visual_encoder.*, text_encoder.*, vision_proj, text_proj, itm_head and the "
            f"unused {', '.join(DROPPED_PREFIXES)}*, {', '.join(DROPPED_KEYS)}."
        )
    return converted, sorted(dropped)


def blip_preprocess_cfg(image_size: int = BLIP_IMAGE_SIZE) -> PreprocessCfg:
    """The authors' BLIP test transform: squash-resize to ``image_size`` (bicubic), CLIP mean/std."""
    return PreprocessCfg(
        size=image_size,
        mean=tuple(OPENAI_DATASET_MEAN),
        std=tuple(OPENAI_DATASET_STD),
        interpolation="bicubic",
        resize_mode="squash",
    )


def load_blip_tokenizer(source: str, cache_dir: str | None = None) -> Any:
    """BLIP's ``init_tokenizer``: a BERT tokenizer with ``[DEC]`` as bos token and ``[ENC]`` as special token.

    Args:
        source: a local tokenizer folder (``vocab.txt``...), a folder of that name in ``$LR0FM_WEIGHTS``, or a
            hub id (default ``bert-base-uncased``).
        cache_dir: Hugging Face download cache.

    Raises:
        WeightsUnavailableError: the tokenizer files could not be found or downloaded.

    """
    from transformers import BertTokenizer

    local = Path(source).expanduser()
    if not local.is_dir():
        local = weights_folder_named(source) or local
    try:
        tokenizer = BertTokenizer.from_pretrained(str(local) if local.is_dir() else source, cache_dir=cache_dir)
    except OSError as err:
        hint = (
            f"save the files of the {source!r} tokenizer (vocab.txt, tokenizer_config.json) to a folder and pass "
            f"'blip:FILE.pth?tokenizer=/that/folder' (or name it {source!r} inside a folder of ${WEIGHTS_ENV})."
        )
        raise weights_unavailable(f"tokenizer {source}", err, hint) from err
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tokenizer


def parse_blip_source(source: str, name: str) -> tuple[str, dict[str, str]]:
    """Split ``FILE[?key=value&...]`` into the file and its options (known: ``tokenizer``).

    Raises:
        ValueError: empty file, or an unknown or malformed option.

    """
    file, _, query = source.partition("?")
    options: dict[str, str] = {}
    for item in filter(None, query.split("&")):
        key, sep, value = item.partition("=")
        if not sep or key != "tokenizer" or not value:
            raise ValueError(
                f"Bad option {item!r} in spec {name!r}; the only option is 'tokenizer=DIR_OR_HUB_ID' "
                f"(e.g. 'blip:model_base.pth?tokenizer=/weights/bert-base-uncased')."
            )
        options[key] = value
    if not file:
        raise ValueError(f"Empty checkpoint after 'blip:' in spec {name!r}. {SPEC_FORMS}")
    return file, options


@register_scheme("blip")
def load_blip_pth(
    source: str,
    *,
    name: str,
    device: str = "cpu",
    seed: int | None = None,
    cache_dir: str | None = None,
    precision: str = "fp32",
) -> Backbone:
    """Load an original BLIP checkpoint as an ITC zero-shot backbone (spec ``blip:FILE[?tokenizer=SRC]``).

    Args:
        source: the checkpoint path, or a bare file name looked up in ``$LR0FM_WEIGHTS`` and the current
            directory (:func:`~lr0fm.models.weights_files.resolve_weights_file`), optionally followed by
            ``?tokenizer=DIR_OR_HUB_ID`` (default ``bert-base-uncased``).
        name: the spec string as given by the user.
        device: torch device.
        seed: seeds the initialisation of ``itm_head`` when the checkpoint has none (unused by ITC).
        cache_dir: Hugging Face cache for the tokenizer.
        precision: ``"fp32"``, ``"fp16"`` or ``"bf16"`` (weights are cast).

    Raises:
        ValueError: bad options or precision, or the file is not an original BLIP checkpoint.
        FileNotFoundError: the checkpoint file cannot be found (the message says where to download it).
        WeightsUnavailableError: the tokenizer could not be found or downloaded.

    """
    from transformers import BlipForImageTextRetrieval

    file, options = parse_blip_source(source, name)
    dtype = precision_dtype(precision, "BLIP")
    path = resolve_weights_file(file, url=BLIP_URLS.get(Path(file).name))
    state = read_original_state_dict(
        path, expected="Salesforce's original BLIP .pth, with 'visual_encoder.*' and 'text_encoder.*' keys"
    )
    config = blip_config_from_state(state, BLIP_IMAGE_SIZE, where=str(path))
    grid = BLIP_IMAGE_SIZE // config.vision_config.patch_size
    converted, dropped = convert_blip_state_dict(state, grid, where=str(path))
    tokenizer = load_blip_tokenizer(options.get("tokenizer", DEFAULT_TOKENIZER), cache_dir)
    if len(tokenizer) > config.text_config.vocab_size:
        raise ValueError(
            f"Tokenizer {options.get('tokenizer', DEFAULT_TOKENIZER)!r} has {len(tokenizer)} tokens with BLIP's "
            f"[DEC]/[ENC], more than the {config.text_config.vocab_size} word embeddings of {str(path)!r}."
        )
    with seeded(0 if seed is None else seed):  # no draw from the caller's RNG
        model = BlipForImageTextRetrieval(config)
    result = model.load_state_dict(converted, strict=False)
    missing = [key for key in result.missing_keys if not key.startswith("itm_head.")]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{str(path)!r} does not fit the BLIP model inferred from its shapes: missing {missing[:10]}, "
            f"unexpected {result.unexpected_keys[:10]}."
        )
    model = model.to(device=torch.device(device), dtype=dtype).eval()
    old_grid = int(round((state["visual_encoder.pos_embed"].shape[1] - 1) ** 0.5))
    info = {
        "loader": "blip-original",
        "arch": type(model).__name__,
        "tag": str(path),
        "vit": {768: "base", 1024: "large"}.get(config.vision_config.hidden_size, "custom"),
        "pos_embed_grid": [old_grid, grid],
        "dropped_keys": len(dropped),
        "itm_head_loaded": not result.missing_keys,
        "seed": seed,
        "precision": precision,
    }
    backbone = BlipBackbone(name, model, blip_preprocess_cfg(BLIP_IMAGE_SIZE), BlipTokenizer(tokenizer), dtype, info)
    backbone.info.update(image_size=backbone.image_size, num_params=backbone.num_params)
    return backbone.to(device)
