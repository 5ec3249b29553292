"""LR tokens (LR-TK0, paper Sec. 5.1): learnable tensors *added* to the spatial tokens of a frozen ViT.

One ``[spatial tokens, width]`` tensor is added to the patch tokens right after patch embedding and one
before each transformer block, so ``#tokens = #spatial tokens x (blocks + 1)`` (paper Fig. 10).

Where "right after patch embedding" is, per tower: the output of the patch embedding itself, i.e.
*before* the class token is prepended and before the positional embedding (and ``ln_pre`` /
``norm_pre``) -- open_clip ``conv1`` (``[B, C, gh, gw]``), timm ``patch_embed`` (``[B, N, C]`` or
``[B, gh, gw, C]``) and Hugging Face BLIP ``embeddings.patch_embedding`` (``[B, C, gh, gw]``). Before each
block the token is added to the spatial positions only; the class and register (prefix) tokens are left
untouched.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

from lr0fm.lrtk0.attachment import AttachedTokens, init_tokens_
from lr0fm.lrtk0.towers import TowerError
from lr0fm.models.base import Backbone


class LRTokens(AttachedTokens):
    """LR tokens attached to a frozen ViT vision tower through forward hooks.

    The module's ``state_dict`` holds only the tokens: ``block_tokens`` (``[blocks - start_block,
    spatial, width]``) and, when ``embed_tokens``, ``embed_token`` (``[spatial, width]``).

    Args:
        visual: the vision tower (open_clip ``VisionTransformer``, timm ``VisionTransformer``/``Eva``,
            open_clip ``TimmModel``) or a :class:`~lr0fm.models.base.Backbone`.
        start_block: first block that receives a token (paper Fig. 15); blocks before it get none.
        init: ``"trunc_normal"`` (the authors' EVA code), ``"normal"`` (their OpenCLIP/MetaCLIP code) or
            ``"zeros"``.
        std: standard deviation of the block tokens' init (the authors: 0.02).
        embed_std: standard deviation of the token after patch embedding (default ``std``; the authors'
            OpenCLIP/MetaCLIP code: 0.01).
        embed_tokens: add a token after patch embedding; default ``start_block == 0`` (the paper's
            "[i]" variants have no token after patchification).
        attach: register the hooks now (else call :meth:`attach`).

    Raises:
        ValueError: ``start_block`` outside ``[0, blocks]``, or unknown ``init``.
        TowerError: unsupported tower.

    """

    method = "lr_tokens"

    def __init__(
        self,
        visual: nn.Module | Backbone,
        *,
        start_block: int = 0,
        init: str = "trunc_normal",
        std: float = 0.02,
        embed_std: float | None = None,
        embed_tokens: bool | None = None,
        attach: bool = True,
    ) -> None:
        super().__init__(visual, attach=attach)
        num_blocks = self.layout.num_blocks
        if not 0 <= start_block <= num_blocks:
            raise ValueError(f"start_block={start_block} is outside [0, {num_blocks}] for this tower")
        self.start_block = start_block
        self.embed_tokens = start_block == 0 if embed_tokens is None else bool(embed_tokens)
        self.init = init
        self.std = std
        self.embed_std = std if embed_std is None else embed_std
        spatial, width = self.layout.num_spatial_tokens, self.layout.width
        block_tokens = torch.empty(num_blocks - start_block, spatial, width)
        init_tokens_(block_tokens, init, std)
        self.block_tokens = nn.Parameter(block_tokens)
        if self.embed_tokens:
            embed_token = torch.empty(spatial, width)
            init_tokens_(embed_token, init, self.embed_std)
            self.embed_token = nn.Parameter(embed_token)
        else:
            self.register_parameter("embed_token", None)
        self._finish_init()

    @property
    def num_tokens(self) -> int:
        """Number of token vectors: ``spatial x (blocks with tokens + embed token)``."""
        return self.layout.num_spatial_tokens * (self.block_tokens.shape[0] + int(self.embed_tokens))

    @property
    def num_parameters(self) -> int:
        """Number of learnable scalars: ``num_tokens x width``."""
        return self.num_tokens * self.layout.width

    def config(self) -> dict[str, Any]:
        """JSON-serialisable construction options, tower layout and token shapes."""
        shapes = {"block_tokens": list(self.block_tokens.shape)}
        if self.embed_token is not None:
            shapes["embed_token"] = list(self.embed_token.shape)
        return {
            "start_block": self.start_block,
            "embed_tokens": self.embed_tokens,
            "init": self.init,
            "std": self.std,
            "embed_std": self.embed_std,
            "num_spatial_tokens": self.layout.num_spatial_tokens,
            **self.layout.signature(),
            "shapes": shapes,
        }

    @classmethod
    def from_config(cls, visual: nn.Module | Backbone, config: dict[str, Any]) -> LRTokens:
        """Unattached tokens of the layout an export's config describes."""
        return cls(
            visual,
            start_block=config["start_block"],
            embed_tokens=config["embed_tokens"],
            init=config["init"],
            std=config["std"],
            embed_std=config.get("embed_std"),
            attach=False,
        )

    def _register_hooks(self) -> list[RemovableHandle]:
        handles = []
        if self.embed_tokens:
            handles.append(self.layout.patch_embed.register_forward_hook(self._embed_hook))
        for index in range(self.start_block, self.layout.num_blocks):
            hook = functools.partial(self._block_hook, index - self.start_block)
            handles.append(self.layout.blocks[index].register_forward_pre_hook(hook))
        return handles

    def _mismatch(self, where: str, shape: tuple[int, ...]) -> TowerError:
        grid, width = self.layout.grid, self.layout.width
        return TowerError(
            f"LR tokens expect {self.layout.num_spatial_tokens} spatial tokens (grid {grid[0]}x{grid[1]}) "
            f"of width {width} at the {where}, got a tensor of shape {tuple(shape)}; run the tower at its "
            "native input size (LR images are upsampled to it) with patch dropout off (eval mode)"
        )

    def _embed_hook(self, module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor | None:
        if not self.enabled:
            return None
        token = self.embed_token.to(output.dtype)
        (grid_h, grid_w), width = self.layout.grid, self.layout.width
        if self.layout.patch_channels_first:  # a conv (open_clip conv1, BLIP patch_embedding): [B, C, gh, gw]
            expected = (width, grid_h, grid_w)
            token = token.t().reshape(expected)
        elif output.ndim == 4:  # timm patch_embed with NHWC output (dynamic_img_size)
            expected = (grid_h, grid_w, width)
            token = token.reshape(expected)
        else:  # timm patch_embed: [B, N, C]
            expected = (grid_h * grid_w, width)
        if tuple(output.shape[1:]) != expected:
            raise self._mismatch("patch embedding output", tuple(output.shape))
        return output + token

    def _block_hook(self, index: int, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if not self.enabled:
            return None
        x = args[0]
        seq_dim = self._seq_dim()
        prefix = self.layout.num_prefix_tokens
        if x.shape[seq_dim] != prefix + self.layout.num_spatial_tokens or x.shape[-1] != self.layout.width:
            raise self._mismatch(f"input of block {self.start_block + index}", tuple(x.shape))
        token = F.pad(self.block_tokens[index].to(x.dtype), (0, 0, prefix, 0))  # zeros on prefix tokens
        if seq_dim == 0:  # [L, B, C]
            token = token.unsqueeze(1)
        return (x + token, *args[1:])
