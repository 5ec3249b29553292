"""ALBEF image-text contrastive (ITC) backbones from the original checkpoint files (spec ``albef:FILE``).

Spec form: ``albef:PATH[?tokenizer=TOKENIZER&image_size=N]``

* ``PATH``: an original ALBEF checkpoint, e.g. ``ALBEF_4M.pth``, ``ALBEF.pth`` (14M) or the retrieval
  fine-tunes ``albef_coco_retrieval_lavis.pt`` / ``albef_flickr_retrieval_lavis.pt`` (ALBEF's own
  ``mscoco.pth`` / ``flickr30k.pth`` have the same layout). A relative path that does not exist in the current
  directory is looked up in each directory of ``$LR0FM_WEIGHTS`` (``os.pathsep``-separated).
* ``tokenizer``: the BERT tokenizer, a Hugging Face hub id or a local directory holding ``vocab.txt``
  (default ``bert-base-uncased``, as the authors' ``--text_encoder``). A hub id for which a directory of that
  name exists in a ``$LR0FM_WEIGHTS`` directory (e.g. ``$LR0FM_WEIGHTS/bert-base-uncased/vocab.txt``) is read
  from there, so the paper table's specs load offline.
* ``image_size``: input resolution (default 384, ``image_res`` of ALBEF's ``configs/Retrieval_*.yaml``);
  the checkpoint's position embedding is resized to it as ALBEF's ``interpolate_pos_embed`` does.

Example: ``albef:/weights/ALBEF_4M.pth?tokenizer=/weights/bert-base-uncased``.

The model follows the LR0.FM authors' ``ALBEF/zero_shot_classification.py`` (repository shyammarjit/LR0.FM),
which builds ALBEF's ``models/model_retrieval.py`` and classifies by ITC similarity:

* image: ``vision_proj(visual_encoder(images)[:, 0, :])``, where ``visual_encoder`` is ALBEF's timm-derived
  ``models/vit.py`` ViT-B/16 (qkv bias, LayerNorm eps 1e-6, final ``norm``, no head); built here as a timm
  ``VisionTransformer`` with the same parameter names;
* text: ``text_proj(text_encoder(ids, mask, mode='text').last_hidden_state[:, 0, :])``; ALBEF's ``xbert.py``
  runs only the layers below ``fusion_layer`` (6) in ``mode='text'``, which have no cross-attention, so the
  text tower here is a Hugging Face ``BertModel`` with those layers only (``add_pooling_layer=False``);
* prompts are tokenised with ``padding='max_length', truncation=True, max_length=35`` (the script's
  ``zeroshot_classifier``); per-prompt normalisation and the template mean are the benchmark's, as in CLIP;
* preprocessing: ``ALBEF/data/__init__.py: create_dataset_zero_shot``, i.e. ``Resize((384, 384), BICUBIC)``,
  ``ToTensor`` and CLIP's mean/std (open_clip ``resize_mode="squash"``).

Sizes (widths, depths, patch size, grid, vocabulary, projection width, fusion layer) are read from the
checkpoint's tensor shapes; heads are ``width // 64`` as in ViT-B and BERT-base. Checkpoint parts that ITC does
not use (momentum encoders, queues, ``itm_head``, ``temp``, the MLM head ``text_encoder.cls``, the fusion
layers) are dropped by name; any other key that does not fit is an error naming it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import torch
from open_clip.transform import PreprocessCfg
from torch import nn

from lr0fm.models.base import Backbone, precision_dtype
from lr0fm.models.blip_loader import BlipBackbone
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

#: Text length of the authors' zero-shot prompts (``max_length=35``, padded to it).
ALBEF_MAX_TEXT_LENGTH = 35
#: ``image_res`` of ALBEF's retrieval configs, at which the authors ran every ALBEF checkpoint.
ALBEF_IMAGE_SIZE = 384
#: The authors' ``--text_encoder`` default: BERT's uncased WordPiece tokenizer.
ALBEF_TOKENIZER = "bert-base-uncased"
#: CLIP's normalisation, used by the authors' ALBEF test transform.
ALBEF_MEAN = (0.48145466, 0.4578275, 0.40821073)
ALBEF_STD = (0.26862954, 0.26130258, 0.27577711)

#: The original checkpoint files the authors used (``ALBEF/checkpoints/download.sh``) and where to get them.
ALBEF_CHECKPOINTS = {
    "ALBEF_4M.pth": "https://storage.googleapis.com/sfr-pcl-data-research/ALBEF/ALBEF_4M.pth",
    "ALBEF.pth": "https://storage.googleapis.com/sfr-pcl-data-research/ALBEF/ALBEF.pth",
    "albef_coco_retrieval_lavis.pt": (
        "https://storage.googleapis.com/sfr-vision-language-research/LAVIS/models/ALBEF/albef_coco_retrieval_lavis.pt"
    ),
    "albef_flickr_retrieval_lavis.pt": (
        "https://storage.googleapis.com/sfr-vision-language-research/LAVIS/models/ALBEF/albef_flickr_retrieval_lavis.pt"
    ),
}

#: Checkpoint keys ITC zero-shot does not use, dropped by prefix (training-only or fusion parts).
DROPPED_PREFIXES = (
    "visual_encoder_m.",  # momentum copies (momentum distillation)
    "text_encoder_m.",
    "vision_proj_m.",
    "text_proj_m.",
    "itm_head.",  # image-text matching head (on fused features)
    "text_encoder.cls.",  # masked-language-model head of the pre-training checkpoints
    "text_encoder.pooler.",  # BERT pooler (ALBEF builds BERT with add_pooling_layer=False)
)
#: Exact keys dropped: feature queues, queue pointer, temperature, the position-id buffer.
DROPPED_KEYS = (
    "image_queue",
    "text_queue",
    "idx_queue",
    "queue_ptr",
    "temp",
    "text_encoder.embeddings.position_ids",
)

#: What an ALBEF checkpoint file holds (for messages).
EXPECTED_FILE = (
    "an original ALBEF/LAVIS checkpoint with 'visual_encoder.*', 'text_encoder.*', 'vision_proj.*' and "
    "'text_proj.*' keys"
)
_HEAD_DIM = 64
_LAYER_KEY = re.compile(r"^text_encoder\.encoder\.layer\.(\d+)\.")
_BLOCK_KEY = re.compile(r"^visual_encoder\.blocks\.(\d+)\.")


def albef_preprocess_config(image_size: int = ALBEF_IMAGE_SIZE) -> PreprocessCfg:
    """ALBEF's zero-shot test transform: bicubic squash resize to ``image_size``, CLIP mean/std."""
    return PreprocessCfg(
        size=int(image_size), mean=ALBEF_MEAN, std=ALBEF_STD, interpolation="bicubic", resize_mode="squash"
    )


