"""M²-Encoder (0.4B, 1B, 10B): Ant Group's bilingual BEiT-3-style encoders, loading the original checkpoint files.

Spec form ``m2-encoder:ARCH[:WEIGHTS][?tokenizer=SP_MODEL]``:

* ``ARCH``: ``M2-Encoder-0.4B``, ``M2-Encoder-1B`` or ``M2-Encoder-10B`` (:data:`M2_ARCHS`, translated from
  ``prj/M2_Encoder/configs/Encoder_{0.4B,1B,10B}.json`` of alipay/Ant-Multi-Modal-Framework), or the path of
  a config ``.json`` in that same format (``encoder_embed_dim``, ``encoder_layers``, ``beit3_vl_layers``,
  ``beit_version``, ``out_embed_dim``, ``vocab_size``, ...; the defaults are ``vlmo/config.py``'s).
* ``WEIGHTS``: the original checkpoint (``m2_encoder_0.4B.ckpt``, ``m2_encoder_1B.ckpt``,
  ``m2_encoder_10B.ckpt``: the ``model_file`` of those configs, published on ModelScope as
  ``M2Cognition/M2-Encoder``, ``M2Cognition/M2_Encoder_Large``, ``M2Cognition/M2_Encoder_Huge``); a bare
  file name is looked up in ``$LR0FM_WEIGHTS``, then the current directory. ``none`` builds random weights
  (seeded). Omitted: the published file name is looked up the same way, and where it is not there and the
  ``modelscope`` package is installed, it is downloaded as Ant's ``vlmo/utils/beit_utils.py:
  load_from_config`` does (``snapshot_download(model_id)``); otherwise the error names the file to fetch.
* ``tokenizer``: the GLM SentencePiece model ``sp.model`` (a file, or a folder holding it) of
  ``prj/M2_Encoder/vlmo/tokenizer/``. Default: ``sp.model`` beside the checkpoint, then a bare ``sp.model``
  looked up in ``$LR0FM_WEIGHTS`` (random weights need the option or ``$LR0FM_WEIGHTS``).

Example: ``m2-encoder:M2-Encoder-0.4B:m2_encoder_0.4B.ckpt?tokenizer=/weights/M2_Encoder/sp.model``.

Architecture (:class:`M2EncoderModel`, written here with the original key names; Ant's code is
``vlmo/modules/vlmo_module.py`` over the BEiT-3 ``vlmo/torchscale``). ``backbone`` is BEiT-3: a ``text_embed``
table, a ``vision_embed`` (16 px patch conv ``proj``, ``cls_token``, ``mask_token``) and an ``encoder`` of
multiway pre-norm layers: every linear and norm is a pair ``A`` (vision expert) / ``B`` (language expert);
each layer is ``x + out_proj(inner_attn_ln(attn(self_attn_layer_norm(x))))`` then
``x + fc2(ffn_layernorm(gelu(fc1(final_layer_norm(x)))))`` (torchscale's ``subln``; LayerNorm eps 1e-5), with
a final multiway ``layer_norm``. Position embeddings are a multiway pair of tables whose rows start at 2
(fairseq): ``A`` for the class token and patches, ``B`` (1024 rows) for text. ``backbone_vl`` is 3 more such
layers. Zero-shot classification uses ``cls_vlffn_feats`` (Ant's ``m2_encoder.py`` and the LR0.FM authors'
``M2_Encoder/m2_encoder.py``):

* image: ``itc_vl_image_proj(backbone_vl(backbone(x, A), A)[:, 0])`` with ``x = (pixels - 0.5) / 0.5``
  (``inception_normalize`` inside ``infer_image``);
* text: ``itc_vl_text_proj(backbone_vl(backbone(ids, B), A)[:, 0])``: the text runs through the language
  experts in ``backbone`` and, as in Ant's ``infer_text`` (``multiway_split_position=-1``), through the
  *vision* experts ``A`` of ``backbone_vl``; padded positions are zeroed and masked as keys.

``norm``, ``pooler``, ``itc_text_proj``, ``itc_image_proj``, ``logit_scale``, ``logit_vl_scale`` and the unused
experts are kept so that the checkpoint loads strictly (missing or unexpected keys are an error naming them;
only ``visual_tokenizer.*`` and ``itc_teacher*``, training-only parts that Ant's ``test_only`` model lacks too,
are dropped). Ant loads non-strictly (``strict=False``, printing what did not match); lr0fm refuses instead.
Mixed image+text sequences (ITM, MLM) are not implemented: zero-shot needs only the two unimodal paths.

Tokenizer (:class:`GlmTokenizer`): Ant's ``vlmo/tokenizer/tokenization_glm.py: GLMChineseTokenizer`` under the
transformers 4.17 its ``requirements.txt`` pins: runs of 2-10 spaces become ``<|blank_N|>``, SentencePiece
pieces -> ids, ``[CLS] ... <|endoftext|>``, truncation from the *left* (``truncation_side = "left"``) and
padding with ``<|endoftext|>`` to ``max_text_len`` = 52 (``vlmo/config.py``); special-token strings in the text
stay whole. A special token the SentencePiece model does not hold gets the next id after it, in transformers'
order (eos, unk excluded, cls, mask), as 4.17's ``sanitize_special_tokens`` gives it.

Preprocessing: Ant's ``square_transform`` (``vlmo/transforms/square_transform.py``), ``Resize((224, 224),
BICUBIC)`` + ``ToTensor`` and no normalisation (the LR0.FM chain ``m2-encoder``, ``M2_Encoder/data/__init__.py``);
the model normalises inside :meth:`M2EncoderBackbone.encode_image` as ``infer_image`` does.

LR tokens: :attr:`M2EncoderBackbone.visual` is a view of the image path (:class:`M2VisionTower`) whose
``blocks`` wrap the shared multiway layers, so tokens hooked on them act on images only, never on text that
runs through the same layers. The tower adapter is ``"m2_encoder"`` in :mod:`lr0fm.lrtk0.towers`.

Memory and precision. Parameters (counted on the ``meta`` device): 0.4B about 0.26e9 (the 9+3-layer width-768
model of ``Encoder_0.4B.json``; the name is Ant's), 1B about 0.72e9, 10B about 10.1e9. Ant's executor
(``m2_encoder.py``), which the LR0.FM authors' script calls, runs the model in fp32 whatever the config's
``precision``: the 10B then needs 40 GB for the weights alone (one 80 GB GPU). ``--precision bf16`` halves that
to 20 GB (weights and inputs are cast; the model is built directly on the target device in that dtype and the
file is memory-mapped), at the cost of bf16 rounding the authors' numbers do not have.

Not verified here (no network, no GPU): loading the published files. The key layout and shapes are those of
Ant's module tree; a wrong guess shows as a strict-load error naming the keys. Compare the zero-shot accuracy
with the published one on first use.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from open_clip.transform import PreprocessCfg
from torch import nn

from lr0fm.models.base import Backbone, precision_dtype
from lr0fm.models.errors import weights_unavailable
from lr0fm.models.families import register_scheme
from lr0fm.models.seeding import seeded
from lr0fm.models.specs import RANDOM_TAG, SPEC_FORMS
from lr0fm.models.weights_files import WEIGHTS_ENV, read_original_state_dict, resolve_weights_file

#: Multiway expert index: ``A`` (vision) and ``B`` (language).
VISION, LANGUAGE = 0, 1
#: Rows of the text position table (torchscale ``max_source_positions``) and the first position (fairseq).
TEXT_POSITIONS, POSITION_OFFSET = 1024, 2
#: Heads per ``beit_version`` when a config does not name them (``vlmo/modules/modeling_utils.py``).
VERSION_HEADS = {"base": 12, "large": 16, "huge": 32}
#: What an M²-Encoder checkpoint file holds (for messages).
EXPECTED_FILE = "an original M2-Encoder checkpoint (backbone.*, backbone_vl.*, itc_*_proj.*, logit_scale)"
#: Where Ant publishes the tokenizer model.
SP_MODEL_URL = "https://github.com/alipay/Ant-Multi-Modal-Framework/raw/main/prj/M2_Encoder/vlmo/tokenizer/sp.model"
#: Checkpoint parts that only training uses (dropped by prefix).
TRAINING_ONLY = ("visual_tokenizer.", "itc_teacher")

#: Architecture name -> the fields of Ant's ``configs/Encoder_*.json`` (with ModelScope id and file).
M2_ARCHS: dict[str, dict[str, Any]] = {
    "M2-Encoder-0.4B": {
        "encoder_layers": 9,
        "beit3_vl_layers": 3,
        "vocab_size": 115244,
        "modelscope": {"model_id": "M2Cognition/M2-Encoder"},
        "model_file": "m2_encoder_0.4B.ckpt",
    },
    "M2-Encoder-1B": {
        "beit_version": "large",
        "encoder_embed_dim": 1024,
        "out_embed_dim": 1024,
        "encoder_layers": 21,
        "beit3_vl_layers": 3,
        "image_size": 224,
        "vocab_size": 115244,
        "modelscope": {"model_id": "M2Cognition/M2_Encoder_Large"},
        "model_file": "m2_encoder_1B.ckpt",
    },
    "M2-Encoder-10B": {
        "beit_version": "huge",
        "encoder_embed_dim": 4096,
        "out_embed_dim": 1024,
        "encoder_layers": 21,
        "beit3_vl_layers": 3,
        "image_size": 224,
        "vocab_size": 115244,
        "modelscope": {"model_id": "M2Cognition/M2_Encoder_Huge"},
        "model_file": "m2_encoder_10B.ckpt",
    },
}


def m2_dims(config: Mapping[str, Any]) -> dict[str, int]:
    """Model sizes of an Ant config (``configs/*.json``), with ``vlmo/config.py``'s defaults.

    Raises:
        ValueError: an unknown ``beit_version``.

    """
    version = config.get("beit_version", "base")
    if version not in VERSION_HEADS:
        raise ValueError(f"M2-Encoder config has beit_version {version!r}; expected one of {sorted(VERSION_HEADS)}.")
    width = int(config.get("encoder_embed_dim", 768))
    return {
        "width": width,
        "heads": int(config.get("encoder_attention_heads", VERSION_HEADS[version])),
        "layers": int(config.get("encoder_layers", 12)),
        "vl_layers": int(config.get("beit3_vl_layers", 3)),
        "ffn": int(width * config.get("mlp_ratio", 4)),
        "out": int(config.get("out_embed_dim", 768)),
        "vocab": int(config.get("vocab_size", 21128)),
        "image_size": int(config.get("image_size", 224)),
        "patch_size": int(config.get("patch_size", 16)),
        "max_text_len": int(config.get("max_text_len", 52)),
    }


class Multiway(nn.Module):
    """Two copies of a module: ``A`` for the vision expert, ``B`` for the language expert (torchscale's layout)."""

    def __init__(self, a: nn.Module, b: nn.Module) -> None:
        super().__init__()
        self.A = a
        self.B = b

    def forward(self, x: torch.Tensor, way: int) -> torch.Tensor:
        """Apply the expert ``way`` (:data:`VISION` or :data:`LANGUAGE`) to the whole sequence."""
        return self.A(x) if way == VISION else self.B(x)


def _norms(width: int, eps: float = 1e-5) -> Multiway:
    return Multiway(nn.LayerNorm(width, eps=eps), nn.LayerNorm(width, eps=eps))


def _linears(width: int) -> Multiway:
    return Multiway(nn.Linear(width, width), nn.Linear(width, width))


class FeedForward(nn.Module):
    """``fc2(ffn_layernorm(gelu(fc1(x))))`` (torchscale ``FeedForwardNetwork`` with sub-LN)."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)
        self.ffn_layernorm = nn.LayerNorm(hidden, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        return self.fc2(self.ffn_layernorm(F.gelu(self.fc1(x))))


class MultiwayAttention(nn.Module):
    """Multi-head self-attention with multiway ``q/k/v/out_proj`` and the sub-LN ``inner_attn_ln``."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (_linears(width) for _ in range(4))
        self.inner_attn_ln = _norms(width)

    def forward(self, x: torch.Tensor, way: int, padding: torch.Tensor | None = None) -> torch.Tensor:
        """Attend over ``x`` ``[B, L, C]``; ``padding`` ``[B, L]`` (true = padded) masks keys."""
        batch, length, width = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, self.heads, width // self.heads).transpose(1, 2)

        q, k, v = split(self.q_proj(x, way)), split(self.k_proj(x, way)), split(self.v_proj(x, way))
        mask = None if padding is None else ~padding.bool()[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = out.transpose(1, 2).reshape(batch, length, width)
        return self.out_proj(self.inner_attn_ln(out, way), way)


class EncoderLayer(nn.Module):
    """One pre-norm multiway transformer layer (torchscale ``EncoderLayer``, ``subln``, no deepnorm)."""

    def __init__(self, width: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.self_attn = MultiwayAttention(width, heads)
        self.self_attn_layer_norm = _norms(width)
        self.ffn = Multiway(FeedForward(width, hidden), FeedForward(width, hidden))
        self.final_layer_norm = _norms(width)

    def forward(self, x: torch.Tensor, way: int = VISION, padding: torch.Tensor | None = None) -> torch.Tensor:
        """Apply the layer with expert ``way``."""
        x = x + self.self_attn(self.self_attn_layer_norm(x, way), way, padding)
        return x + self.ffn(self.final_layer_norm(x, way), way)


class Encoder(nn.Module):
    """A stack of :class:`EncoderLayer` with a final multiway ``layer_norm`` (and, in BEiT-3, position tables)."""

    def __init__(self, dims: Mapping[str, int], layers: int, vision_positions: int | None = None) -> None:
        super().__init__()
        width = dims["width"]
        if vision_positions is not None:
            self.embed_positions = Multiway(
                nn.Embedding(vision_positions + POSITION_OFFSET, width), nn.Embedding(TEXT_POSITIONS, width)
            )
        self.layers = nn.ModuleList(EncoderLayer(width, dims["heads"], dims["ffn"]) for _ in range(layers))
        self.layer_norm = _norms(width)

    def positions(self, x: torch.Tensor, way: int) -> torch.Tensor:
        """Position embeddings of a ``[B, L, C]`` sequence (rows from 2 on)."""
        index = torch.arange(POSITION_OFFSET, x.shape[1] + POSITION_OFFSET, device=x.device)
        return self.embed_positions(index, way).unsqueeze(0)


class VisionEmbedding(nn.Module):
    """Patch embedding with a prepended class token (torchscale ``VisionEmbedding``; ``mask_token`` unused here)."""

    def __init__(self, image_size: int, patch_size: int, width: int) -> None:
        super().__init__()
        self.patch_shape = (image_size // patch_size, image_size // patch_size)
        self.proj = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))

    @property
    def num_positions(self) -> int:
        """Class token plus patches."""
        return self.patch_shape[0] * self.patch_shape[1] + 1

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` -> ``[B, 1 + patches, C]``."""
        x = self.proj(images).flatten(2).transpose(1, 2)
        return torch.cat([self.cls_token.expand(len(x), -1, -1).to(x.dtype), x], dim=1)


class BEiT3(nn.Module):
    """BEiT-3's embeddings and multiway encoder (torchscale ``BEiT3``), the ``backbone`` of M²-Encoder."""

    def __init__(self, dims: Mapping[str, int]) -> None:
        super().__init__()
        self.text_embed = nn.Embedding(dims["vocab"], dims["width"])
        self.vision_embed = VisionEmbedding(dims["image_size"], dims["patch_size"], dims["width"])
        self.encoder = Encoder(dims, dims["layers"], vision_positions=self.vision_embed.num_positions)


class ITCHead(nn.Module):
    """Bias-free projection ``fc`` (``vlmo/modules/heads.py``)."""

    def __init__(self, width: int, out: int) -> None:
        super().__init__()
        self.fc = nn.Linear(width, out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project."""
        return self.fc(x)


class Pooler(nn.Module):
    """``tanh(dense(x[:, 0]))``; kept for the checkpoint's keys (zero-shot does not use it)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.dense = nn.Linear(width, width)


class M2EncoderModel(nn.Module):
    """The modules of Ant's ``VLMo`` (test-only, ITC) with its parameter names; see the module docstring."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        dims = m2_dims(config)
        self.dims = dims
        self.backbone = BEiT3(dims)
        self.backbone_vl = Encoder(dims, dims["vl_layers"])
        self.norm = nn.LayerNorm(dims["width"], eps=1e-6)
        self.pooler = Pooler(dims["width"])
        for name in ("itc_text_proj", "itc_image_proj", "itc_vl_text_proj", "itc_vl_image_proj"):
            setattr(self, name, ITCHead(dims["width"], dims["out"]))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.logit_vl_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_text(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``cls_vlffn_feats`` before normalisation: language experts in ``backbone``, ``A`` in ``backbone_vl``."""
        padding = attention_mask == 0
        keep = attention_mask.unsqueeze(-1).to(self.backbone.text_embed.weight.dtype)
        encoder = self.backbone.encoder
        x = self.backbone.text_embed(ids)
        x = (x + encoder.positions(x, LANGUAGE)) * keep
        for layer in encoder.layers:
            x = layer(x, LANGUAGE, padding)
        x = encoder.layer_norm(x, LANGUAGE) * keep
        for layer in self.backbone_vl.layers:
            x = layer(x, VISION, padding)
        x = self.backbone_vl.layer_norm(x, VISION)
        return self.itc_vl_text_proj(x[:, 0])


class VisionBlock(nn.Module):
    """One shared multiway layer run with the vision expert: where LR tokens hook (images only)."""

    def __init__(self, layer: EncoderLayer) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer's vision expert."""
        return self.layer(x, VISION)


class M2VisionTower(nn.Module):
    """The image path of an :class:`M2EncoderModel` as a ViT tower (a view: it shares the model's modules).

    ``vision_embed.proj`` is the patch embedding, ``blocks`` the ``backbone`` layers then the ``backbone_vl``
    layers (each wrapped in :class:`VisionBlock`), one class token, no pre-block norm. The output is the
    image embedding ``itc_vl_image_proj(...[:, 0])`` of normalised pixels.
    """

    def __init__(self, model: M2EncoderModel) -> None:
        super().__init__()
        self.vision_embed = model.backbone.vision_embed
        self.blocks = nn.ModuleList(
            VisionBlock(layer) for layer in (*model.backbone.encoder.layers, *model.backbone_vl.layers)
        )
        self.num_backbone_blocks = len(model.backbone.encoder.layers)
        # not submodules: the view's parameters are the image path's, and the model's state dict stays Ant's
        self.__dict__["_model"] = model

    @property
    def positional_embedding(self) -> torch.Tensor:
        """Rows of the vision position table used by the class token and patches (``[1 + patches, C]``)."""
        return self._model.backbone.encoder.embed_positions.A.weight[POSITION_OFFSET:]

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Image embedding (unnormalised) of ``[B, 3, S, S]`` pixels already normalised to ``[-1, 1]``."""
        model = self._model
        x = self.vision_embed(pixels)
        x = x + model.backbone.encoder.positions(x, VISION)
        for index, block in enumerate(self.blocks):
            if index == self.num_backbone_blocks:
                x = model.backbone.encoder.layer_norm(x, VISION)
            x = block(x)
        x = model.backbone_vl.layer_norm(x, VISION)
        return model.itc_vl_image_proj(x[:, 0])


# ---------------------------------------------------------------------------------------------- tokenizer

_SPECIALS = {"eos": "<|endoftext|>", "unk": "[UNK]", "cls": "[CLS]", "mask": "[MASK]"}


def encode_whitespaces(text: str) -> str:
    """Runs of 10 down to 2 spaces -> ``<|blank_N|>`` (``tokenization_glm.py``)."""
    for n in range(10, 1, -1):
        text = text.replace(" " * n, f"<|blank_{n}|>")
    return text


class GlmTokenizer:
    """Ant's ``GLMChineseTokenizer`` as M²-Encoder calls it: ``{"input_ids", "attention_mask"}``, 52 tokens.

    Args:
        model_file: the SentencePiece model (``sp.model``).
        max_length: padded and truncated length (``max_text_len``).

    Raises:
        ValueError: the file is not a SentencePiece model.

    """

    def __init__(self, model_file: str | Path, max_length: int = 52) -> None:
        import sentencepiece as spm

        self.model_file = str(model_file)
        self.max_length = int(max_length)
        self.sp = spm.SentencePieceProcessor()
        try:
            self.sp.Load(self.model_file)
        except (OSError, RuntimeError) as err:
            raise ValueError(
                f"{self.model_file!r} is not a SentencePiece model ({err}); expected M2-Encoder's sp.model "
                f"({SP_MODEL_URL})."
            ) from err
        self.special_ids = self._special_ids()

    def _special_ids(self) -> dict[str, int]:
        """Ids of the special tokens: the piece's id, else appended after the vocabulary (transformers 4.17)."""
        unk_id = self.sp.PieceToId(_SPECIALS["unk"])
        ids, next_id = {}, self.sp.GetPieceSize()
        for name in ("eos", "unk", "cls", "mask"):
            token = _SPECIALS[name]
            piece_id = self.sp.PieceToId(token)
            if name != "unk" and piece_id == unk_id:
                piece_id, next_id = next_id, next_id + 1
            ids[token] = piece_id
        return ids

    def __len__(self) -> int:
        """Vocabulary size with the added special tokens."""
        return max(self.sp.GetPieceSize(), max(self.special_ids.values()) + 1)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without ``[CLS]``/``<|endoftext|>``: special strings whole, the rest SentencePiece."""
        specials = sorted(self.special_ids, key=len, reverse=True)
        parts = re.split("(" + "|".join(map(re.escape, specials)) + ")", text)
        ids: list[int] = []
        for i, part in enumerate(parts):
            if part in self.special_ids:
                ids.append(self.special_ids[part])
                continue
            # transformers strips the whitespace next to a special token
            if i > 0:
                part = part.lstrip()
            if i < len(parts) - 1:
                part = part.rstrip()
            if part:
                ids.extend(self.sp.PieceToId(p) for p in self.sp.EncodeAsPieces(encode_whitespaces(part)))
        return ids

    def __call__(self, texts: list[str]) -> Any:
        """``padding="max_length", truncation=True`` (from the left), as Ant's ``M2EncoderExecutor``.

        Returns:
            A ``BatchEncoding`` of ``input_ids`` and ``attention_mask`` (``[len(texts), max_length]``).

        """
        from transformers import BatchEncoding

        cls, eos = self.special_ids[_SPECIALS["cls"]], self.special_ids[_SPECIALS["eos"]]
        rows, masks = [], []
        for text in texts:
            ids = self.encode(text)
            ids = [cls, *ids[max(0, len(ids) - (self.max_length - 2)) :], eos]  # truncation_side = "left"
            masks.append([1] * len(ids) + [0] * (self.max_length - len(ids)))
            rows.append(ids + [eos] * (self.max_length - len(ids)))
        return BatchEncoding({"input_ids": torch.tensor(rows, dtype=torch.long), "attention_mask": torch.tensor(masks)})


# ---------------------------------------------------------------------------------------------- checkpoints


class _Opaque(dict):
    """Stand-in for a class pickled next to the tensors (Lightning's hyper-parameters): records, runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def append(self, item: Any) -> None:
        """Accept list items (``APPENDS``)."""

    def extend(self, items: Any) -> None:
        """Accept list items (``APPENDS``)."""


def read_m2_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read an M²-Encoder checkpoint with ``torch.load(weights_only=True)``, also a Lightning ``.ckpt``.

    A Lightning/DeepSpeed checkpoint pickles objects besides the tensors (hyper-parameters); those classes are
    read as inert :class:`_Opaque` stand-ins instead of being imported, so no code from the file runs.

    Returns:
        The ``state_dict``/``module``/``model`` entry (the first present, as Ant's loader) or the file's mapping.

    Raises:
        ValueError: the file holds no state dict of tensors.

    """
    try:
        state: Any = read_original_state_dict(path, expected=EXPECTED_FILE, mmap=True)
    except ValueError as plain:
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
            stand_ins = [(type(name.rpartition(".")[2], (_Opaque,), {}), name) for name in unsafe]
            with torch.serialization.safe_globals(stand_ins):
                state = torch.load(str(path), map_location="cpu", mmap=True, weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unpickling failure means the same to the user
            raise plain from err
    for key in ("state_dict", "module", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
            break
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)} if isinstance(state, Mapping) else {}
    if not tensors:
        raise ValueError(f"{str(path)!r} holds no state dict of tensors; expected {EXPECTED_FILE}.")
    return tensors


def resize_vision_positions(table: torch.Tensor, rows: int) -> torch.Tensor:
    """Fit the vision position table to ``rows`` (``3 + g*g``) as Ant's ``convert_pl_ckpt`` ("area" resize)."""
    if table.shape[0] == rows:
        return table
    if table.shape[0] > rows:
        return table[:rows]
    old, new = int(math.isqrt(table.shape[0] - 3)), int(math.isqrt(rows - 3))
    patches = table[3:].float().reshape(1, old, old, -1).permute(0, 3, 1, 2)
    patches = F.interpolate(patches, size=(new, new), mode="area").to(table.dtype)
    return torch.cat([table[:3], patches.permute(0, 2, 3, 1).reshape(new * new, -1)])


def map_m2_state_dict(state: Mapping[str, torch.Tensor], model: M2EncoderModel) -> dict[str, torch.Tensor]:
    """Ant's state dict -> :class:`M2EncoderModel`'s: drop the DeepSpeed prefix and training-only parts.

    The names are unchanged otherwise (the model uses Ant's); the vision position table is resized to the
    model's grid where it differs, as Ant's loader does.
    """
    mapped = {}
    for key, value in state.items():
        key = key.removeprefix("_forward_module.")
        if not key.startswith(TRAINING_ONLY):
            mapped[key] = value
    positions = "backbone.encoder.embed_positions.A.weight"
    if positions in mapped:
        rows = model.backbone.encoder.embed_positions.A.num_embeddings
        mapped[positions] = resize_vision_positions(mapped[positions], rows)
    return mapped


def load_m2_weights(model: M2EncoderModel, state: Mapping[str, torch.Tensor], path: str) -> None:
    """Load an original state dict strictly.

    Raises:
        ValueError: missing or unexpected keys, or shapes that differ (the message names them).

    """
    state = map_m2_state_dict(state, model)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong:
        shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}" for k in wrong[:5]]
        raise ValueError(
            f"{path!r} does not match this M2-Encoder architecture: missing {missing[:8]} ({len(missing)}), "
            f"unexpected {unexpected[:8]} ({len(unexpected)}), shape mismatches {shapes} ({len(wrong)}). "
            f"Expected {EXPECTED_FILE} of the same model size."
        )
    model.load_state_dict(state, strict=True)


# ---------------------------------------------------------------------------------------------- backbone


def m2_preprocess_config(image_size: int = 224) -> PreprocessCfg:
    """Ant's ``square_transform``: bicubic ``Resize((S, S))`` and ``ToTensor`` (no normalisation)."""
    return PreprocessCfg(
        size=int(image_size), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), interpolation="bicubic", resize_mode="squash"
    )


class M2EncoderBackbone(Backbone):
    """M²-Encoder's ``cls_vlffn_feats`` as a :class:`Backbone` (``model`` is :class:`M2EncoderModel`)."""

    family = "m2-encoder"

    def __init__(
        self,
        spec: str,
        model: M2EncoderModel,
        preprocess_cfg: PreprocessCfg,
        tokenizer: GlmTokenizer,
        dtype: torch.dtype = torch.float32,
        info: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(spec, preprocess_cfg, tokenizer, info)
        self.model = model
        self.dtype = dtype
        self.__dict__["_tower"] = M2VisionTower(model)  # a view of self.model, not a second copy in state_dict

    @property
    def visual(self) -> nn.Module:
        """The image path (:class:`M2VisionTower`; LR tokens attach here)."""
        return self._tower

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Image embedding (unnormalised) of ``ToTensor`` images in ``[0, 1]`` (normalised here, as Ant does)."""
        pixels = images.to(device=self.device, dtype=self.dtype)
        return self._tower((pixels - 0.5) / 0.5)

    def encode_text(self, tokens: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Text embedding (unnormalised) of :class:`GlmTokenizer` output."""
        return self.model.encode_text(tokens["input_ids"].to(self.device), tokens["attention_mask"].to(self.device))


def split_m2_spec(rest: str) -> tuple[str, str | None, dict[str, str]]:
    """Split ``ARCH[:WEIGHTS][?tokenizer=...]`` into (architecture or config path, weights or ``None``, options).

    Raises:
        ValueError: an empty architecture, or a malformed or unknown option.

    """
    body, sep, query = rest.partition("?")
    options: dict[str, str] = {}
    if sep:
        for item in query.split("&"):
            key, eq, value = item.partition("=")
            if not eq or not key or not value:
                raise ValueError(f"Malformed option {item!r} in 'm2-encoder:{rest}'; expected KEY=VALUE.")
            if key != "tokenizer":
                raise ValueError(f"Unknown option {key!r} in 'm2-encoder:{rest}'; known: 'tokenizer'.")
            options[key] = value
    head, json_sep, weights = body.partition(".json:")
    if json_sep:
        arch = head + ".json"
    else:
        arch, _, weights = body.partition(":")
    if not arch:
        raise ValueError(f"Empty architecture in spec 'm2-encoder:{rest}'. {SPEC_FORMS}")
    return arch, weights or None, options


def read_m2_config(arch: str) -> tuple[str, dict[str, Any]]:
    """(name, Ant-format config) of a packaged architecture or a config ``.json`` path.

    Raises:
        ValueError: unknown architecture name, or a file that is not a JSON object.
        FileNotFoundError: the ``.json`` does not exist.

    """
    if not arch.lower().endswith(".json"):
        if arch not in M2_ARCHS:
            from lr0fm.catalog import did_you_mean

            raise ValueError(
                f"Unknown M2-Encoder architecture {arch!r}.{did_you_mean(arch, list(M2_ARCHS))} Expected one of "
                f"{sorted(M2_ARCHS)} or an Ant config .json (prj/M2_Encoder/configs/Encoder_*.json). {SPEC_FORMS}"
            )
        return arch, dict(M2_ARCHS[arch])
    path = Path(arch).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"M2-Encoder config {arch!r} does not exist; expected an Ant configs/Encoder_*.json.")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"M2-Encoder config {arch!r} is not valid JSON: {err}") from err
    if not isinstance(config, dict):
        raise ValueError(f"M2-Encoder config {arch!r} is not a JSON object like configs/Encoder_0.4B.json.")
    return path.stem, config


def published_url(filename: str) -> str | None:
    """The ModelScope page of one of Ant's checkpoint files (by file name), else ``None``."""
    for config in M2_ARCHS.values():
        if config["model_file"] == Path(filename).name:
            return f"https://modelscope.cn/models/{config['modelscope']['model_id']}/files"
    return None


def _published_file(config: Mapping[str, Any], cache_dir: str | None) -> Path:
    """The config's ``model_file``: in ``$LR0FM_WEIGHTS``/cwd, else from ModelScope when ``modelscope`` is there."""
    filename, model_id = config.get("model_file"), config.get("modelscope", {}).get("model_id")
    if not filename or not model_id:
        raise ValueError("This M2-Encoder config names no published file; pass 'm2-encoder:ARCH:/path/to/file.ckpt'.")
    url = f"https://modelscope.cn/models/{model_id}/files"
    try:
        return resolve_weights_file(filename, url=url)
    except FileNotFoundError as missing:
        try:
            from modelscope import snapshot_download
        except ImportError:
            raise missing from None
        try:
            return Path(snapshot_download(model_id, cache_dir=cache_dir)) / filename
        except Exception as err:  # noqa: BLE001 - any download/cache failure means the same to the user
            hint = f"download {filename} from {url} into a folder listed in ${WEIGHTS_ENV}."
            raise weights_unavailable(f"modelscope:{model_id}/{filename}", err, hint) from err


def find_sp_model(option: str | None, checkpoint: Path | None) -> Path:
    """The tokenizer's ``sp.model``: the option (file or folder), beside the checkpoint, or in ``$LR0FM_WEIGHTS``.

    Raises:
        FileNotFoundError: nowhere; the message says where it looked and where to get it.

    """
    if option is not None:
        path = Path(option).expanduser()
        path = path / "sp.model" if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(
                f"M2-Encoder tokenizer {option!r} does not exist; expected the GLM sp.model (or its folder) from "
                f"{SP_MODEL_URL}."
            )
        return path
    if checkpoint is not None and (checkpoint.parent / "sp.model").is_file():
        return checkpoint.parent / "sp.model"
    try:
        return resolve_weights_file("sp.model", url=SP_MODEL_URL)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"{err} M2-Encoder's tokenizer is sp.model: put it beside the checkpoint or add "
            "'?tokenizer=/path/sp.model' to the m2-encoder: spec."
        ) from None


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def build_m2_encoder(
    config: Mapping[str, Any], *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> M2EncoderModel:
    """Build :class:`M2EncoderModel` on ``device`` in ``dtype`` (``"meta"`` allocates nothing)."""
    with torch.device(device), _default_dtype(dtype):
        return M2EncoderModel(config)


@register_scheme("m2-encoder")
def load_m2_encoder(
    rest: str,
    *,
    name: str,
    device: str = "cpu",
    seed: int | None = None,
    cache_dir: str | None = None,
    precision: str = "fp32",
) -> Backbone:
    """Load M²-Encoder from a spec ``m2-encoder:ARCH[:WEIGHTS][?tokenizer=SP_MODEL]`` (module docstring).

    Args:
        rest: the part after ``m2-encoder:``.
        name: the spec string as given by the user.
        device: torch device.
        seed: seeds random weights (``WEIGHTS`` = ``none``; 0 when not given).
        cache_dir: ModelScope download cache for the published files.
        precision: ``"fp32"``, ``"fp16"`` or ``"bf16"`` (the whole model and its inputs are cast).

    Raises:
        ValueError: a malformed spec, unknown architecture or precision, or a checkpoint or tokenizer that does
            not match the architecture.
        FileNotFoundError: a config, checkpoint or tokenizer that is not there.
        WeightsUnavailableError: the published file could not be downloaded from ModelScope.

    """
    dtype = precision_dtype(precision, "M2-Encoder")
    arch, weights, options = split_m2_spec(rest)
    arch_name, config = read_m2_config(arch)
    random_init = weights is not None and weights.lower() == RANDOM_TAG
    checkpoint = None
    if random_init:
        seed = 0 if seed is None else seed
        with seeded(seed):
            model = build_m2_encoder(config)
        model = model.to(device=device, dtype=dtype)
    else:
        if weights is None:
            checkpoint = _published_file(config, cache_dir)
        else:
            checkpoint = resolve_weights_file(weights, url=published_url(weights))
        state = read_m2_checkpoint(checkpoint)
        model = build_m2_encoder(config, device=device, dtype=dtype)
        load_m2_weights(model, state, str(checkpoint))
    model.eval()
    tokenizer = GlmTokenizer(find_sp_model(options.get("tokenizer"), checkpoint), model.dims["max_text_len"])
    rows = model.backbone.text_embed.num_embeddings
    if len(tokenizer) > rows:
        raise ValueError(
            f"M2-Encoder tokenizer {tokenizer.model_file!r} has {len(tokenizer)} ids but the text embedding has "
            f"{rows} rows; expected the sp.model of prj/M2_Encoder/vlmo/tokenizer ({SP_MODEL_URL})."
        )
    info = {
        "loader": "m2-encoder",
        "arch": arch_name,
        "tag": RANDOM_TAG if random_init else str(checkpoint),
        "seed": seed,
        "precision": precision,
        "tokenizer": tokenizer.model_file,
    }
    backbone = M2EncoderBackbone(name, model, m2_preprocess_config(model.dims["image_size"]), tokenizer, dtype, info)
    backbone.info.update(image_size=backbone.image_size, num_params=backbone.num_params)
    return backbone.to(device)
