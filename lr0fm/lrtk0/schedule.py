"""The learning-rate schedule of LR-TK0 and of the toy CLIP's pre-training: linear warm-up, then cosine.

The LR0.FM authors' ``warmup_cosine_lr`` (``EVA/EVA-CLIP/rei/training/scheduler.py``): step ``s`` of the
warm-up runs at ``lr * (s + 1) / warmup``, so the first step already moves. timm's ``CosineLRScheduler``
starts its warm-up at ``warmup_lr_init`` instead, so it is not used here.
"""

from __future__ import annotations

import math


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0) -> float:
    """LR multiplier: linear warm-up to 1 over ``warmup_steps``, then cosine to ``min_lr_ratio`` at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