def interpolate_pos_embed(pos_embed: torch.Tensor, grid: int, num_extra_tokens: int = 1) -> torch.Tensor:
    """Resize a ``[1, extra + g*g, C]`` position embedding to ``grid x grid`` (ALBEF's ``interpolate_pos_embed``).

    The extra (class) tokens are kept; the patch positions are resized bicubically (``align_corners=False``).
    """
    old = int(round((pos_embed.shape[1] - num_extra_tokens) ** 0.5))
    if old == grid:
        return pos_embed
    extra, patches = pos_embed[:, :num_extra_tokens], pos_embed[:, num_extra_tokens:]
    patches = patches.reshape(1, old, old, -1).permute(0, 3, 1, 2)
    patches = torch.nn.functional.interpolate(patches.float(), size=(grid, grid), mode="bicubic", align_corners=False)
    patches = patches.to(pos_embed.dtype).permute(0, 2, 3, 1).flatten(1, 2)
    return torch.cat((extra, patches), dim=1)


def split_spec(rest: str) -> tuple[str, dict[str, str]]:
    """Split ``PATH[?key=value&...]`` into the path and its options (``tokenizer``, ``image_size``).

    Raises:
        ValueError: an empty path, a malformed option or an unknown option name.

    """
    path, sep, query = rest.partition("?")
    options: dict[str, str] = {}
    if sep:
        for item in query.split("&"):
            key, eq, value = item.partition("=")
            if not eq or not key or not value:
                raise ValueError(f"Malformed option {item!r} in 'albef:{rest}'; expected KEY=VALUE.")
            if key not in ("tokenizer", "image_size"):
                raise ValueError(f"Unknown option {key!r} in 'albef:{rest}'; known: 'tokenizer', 'image_size'.")
            options[key] = value
    if not path:
        raise ValueError(f"Empty checkpoint path in spec 'albef:{rest}'. {SPEC_FORMS}")
    return path, options


