"""M²-Encoder's architecture: Ant's multiway BEiT-3 with the original checkpoint's parameter names.

Loaded from the original files by :mod:`lr0fm.models.m2_encoder_loader` (spec ``m2-encoder:``).

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
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

#: Multiway expert index: ``A`` (vision) and ``B`` (language).
VISION, LANGUAGE = 0, 1
#: Rows of the text position table (torchscale ``max_source_positions``) and the first position (fairseq).
TEXT_POSITIONS, POSITION_OFFSET = 1024, 2
#: Heads per ``beit_version`` when a config does not name them (``vlmo/modules/modeling_utils.py``).
VERSION_HEADS = {"base": 12, "large": 16, "huge": 32}


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
