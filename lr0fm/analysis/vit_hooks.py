"""Looking inside a ViT vision tower: per-block features through forward hooks, and Grad-CAM's token reshape.

Both work on any tower :func:`lr0fm.lrtk0.tower_layout` describes -- open_clip ``VisionTransformer`` (CLIP,
OpenCLIP, MetaCLIP, DFN, the toy model) and timm ``VisionTransformer``/``Eva`` (EVA02, SigLIP), bare or as
open_clip's ``TimmModel.trunk`` -- from the layout's blocks, class/register (prefix) token count, patch grid
and sequence layout (``[B, L, C]`` or open_clip's older ``[L, B, C]``). The hooks only read, so they compose
with LR tokens (whose pre-hooks add to each block's input).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from lr0fm.lrtk0.towers import TowerError, TowerLayout, tower_layout
from lr0fm.models.base import Backbone


def vit_layout(visual: nn.Module | Backbone) -> TowerLayout:
    """The tower's layout, or an error saying that this analysis reads the blocks of a ViT.

    Raises:
        TowerError: not a ViT tower :func:`~lr0fm.lrtk0.tower_layout` knows (e.g. a ResNet).

    """
    try:
        return tower_layout(visual)
    except TowerError as exc:
        raise TowerError(f"this analysis reads the transformer blocks of a ViT vision tower; {exc}") from exc


def _batch_first(layout: TowerLayout, x: torch.Tensor) -> torch.Tensor:
    return x if layout.batch_first else x.transpose(0, 1)


def spatial_tokens(layout: TowerLayout, x: torch.Tensor) -> torch.Tensor:
    """The spatial (patch) tokens ``[B, N, C]`` of a block's input or output (prefix tokens dropped)."""
    x = _batch_first(layout, x)
    prefix = layout.num_prefix_tokens
    return x[:, prefix : prefix + layout.num_spatial_tokens]


class BlockFeatures:
    """Forward hooks on every transformer block that keep the mean spatial token of each block's output.

    Use as a context manager; after each forward, :attr:`features` holds one ``[B, C]`` float32 CPU tensor
    per block (in block order), the mean over the patch tokens of that block's output.

    Args:
        visual: the vision tower or a :class:`~lr0fm.models.base.Backbone`.

    Raises:
        TowerError: the tower is not a ViT that :func:`~lr0fm.lrtk0.tower_layout` knows.

    """

    def __init__(self, visual: nn.Module | Backbone) -> None:
        self.layout = vit_layout(visual)
        self.features: list[torch.Tensor | None] = [None] * self.layout.num_blocks
        self._handles: list = []

    def _hook(self, index: int) -> Callable:
        def keep(module: nn.Module, args: tuple, output: torch.Tensor | tuple) -> None:
            x = output[0] if isinstance(output, tuple) else output
            self.features[index] = spatial_tokens(self.layout, x).float().mean(dim=1).detach().cpu()

        return keep

    def __enter__(self) -> BlockFeatures:
        self._handles = [block.register_forward_hook(self._hook(i)) for i, block in enumerate(self.layout.blocks)]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def take(self) -> list[torch.Tensor]:
        """The features of the last forward (and forget them).

        Raises:
            RuntimeError: a block did not run.

        """
        if any(f is None for f in self.features):
            missing = [i for i, f in enumerate(self.features) if f is None]
            raise RuntimeError(f"blocks {missing} produced no output in the last forward")
        out = [f for f in self.features if f is not None]
        self.features = [None] * self.layout.num_blocks
        return out


def vit_reshape_transform(layout: TowerLayout) -> Callable[[torch.Tensor], torch.Tensor]:
    """Grad-CAM's ``reshape_transform`` for a ViT: tokens ``[B, L, C]`` -> patch grid ``[B, C, gh, gw]``.

    The prefix (class/register) tokens are dropped and the spatial tokens laid out on the patch grid, as
    pytorch-grad-cam's ViT tutorial does (``tutorials/vision_transformers.md``), for both sequence layouts.
    """
    grid_h, grid_w = layout.grid

    def reshape(x: torch.Tensor) -> torch.Tensor:
        tokens = spatial_tokens(layout, x)
        return tokens.reshape(tokens.shape[0], grid_h, grid_w, tokens.shape[-1]).permute(0, 3, 1, 2)

    return reshape


def cam_target_layer(layout: TowerLayout) -> nn.Module:
    """The layer Grad-CAM reads in the last block: its first norm (open_clip ``ln_1``, timm ``norm1``).

    The last block's *output* cannot serve: with class-token pooling its spatial tokens never reach the
    image embedding, so their gradients are zero. The input of the last attention can (pytorch-grad-cam's
    ViT recipe: ``model.blocks[-1].norm1``).

    Raises:
        TowerError: the last block has neither ``ln_1`` nor ``norm1``.

    """
    block = layout.blocks[-1]
    for name in ("ln_1", "norm1"):
        if isinstance(getattr(block, name, None), nn.Module):
            return getattr(block, name)
    raise TowerError(
        f"Grad-CAM needs the first norm of the last block (ln_1 or norm1); {type(block).__name__} has neither"
    )