def resolve_checkpoint(path: str) -> Path:
    """Find a checkpoint as every original-file family does (:func:`lr0fm.models.weights_files.resolve_weights_file`).

    Raises:
        FileNotFoundError: not found; the message lists where it looked and, for the authors' files, the URL.

    """
    return resolve_weights_file(path, url=ALBEF_CHECKPOINTS.get(Path(path).name))


def split_state_dict(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str], int]:
    """Rename the text keys, pick the ITC part of an ALBEF state dict, and list what is dropped.

    Pre-training checkpoints hold the text encoder as ``text_encoder.bert.*`` (``BertForMaskedLM``), the
    retrieval ones as ``text_encoder.*``; both become ``text_encoder.*`` (the authors' script strips
    ``bert.`` likewise). The text layers from the first one with cross-attention (``fusion_layer``) on are
    dropped.

    Returns:
        The kept state dict, the dropped keys, and the number of text layers kept (``fusion_layer``).

    """
    renamed = {k.replace("text_encoder.bert.", "text_encoder.", 1): v for k, v in state.items()}
    layers = {int(m.group(1)) for k in renamed if (m := _LAYER_KEY.match(k))}
    fusion = [int(m.group(1)) for k in renamed if (m := _LAYER_KEY.match(k)) and ".crossattention." in k]
    fusion_layer = min(fusion) if fusion else (max(layers) + 1 if layers else 0)
    kept: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    for key, value in renamed.items():
        layer = _LAYER_KEY.match(key)
        if key in DROPPED_KEYS or key.startswith(DROPPED_PREFIXES) or (layer and int(layer.group(1)) >= fusion_layer):
            dropped.append(key)
        else:
            kept[key] = value
    return kept, dropped, fusion_layer


