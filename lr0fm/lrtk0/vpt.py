"""Visual prompt tuning (VPT-shallow, Jia et al. 2022): the paper's Table 4 baseline.

``num_prompts`` learnable tokens are *concatenated* (not added) to the token sequence before the first
transformer block and removed again right after the last block, so every tower pools exactly as it
would without prompts (class token for CLIP/EVA, mean or attention pooling over the patch tokens for
``avg``/SigLIP ``map`` pooling) while the prompts still steer attention in every block.

The prompts are appended after the spatial tokens. Towers with rotary position embeddings on the
spatial tokens (timm ``Eva``: RoPE is applied to every token after the prefix tokens) receive an
identity rotation (sin 0, cos 1) for the prompt positions, so prompts carry no position.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from lr0fm.lrtk0.attachment import AttachedTokens, init_tokens_
from lr0fm.models.base import Backbone


def _with_identity_rope(rope: torch.Tensor, num_prompts: int) -> torch.Tensor:
    """Extend a concatenated ``[..., N, 2*d]`` (sin, cos) rotary embedding by ``num_prompts`` identities."""
    half = rope.shape[-1] // 2
    shape = (*rope.shape[:-2], num_prompts, half)
    identity = torch.cat([rope.new_zeros(shape), rope.new_ones(shape)], dim=-1)
    return torch.cat([rope, identity], dim=-2)


class VisualPromptTokens(AttachedTokens):
    """VPT-shallow prompts hooked into a frozen ViT vision tower.

    The module's ``state_dict`` holds only ``prompts`` (``[num_prompts, width]``).

    Args:
        visual: the vision tower (see :func:`~lr0fm.lrtk0.towers.tower_layout`) or a
            :class:`~lr0fm.models.base.Backbone`.
        num_prompts: number of prompt tokens (the paper uses 50).
        init: ``"trunc_normal"`` or ``"zeros"``.
        std: standard deviation of the truncated-normal init.
        attach: register the hooks now (else call :meth:`attach`).

    Raises:
        ValueError: ``num_prompts < 1`` or unknown ``init``.
        TowerError: unsupported tower.

    """

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

    def _register_hooks(self) -> list[RemovableHandle]:
        blocks = self.layout.blocks
        handles = [blocks[0].register_forward_pre_hook(self._append_hook)]
        if self.layout.kind == "timm":  # Eva passes ``rope`` to every block as a keyword
            for block in blocks:
                handles.append(block.register_forward_pre_hook(self._rope_hook, with_kwargs=True))
        handles.append(blocks[-1].register_forward_hook(self._strip_hook))
        return handles

    def _append_hook(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if not self.enabled:
            return None
        x = args[0]
        seq_dim = self._seq_dim()
        batch = x.shape[1 - seq_dim]
        prompts = self.prompts.to(x.dtype).unsqueeze(1 - seq_dim)
        prompts = prompts.expand(batch, -1, -1) if seq_dim == 1 else prompts.expand(-1, batch, -1)
        return (torch.cat([x, prompts], dim=seq_dim), *args[1:])

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
        return output.narrow(self._seq_dim(), 0, output.shape[self._seq_dim()] - self.num_prompts)
