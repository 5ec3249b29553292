"""LR-TK0 methods: what is trained on the frozen backbone, one registry entry each.

A method builds the token module attached to the backbone's vision tower, or ``None`` when only unfrozen
backbone weights train (``none``). :class:`~lr0fm.lrtk0.module.LRTK0Module` takes its name (``method``);
``robust_sam`` also has its own training step and loss there (:func:`lr0fm.lrtk0.loss.robust_sam_loss`).
"""

from __future__ import annotations

from collections.abc import Callable

from lr0fm.lrtk0.attachment import AttachedTokens
from lr0fm.lrtk0.robust_sam import RobustSAM
from lr0fm.lrtk0.tokens import LRTokens
from lr0fm.lrtk0.vpt import VisualPromptTokens
from lr0fm.models.base import Backbone
from lr0fm.registry import Registry

#: ``builder(backbone, *, start_block, init, std, embed_std, num_prompts) -> tokens | None`` by name.
METHODS: Registry[Callable[..., AttachedTokens | None]] = Registry("LR-TK0 method")


def register_method(name: str) -> Callable[[Callable[..., AttachedTokens | None]], Callable]:
    """Decorator registering an LR-TK0 method builder under ``name``."""
    return METHODS.register(name)


@register_method("lr_tokens")
def lr_tokens(
    backbone: Backbone, *, start_block: int, init: str, std: float, embed_std: float | None, num_prompts: int
) -> LRTokens:
    """LR-TK0: tokens added to the spatial tokens after patch embedding and before every block."""
    return LRTokens(backbone, start_block=start_block, init=init, std=std, embed_std=embed_std)


@register_method("vpt")
def vpt(
    backbone: Backbone, *, start_block: int, init: str, std: float, embed_std: float | None, num_prompts: int
) -> VisualPromptTokens:
    """The Table 4 baseline: ``num_prompts`` visual prompts concatenated once."""
    return VisualPromptTokens(backbone, num_prompts=num_prompts, init=init, std=std)


@register_method("robust_sam")
def robust_sam(
    backbone: Backbone, *, start_block: int, init: str, std: float, embed_std: float | None, num_prompts: int
) -> RobustSAM:
    """The Table 4 "RobustSAM" baseline: robust token, token head and AMFG feature blocks (the authors' code)."""
    return RobustSAM(backbone, init=init, std=std)


@register_method("none")
def no_tokens(
    backbone: Backbone, *, start_block: int, init: str, std: float, embed_std: float | None, num_prompts: int
) -> None:
    """No tokens: only the unfrozen weights of a ``finetune`` scheme train (Table 5)."""
    return None