def _require(state: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in state:
        raise ValueError(f"ALBEF checkpoint lacks {key!r}; is it an ALBEF checkpoint (ALBEF_4M.pth, ALBEF.pth...)?")
    return state[key]


class AlbefITC(nn.Module):
    """The ITC part of ALBEF with the original parameter names (``visual_encoder``, ``text_encoder``, projections).

    Args:
        image_size: input resolution.
        vision: ``{"width", "depth", "patch_size", "mlp_dim"}`` of the ViT.
        text: ``{"hidden", "layers", "intermediate", "vocab_size", "max_positions", "type_vocab_size"}``.
        embed_dim: width of the shared ITC space.

    """

    def __init__(self, image_size: int, vision: Mapping[str, int], text: Mapping[str, int], embed_dim: int) -> None:
        super().__init__()
        from timm.models.vision_transformer import VisionTransformer
        from transformers import BertConfig, BertModel

        width = vision["width"]
        self.visual_encoder = VisionTransformer(
            img_size=image_size,
            patch_size=vision["patch_size"],
            embed_dim=width,
            depth=vision["depth"],
            num_heads=max(1, width // _HEAD_DIM),
            mlp_ratio=vision["mlp_dim"] / width,
            qkv_bias=True,
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
            num_classes=0,
            global_pool="token",
        )
        config = BertConfig(
            vocab_size=text["vocab_size"],
            hidden_size=text["hidden"],
            num_hidden_layers=text["layers"],
            num_attention_heads=max(1, text["hidden"] // _HEAD_DIM),
            intermediate_size=text["intermediate"],
            max_position_embeddings=text["max_positions"],
            type_vocab_size=text["type_vocab_size"],
            layer_norm_eps=1e-12,
            hidden_act="gelu",
        )
        self.text_encoder = BertModel(config, add_pooling_layer=False)
        self.vision_proj = nn.Linear(width, embed_dim)
        self.text_proj = nn.Linear(text["hidden"], embed_dim)

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor], image_size: int) -> AlbefITC:
        """Build the model with sizes read from an ITC state dict (the output of :func:`split_state_dict`)."""
        patch = _require(state, "visual_encoder.patch_embed.proj.weight")
        words = _require(state, "text_encoder.embeddings.word_embeddings.weight")
        vision = {
            "width": int(patch.shape[0]),
            "patch_size": int(patch.shape[-1]),
            "depth": len({int(m.group(1)) for k in state if (m := _BLOCK_KEY.match(k))}),
            "mlp_dim": int(_require(state, "visual_encoder.blocks.0.mlp.fc1.weight").shape[0]),
        }
        text = {
            "hidden": int(words.shape[1]),
            "vocab_size": int(words.shape[0]),
            "layers": len({int(m.group(1)) for k in state if (m := _LAYER_KEY.match(k))}),
            "intermediate": int(_require(state, "text_encoder.encoder.layer.0.intermediate.dense.weight").shape[0]),
            "max_positions": int(_require(state, "text_encoder.embeddings.position_embeddings.weight").shape[0]),
            "type_vocab_size": int(_require(state, "text_encoder.embeddings.token_type_embeddings.weight").shape[0]),
        }
        if image_size % vision["patch_size"]:
            raise ValueError(
                f"ALBEF image_size {image_size} is not a multiple of the patch size {vision['patch_size']}."
            )
        embed_dim = int(_require(state, "vision_proj.weight").shape[0])
        return cls(image_size, vision, text, embed_dim)


def load_albef_state(model: AlbefITC, state: Mapping[str, torch.Tensor]) -> None:
    """Load an ITC state dict strictly (position embedding resized to the model's grid).

    Raises:
        ValueError: keys missing from the checkpoint or left over, or shapes that do not fit, by name.

    """
    state = dict(state)
    key = "visual_encoder.pos_embed"
    if key in state:
        grid = model.visual_encoder.patch_embed.grid_size[0]
        state[key] = interpolate_pos_embed(state[key], grid, model.visual_encoder.num_prefix_tokens)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"ALBEF checkpoint does not fit the ITC model: missing {missing[:10]}{'...' if len(missing) > 10 else ''}"
            f", unexpected {unexpected[:10]}{'...' if len(unexpected) > 10 else ''} "
            f"({len(missing)} missing, {len(unexpected)} unexpected)."
        )
    wrong = [
        f"{k}: {tuple(v.shape)} vs {tuple(expected[k].shape)}" for k, v in state.items() if v.shape != expected[k].shape
    ]
    if wrong:
        raise ValueError(f"ALBEF checkpoint shapes do not fit the model: {wrong[:10]}.")
    model.load_state_dict(state, strict=True)


