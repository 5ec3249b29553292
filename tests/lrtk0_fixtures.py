"""What the LR-TK0 training tests share: a quiet CPU trainer and a simulated kill at a chosen step."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback


def make_trainer(root: Path, max_epochs: int, callbacks: list[Callback] | None = None, **kwargs) -> L.Trainer:
    """A one-device CPU trainer writing under ``root``, without progress bar or model summary."""
    return L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=max_epochs,
        default_root_dir=str(root),
        use_distributed_sampler=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        callbacks=callbacks or [],
        **kwargs,
    )


class Killed(RuntimeError):
    """The simulated kill."""


class KillAt(Callback):
    """Simulates a killed run: raises once training reaches ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, *args) -> None:
        if trainer.global_step == self.step:
            raise Killed(f"killed at step {self.step}")
