"""The toy pre-training recipe as a dataclass, free of torch imports so ``lr0fm toy pretrain --help`` is instant."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from lr0fm.toy.world import NATIVE_SIZE


class ToyError(ValueError):
    """A bad setting of ``lr0fm toy``; the message names it and the accepted values."""


def default_model_cfg() -> dict[str, Any]:
    """Return open_clip ``CLIP`` kwargs: ViT 64 px, patch 8, width 128, 4 layers; 2-layer text tower."""
    return {
        "embed_dim": 128,
        "vision_cfg": {
            "image_size": NATIVE_SIZE,
            "patch_size": 8,
            "width": 128,
            "layers": 4,
            "head_width": 32,
        },
        "text_cfg": {"context_length": 16, "width": 128, "heads": 4, "layers": 2, "pool_type": "argmax"},
    }


@dataclass
class PretrainConfig:
    """The full pre-training recipe (see ``configs/toy/pretrain.yaml``).

    Attributes:
        seed: seeds the model initialisation and the stream of rendered training images.
        max_steps: optimiser steps.
        batch_size: (image, caption) pairs per step.
        lr: peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up before the cosine decay.
        num_threads: torch CPU threads.
        log_every: print the loss every this many steps (0 disables printing).
        export_every: also export to the output folder every this many steps (0: only at the end).
        init_from: folder of a previous export to start from (a second stage, see
            ``configs/toy/pretrain_stage2.yaml``); ``None`` starts from random weights.
        model_cfg: open_clip ``CLIP`` kwargs; ``text_cfg.vocab_size`` is set from the tokenizer.

    """

    seed: int = 0
    max_steps: int = 900
    batch_size: int = 96
    lr: float = 1.5e-3
    weight_decay: float = 0.05
    warmup_steps: int = 50
    num_threads: int = 1
    log_every: int = 25
    export_every: int = 100
    init_from: str | None = None
    model_cfg: dict[str, Any] = field(default_factory=default_model_cfg)

    def __post_init__(self) -> None:
        counts = {"max_steps": 1, "batch_size": 2, "num_threads": 1, "warmup_steps": 0, "log_every": 0}
        counts["export_every"] = 0
        for name, least in counts.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ToyError(
                    f"--{name} {value!r} is not valid: expected an integer >= {least}"
                    + (" (0 steps would write untrained weights)" if name == "max_steps" else "")
                    + (" (the contrastive loss needs two pairs)" if name == "batch_size" else "")
                    + "."
                )
        for name, positive in (("lr", True), ("weight_decay", False)):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 or (positive and not value):
                bound = "> 0" if positive else ">= 0"
                raise ToyError(f"--{name} {value!r} is not valid: expected a finite number {bound}.")
