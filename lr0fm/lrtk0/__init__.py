"""LR-TK0: LR tokens, the VPT baseline and backbone freezing on frozen ViT vision towers (paper Sec. 5).

Public API:

* :class:`LRTokens` -- tokens added to the spatial tokens after patch embedding and before each block.
* :class:`VisualPromptTokens` -- VPT-shallow prompts concatenated before the first block (baseline).
* :func:`freeze_backbone` / :func:`apply_frozen_modes` -- frozen weights and eval-mode norms/dropout.
* :func:`save_lr_tokens` / :func:`load_lr_tokens` / :func:`read_lr_tokens_config` -- tokens-only export.
* :func:`tower_layout` / :class:`TowerLayout` / :class:`TowerError` -- supported towers and their layout.
"""

from lr0fm.lrtk0.export import load_lr_tokens, read_lr_tokens_config, save_lr_tokens
from lr0fm.lrtk0.freeze import apply_frozen_modes, freeze_backbone
from lr0fm.lrtk0.tokens import LRTokens
from lr0fm.lrtk0.towers import TowerError, TowerLayout, tower_layout
from lr0fm.lrtk0.vpt import VisualPromptTokens

__all__ = [
    "LRTokens",
    "TowerError",
    "TowerLayout",
    "VisualPromptTokens",
    "apply_frozen_modes",
    "freeze_backbone",
    "load_lr_tokens",
    "read_lr_tokens_config",
    "save_lr_tokens",
    "tower_layout",
]