class AlbefTokenizer:
    """BERT WordPiece -> ``{"input_ids", "attention_mask"}`` padded to 35 tokens, as the authors' zero-shot code."""

    def __init__(self, tokenizer: Any, max_length: int = ALBEF_MAX_TEXT_LENGTH) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, texts: list[str]) -> Any:
        """Tokenise ``texts`` (``padding='max_length', truncation=True``): a ``BatchEncoding``."""
        from transformers import BatchEncoding

        encoded = self.tokenizer(
            list(texts), padding="max_length", truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return BatchEncoding({"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]})


def load_tokenizer(source: str, cache_dir: str | None) -> Any:
    """BERT tokenizer from a hub id or a local directory with ``vocab.txt``.

    Raises:
        FileNotFoundError: a local directory that does not exist.
        WeightsUnavailableError: the hub files could not be downloaded or found in the cache.

    """
    from transformers import BertTokenizer

    if source.startswith(("/", ".", "~")):
        folder = Path(source).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(
                f"ALBEF tokenizer directory {source!r} does not exist; expected a directory with BERT's vocab.txt "
                f"(e.g. a download of the hub repo {ALBEF_TOKENIZER!r})."
            )
        source = str(folder)
    else:
        local = weights_folder_named(source)
        source = str(local) if local else source
    try:
        return BertTokenizer.from_pretrained(source, cache_dir=cache_dir)
    except OSError as err:
        hint = (
            f"download {ALBEF_TOKENIZER!r} (vocab.txt, tokenizer_config.json) to a directory and add "
            f"'?tokenizer=/that/dir' to the albef: spec, or put it in ${WEIGHTS_ENV}/{ALBEF_TOKENIZER}/."
        )
        raise weights_unavailable(f"tokenizer {source}", err, hint) from err


def check_vocabulary(tokenizer: Any, model: AlbefITC, source: str) -> None:
    """Check that the tokenizer's vocabulary is the checkpoint's (ALBEF adds no tokens to BERT's).

    transformers may return a tokenizer holding only the special tokens when the files of a hub id are not
    found offline; its ids would silently be wrong, so a vocabulary that does not match is an error.

    Raises:
        ValueError: the tokenizer's size differs from the rows of the checkpoint's word embedding.

    """
    rows = model.text_encoder.embeddings.word_embeddings.num_embeddings
    if len(tokenizer) != rows:
        raise ValueError(
            f"ALBEF tokenizer {source!r} has {len(tokenizer)} tokens but the checkpoint's word embedding has {rows} "
            f"rows; expected BERT's vocabulary ({ALBEF_TOKENIZER!r}). If it was not found offline, download it "
            f"(vocab.txt) to a directory and add '?tokenizer=/that/dir' to the albef: spec, or put it in "
            f"${WEIGHTS_ENV}/{ALBEF_TOKENIZER}/."
        )


class AlbefBackbone(BlipBackbone):
    """ALBEF's ITC heads as a :class:`Backbone` (``model`` is :class:`AlbefITC`).

    The text side is BLIP's (its ITC heads descend from ALBEF's): ``text_proj`` of the unimodal BERT's [CLS]
    token. Image: ``vision_proj`` of the timm ViT's [CLS] token (after the final norm).
    """

    family = "albef"

    @property
    def visual(self) -> nn.Module:
        """The timm ViT image encoder (LR tokens attach here)."""
        return self.model.visual_encoder

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """ITC image embedding (unnormalised)."""
        pixels = images.to(device=self.device, dtype=self.dtype)
        return self.model.vision_proj(self.model.visual_encoder.forward_features(pixels)[:, 0, :])


@register_scheme("albef")
def load_albef(
    rest: str,
    *,
    name: str,
    device: str = "cpu",
    seed: int | None = None,
    cache_dir: str | None = None,
    precision: str = "fp32",
) -> Backbone:
    """Load an original ALBEF checkpoint as an ITC zero-shot backbone (spec ``albef:PATH[?options]``).

    Args:
        rest: ``PATH[?tokenizer=...&image_size=...]`` (see the module docstring).
        name: the spec string as given by the user.
        device: torch device.
        seed: seeds construction (every weight comes from the checkpoint).
        cache_dir: Hugging Face cache for the tokenizer.
        precision: ``"fp32"``, ``"fp16"`` or ``"bf16"`` (weights are cast).

    Raises:
        ValueError: a malformed spec, unknown precision, or a checkpoint that is not ALBEF's (keys named).
        FileNotFoundError: the checkpoint or a local tokenizer directory does not exist.
        WeightsUnavailableError: the tokenizer could not be downloaded or found in the cache.

    """
    path, options = split_spec(rest)
    dtype = precision_dtype(precision, "ALBEF")
    try:
        image_size = int(options.get("image_size", ALBEF_IMAGE_SIZE))
    except ValueError as err:
        raise ValueError(f"image_size in spec {name!r} is not an integer.") from err
    checkpoint = resolve_checkpoint(path)
    tokenizer = load_tokenizer(options.get("tokenizer", ALBEF_TOKENIZER), cache_dir)
    state, dropped, fusion_layer = split_state_dict(read_original_state_dict(checkpoint, expected=EXPECTED_FILE))
    with seeded(seed):
        model = AlbefITC.from_state_dict(state, image_size)
    check_vocabulary(tokenizer, model, options.get("tokenizer", ALBEF_TOKENIZER))
    load_albef_state(model, state)
    model = model.to(device=torch.device(device), dtype=dtype).eval()
    info = {
        "loader": "albef",
        "arch": "ALBEF-ITC",
        "tag": str(checkpoint),
        "seed": seed,
        "precision": precision,
        "text_layers": fusion_layer,
        "dropped_keys": len(dropped),
    }
    backbone = AlbefBackbone(name, model, albef_preprocess_config(image_size), AlbefTokenizer(tokenizer), dtype, info)
    backbone.info.update(image_size=backbone.image_size, num_params=backbone.num_params)
    return backbone.to(device)
