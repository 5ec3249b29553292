"""LR-TK0: LR tokens, the VPT and RobustSAM baselines and backbone freezing on frozen ViT vision towers (paper Sec. 5).

Public API:

* :class:`LRTokens` -- tokens added to the spatial tokens after patch embedding and before each block.
* :class:`VisualPromptTokens` -- VPT-shallow prompts concatenated before the first block (baseline).
* :class:`RobustSAM` -- RobustSAM's robust token, token head and feature blocks (Table 4 baseline).
* :func:`freeze_backbone` / :func:`apply_frozen_modes` -- frozen weights and eval-mode norms/dropout.
* :func:`save_lr_tokens` / :func:`load_lr_tokens` / :func:`read_lr_tokens_config` -- tokens-only export of any
  of the three (the header names the method).
* :func:`tower_layout` / :class:`TowerLayout` / :class:`TowerError` -- supported towers and their layout.
"""

from __future__ import annotations

from lr0fm.lazy import lazy_exports

#: public name -> submodule holding it; imported on first use so that light submodules (``lr0fm.lrtk0.cli``,
#: ``lr0fm.lrtk0.schedule``) load without torch and ``lr0fm export-tokens --help`` stays fast
_EXPORTS = {
    "load_lr_tokens": "export",
    "read_lr_tokens_config": "export",
    "save_lr_tokens": "export",
    "apply_frozen_modes": "freeze",
    "freeze_backbone": "freeze",
    "LRTokens": "tokens",
    "RobustSAM": "robust_sam",
    "TowerError": "towers",
    "TowerLayout": "towers",
    "tower_layout": "towers",
    "VisualPromptTokens": "vpt",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "LRTokens",
    "RobustSAM",
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
