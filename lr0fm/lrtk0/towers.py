"""Where tokens attach inside a vision tower: patch embedding, transformer blocks and the token layout.

Four tower adapters are registered (:func:`register_tower` adds more), covering every ViT backbone of the
benchmark that LR-TK0 targets:

* ``"open_clip"``: ``open_clip.transformer.VisionTransformer`` (CLIP, OpenCLIP, MetaCLIP, MetaCLIP 2, CLIPA, DFN).
  The patch embedding is ``conv1`` (output ``[B, C, gh, gw]``), followed by class-token concat,
  positional embedding, patch dropout and ``ln_pre``; blocks are ``transformer.resblocks``, whose
  sequence layout is ``[B, L, C]`` or ``[L, B, C]`` depending on ``transformer.batch_first``.
  There is exactly one prefix (class) token.
* ``"timm"``: timm ``VisionTransformer`` and ``Eva`` (EVA02/EVA-CLIP, SigLIP, SigLIP 2, PE-Core, MobileCLIP2-B's
  hybrid ViT with a conv-stem ``HybridEmbed``, MobileCLIP2-L-14), bare or wrapped in
  open_clip's ``TimmModel`` (``visual.trunk``). The patch embedding is ``patch_embed`` (output
  ``[B, N, C]``, or ``[B, gh, gw, C]`` with ``dynamic_img_size``), followed by ``_pos_embed`` which
  prepends ``num_prefix_tokens`` class/register tokens; blocks are ``blocks`` and always batch-first.
* ``"hf_blip"``: Hugging Face ``BlipVisionModel`` (BLIP through ``hf:`` and ``blip:`` specs). The patch
  embedding is ``embeddings.patch_embedding`` (a conv, output ``[B, C, gh, gw]``), followed by the class-token
  concat and ``embeddings.position_embedding``; blocks are ``encoder.layers`` (batch-first), then
  ``post_layernorm``. There is one class token and no pre-block norm (so no VPT insertion point).
* ``"m2_encoder"``: M²-Encoder's image path (:class:`lr0fm.models.m2_encoder_model.M2VisionTower`, a view of
  the multiway BEiT-3 model). The patch embedding is ``vision_embed.proj`` (a conv, ``[B, C, gh, gw]``),
  followed by the class-token concat and the position table; blocks are ``blocks`` (the shared multiway layers
  of ``backbone`` then ``backbone_vl``, each wrapped to run the vision expert, so tokens never touch the text
  path), batch-first. One class token, no pre-block norm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from lr0fm.models.base import Backbone
from lr0fm.registry import Registry


class TowerError(ValueError):
    """A vision tower that tokens cannot be attached to, or tokens that do not fit a tower."""


@dataclass(frozen=True)
class TowerLayout:
    """The parts of a ViT vision tower that LR tokens and visual prompts hook into.

    Attributes:
        kind: ``"open_clip"``, ``"timm"``, ``"hf_blip"`` or ``"m2_encoder"`` (see the module docstring).
        tower_class: class name of the tower, for messages and exported configs.
        grid: patch grid ``(height, width)`` at the tower's native input size.
        width: token width (embedding dimension).
        num_prefix_tokens: class/register tokens in front of the spatial tokens.
        batch_first: whether block inputs are ``[B, L, C]`` (else ``[L, B, C]``).
        patch_embed: the module whose output holds the patch tokens.
        blocks: the transformer blocks, in order.
        pre_norm: the module between the position embedding and the first block (open_clip ``ln_pre``,
            timm ``norm_pre``; often an ``nn.Identity``); its input is ``[B, L, C]``.
        tower: the tower itself (for its position embedding).
        patch_channels_first: whether the patch embedding's output is ``[B, C, gh, gw]`` (a conv: open_clip,
            BLIP) rather than timm's ``[B, N, C]``/``[B, gh, gw, C]``.

    """

    kind: str
    tower_class: str
    grid: tuple[int, int]
    width: int
    num_prefix_tokens: int
    batch_first: bool
    patch_embed: nn.Module
    blocks: tuple[nn.Module, ...]
    pre_norm: nn.Module | None = None
    tower: nn.Module | None = None
    patch_channels_first: bool = False

    @property
    def num_spatial_tokens(self) -> int:
        """Patch tokens per image (``grid[0] * grid[1]``)."""
        return self.grid[0] * self.grid[1]

    @property
    def num_blocks(self) -> int:
        """Number of transformer blocks."""
        return len(self.blocks)

    def class_position_embedding(self) -> torch.Tensor | None:
        """The position embedding added to the class token (``[width]``), or ``None`` when it has none."""
        if self.num_prefix_tokens == 0 or self.tower is None:
            return None
        if self.kind == "open_clip":
            return self.tower.positional_embedding[0]
        if self.kind == "hf_blip":
            return self.tower.embeddings.position_embedding[0, 0]
        if self.kind == "m2_encoder":
            return self.tower.positional_embedding[0]
        pos_embed = getattr(self.tower, "pos_embed", None)
        if pos_embed is None or getattr(self.tower, "no_embed_class", False):
            return None
        return pos_embed[0, 0]

    def signature(self) -> dict[str, object]:
        """Return the layout facts that exported tokens must match (JSON-serialisable)."""
        return {
            "tower": self.kind,
            "tower_class": self.tower_class,
            "grid": list(self.grid),
            "width": self.width,
            "num_blocks": self.num_blocks,
            "num_prefix_tokens": self.num_prefix_tokens,
        }


def _as_pair(value: object) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    first, second = value  # type: ignore[misc]
    return int(first), int(second)


#: ``adapter(tower) -> TowerLayout | None`` by tower kind: describes a tower it recognises, else ``None``.
TOWERS: Registry[Callable[[nn.Module], TowerLayout | None]] = Registry("ViT tower adapter", error=TowerError)


def register_tower(kind: str) -> Callable[[Callable[[nn.Module], TowerLayout | None]], Callable]:
    """Decorator registering a tower adapter (tried in registration order by :func:`tower_layout`)."""
    return TOWERS.register(kind)


@register_tower("open_clip")
def _open_clip_tower(tower: nn.Module) -> TowerLayout | None:
    if not (hasattr(tower, "conv1") and hasattr(tower, "class_embedding") and hasattr(tower, "transformer")):
        return None
    transformer = tower.transformer
    return TowerLayout(
        kind="open_clip",
        tower_class=type(tower).__name__,
        grid=_as_pair(tower.grid_size),
        width=int(tower.conv1.out_channels),
        num_prefix_tokens=1,
        batch_first=bool(getattr(transformer, "batch_first", True)),
        patch_embed=tower.conv1,
        blocks=tuple(transformer.resblocks),
        pre_norm=getattr(tower, "ln_pre", None),
        tower=tower,
        patch_channels_first=True,
    )


@register_tower("timm")
def _timm_tower(tower: nn.Module) -> TowerLayout | None:
    if not (hasattr(tower, "patch_embed") and hasattr(tower, "blocks") and hasattr(tower, "num_prefix_tokens")):
        return None
    return TowerLayout(
        kind="timm",
        tower_class=type(tower).__name__,
        grid=_as_pair(tower.patch_embed.grid_size),
        width=int(tower.embed_dim),
        num_prefix_tokens=int(tower.num_prefix_tokens),
        batch_first=True,
        patch_embed=tower.patch_embed,
        blocks=tuple(tower.blocks),
        pre_norm=getattr(tower, "norm_pre", None),
        tower=tower,
    )


@register_tower("hf_blip")
def _hf_blip_tower(tower: nn.Module) -> TowerLayout | None:
    embeddings, encoder = getattr(tower, "embeddings", None), getattr(tower, "encoder", None)
    if not (
        hasattr(embeddings, "patch_embedding")
        and hasattr(embeddings, "class_embedding")
        and hasattr(encoder, "layers")
        and hasattr(tower, "post_layernorm")
    ):
        return None
    patch = _as_pair(embeddings.patch_size)
    size = _as_pair(embeddings.image_size)
    return TowerLayout(
        kind="hf_blip",
        tower_class=type(tower).__name__,
        grid=(size[0] // patch[0], size[1] // patch[1]),
        width=int(embeddings.patch_embedding.out_channels),
        num_prefix_tokens=1,
        batch_first=True,
        patch_embed=embeddings.patch_embedding,
        blocks=tuple(encoder.layers),
        pre_norm=None,
        tower=tower,
        patch_channels_first=True,
    )


@register_tower("m2_encoder")
def _m2_encoder_tower(tower: nn.Module) -> TowerLayout | None:
    embed = getattr(tower, "vision_embed", None)
    if not (hasattr(embed, "proj") and hasattr(embed, "patch_shape") and hasattr(tower, "blocks")):
        return None
    return TowerLayout(
        kind="m2_encoder",
        tower_class=type(tower).__name__,
        grid=_as_pair(embed.patch_shape),
        width=int(embed.proj.out_channels),
        num_prefix_tokens=1,
        batch_first=True,
        patch_embed=embed.proj,
        blocks=tuple(tower.blocks),
        pre_norm=None,
        tower=tower,
        patch_channels_first=True,
    )


def tower_layout(visual: nn.Module | Backbone) -> TowerLayout:
    """Describe where tokens attach in a vision tower.

    Args:
        visual: an open_clip ``VisionTransformer``, a timm ``VisionTransformer``/``Eva``, open_clip's
            ``TimmModel`` wrapping one of those, a Hugging Face ``BlipVisionModel``, or a
            :class:`~lr0fm.models.base.Backbone` (its ``visual`` is used); other towers need an adapter
            registered with :func:`register_tower`.

    Returns:
        The tower's layout.

    Raises:
        TowerError: no registered adapter recognises the tower (e.g. a ResNet).

    """
    if isinstance(visual, Backbone):
        visual = visual.visual
    tower = getattr(visual, "trunk", visual)  # open_clip TimmModel wraps a timm model as ``trunk``
    for entry in TOWERS:
        layout = entry.obj(tower)
        if layout is not None:
            return layout
    raise TowerError(
        f"cannot attach tokens to vision tower {type(tower).__name__!r}: expected an open_clip "
        "VisionTransformer (conv1, class_embedding, transformer.resblocks) or a timm "
        "VisionTransformer/Eva (patch_embed, blocks, num_prefix_tokens), optionally wrapped as "
        "open_clip TimmModel.trunk, a Hugging Face BlipVisionModel (embeddings.patch_embedding, "
        "encoder.layers, post_layernorm), M2-Encoder's M2VisionTower, or a tower adapter registered for it "
        f"(known: {', '.join(TOWERS.names())})"
    )
