"""Visual prompt tuning (VPT-shallow, Jia et al. 2022): the paper's Table 4 baseline, placed as the authors do.

``num_prompts`` learnable tokens are *concatenated* (not added) to the token sequence once, before the first
transformer block, and removed again right after the last block, so every tower pools exactly as it would
without prompts (class token for CLIP/EVA, mean or attention pooling over the patch tokens for
``avg``/SigLIP ``map`` pooling) while the prompts still steer attention in every block.

Placement follows the authors' ``EVAVisionTransformer_VPT`` (``EVA/EVA-CLIP/rei/eva_clip/eva_vit_model.py``):
the sequence becomes ``[class token(s), prompts, patches]`` and each prompt receives the class token's
position embedding. The prompts enter where the position-embedded sequence enters the tower's pre-block
norm (open_clip ``ln_pre``, timm ``norm_pre``), so they pass through that norm like every other token.
Towers with rotary position embeddings on the spatial tokens (timm ``Eva``: RoPE is applied to every token
after the prefix tokens) receive an identity rotation (sin 0, cos 1) for the prompt positions, as the
authors skip RoPE for the prompts.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from lr0fm.lrtk0.attachment import AttachedTokens, init_tokens_
from lr0fm.lrtk0.towers import TowerError
from lr0fm.models.base import Backbone


def _with_identity_rope(rope: torch.Tensor, num_prompts: int) -> torch.Tensor:
    """Prefix a concatenated ``[..., N, 2*d]`` (sin, cos) rotary embedding with ``num_prompts`` identities."""
    half = rope.shape[-1] // 2
    shape = (*rope.shape[:-2], num_prompts, half)
    identity = torch.cat([rope.new_zeros(shape), rope.new_ones(shape)], dim=-1)
    return torch.cat([identity, rope], dim=-2)


class VisualPromptTokens(AttachedTokens):
    """VPT-shallow prompts hooked into a frozen ViT vision tower.

    The module's ``state_dict`` holds only ``prompts`` (``[num_prompts, width]``).

    Args:
        visual: the vision tower (see :func:`~lr0fm.lrtk0.towers.tower_layout`) or a
            :class:`~lr0fm.models.base.Backbone`.
        num_prompts: number of prompt tokens (the paper uses 50).
        init: ``"trunc_normal"`` (the authors), ``"normal"`` or ``"zeros"``.
        std: standard deviation of the init.
        attach: register the hooks now (else call :meth:`attach`).

    Raises:
        ValueError: ``num_prompts < 1`` or unknown ``init``.
        TowerError: unsupported tower, or one without a pre-block norm module to hook.

    """

    method = "vpt"

    def __init__(
        self,
        visual: nn.Module | Backbone,
        *,
        num_prompts: int = 50,
        init: str = "trunc_normal",
        std: float = 0.02,
        attach: bool = True,
    ) -> None:
        super().__init__(visual, attach=attach)
        if num_prompts < 1:
            raise ValueError(f"num_prompts must be at least 1, got {num_prompts}")
        if self.layout.pre_norm is None:
            raise TowerError(
                f"vision tower {self.layout.tower_class} has no ln_pre/norm_pre module to insert prompts at"
            )
        self.num_prompts = num_prompts
        self.init = init
        self.std = std
        prompts = torch.empty(num_prompts, self.layout.width)
        init_tokens_(prompts, init, std)
        self.prompts = nn.Parameter(prompts)
        self._finish_init()

    def config(self) -> dict[str, Any]:
        """JSON-serialisable construction options and tower layout."""
        return {
            "num_prompts": self.num_prompts,
            "init": self.init,
            "std": self.std,
            **self.layout.signature(),
            "shapes": {"prompts": list(self.prompts.shape)},
        }

    @classmethod
    def from_config(cls, visual: nn.Module | Backbone, config: dict[str, Any]) -> VisualPromptTokens:
        """Unattached prompts of the count an export's config gives."""
        return cls(visual, num_prompts=config["num_prompts"], init=config["init"], std=config["std"], attach=False)

    def _register_hooks(self) -> list[RemovableHandle]:
        blocks = self.layout.blocks
        handles = [self.layout.pre_norm.register_forward_pre_hook(self._insert_hook)]
        if self.layout.kind == "timm":  # Eva passes ``rope`` to every block as a keyword
            for block in blocks:
                handles.append(block.register_forward_pre_hook(self._rope_hook, with_kwargs=True))
        handles.append(blocks[-1].register_forward_hook(self._strip_hook))
        return handles

    def _insert_hook(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if not self.enabled:
            return None
        x = args[0]  # [B, L, C]: class token(s) + position-embedded patches
        prefix = self.layout.num_prefix_tokens
        prompts = self.prompts.to(x.dtype)
        position = self.layout.class_position_embedding()
        if position is not None:
            prompts = prompts + position.to(x.dtype)
        prompts = prompts.unsqueeze(0).expand(x.shape[0], -1, -1)
        return (torch.cat([x[:, :prefix], prompts, x[:, prefix:]], dim=1), *args[1:])

    def _rope_hook(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        rope = kwargs.get("rope")
        if not self.enabled or rope is None:
            return None
        return args, {**kwargs, "rope": _with_identity_rope(rope, self.num_prompts)}

    def _strip_hook(self, module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor | None:
        if not self.enabled:
            return None
        dim, prefix = self._seq_dim(), self.layout.num_prefix_tokens
        rest = output.shape[dim] - prefix - self.num_prompts
        return torch.cat([output.narrow(dim, 0, prefix), output.narrow(dim, prefix + self.num_prompts, rest)], dim=dim)
