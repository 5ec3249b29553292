"""The LR-TK0 LightningModule: a frozen teacher distilled into the same backbone with tokens (paper Sec. 5).

Teacher: the backbone with tokens off on the HR image, under ``no_grad``. Student: the backbone with
tokens on, over the HR image and its K LR versions in *one* forward of the concatenated batch. Loss:
symmetric InfoNCE between the teacher's HR embeddings and each student view (:mod:`lr0fm.lrtk0.loss`).

Baselines and ablations are options: ``method="vpt"`` (50 concatenated prompts, Table 4),
``unfreeze_last_blocks=4`` with ``unfrozen_lr_scale=0.01`` and ``method`` ``"lr_tokens"`` or ``"none"``
(Table 5; the teacher is then a frozen copy), ``caption_loss_weight`` (the "CL" caption classifier),
``hr_cosine_weight`` (keeps the student's HR embedding on the teacher's). Multi-scale buckets and images
per caption are options of :class:`~lr0fm.lrtk0.data.LRTK0DataModule`.

Checkpoints hold only the trainable tensors (tokens, temperature, unfrozen blocks) and the optimizer;
the frozen backbone is rebuilt from its spec, so a ViT-B checkpoint stays small.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from lr0fm.lrtk0.export import save_lr_tokens
from lr0fm.lrtk0.freeze import apply_frozen_modes, freeze_backbone
from lr0fm.lrtk0.loss import caption_classification_loss, distillation_loss, gather_with_grad
from lr0fm.lrtk0.tokens import LRTokens
from lr0fm.lrtk0.vpt import VisualPromptTokens
from lr0fm.models.base import Backbone

METHODS = ("lr_tokens", "vpt", "none")
OPTIMIZERS = ("adamw", "lamb")
#: file written next to the logs at the end of ``fit`` (tokens-only export)
EXPORT_NAME = "lr_tokens.safetensors"


def _set_grad_checkpointing(visual: nn.Module) -> None:
    for tower in (visual, getattr(visual, "trunk", None)):
        if tower is not None and hasattr(tower, "set_grad_checkpointing"):
            tower.set_grad_checkpointing(True)
            return
    raise ValueError(f"vision tower {type(visual).__name__} has no set_grad_checkpointing()")


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """LR multiplier: linear warm-up from 0 to 1 over ``warmup_steps``, then cosine to ``min_lr_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class LRTK0Module(L.LightningModule):
    """Trains LR tokens (or a baseline) on a frozen zero-shot backbone by HR -> multi-scale LR distillation.

    Args:
        backbone: backbone spec for :func:`lr0fm.models.load_backbone` (e.g. ``"EVA02-B-16:merged2b_s8b_b131k"``,
            ``"toyclip"``, ``"ViT-B-16:none"``).
        backbone_seed: seed of random backbone weights (``ARCH:none`` specs).
        method: ``"lr_tokens"`` (LR-TK0), ``"vpt"`` (visual prompts) or ``"none"`` (only unfrozen blocks).
        start_block: first block with an LR token (paper Fig. 15).
        token_init: ``"trunc_normal"`` or ``"zeros"``.
        token_std: std of the truncated-normal token init.
        num_prompts: VPT prompt count.
        unfreeze_last_blocks: fine-tune this many final vision blocks (0 = frozen backbone).
        unfrozen_lr_scale: learning-rate factor of the unfrozen blocks (paper: 1/100).
        init_temperature: initial temperature (learnable logit scale starts at ``1 / init_temperature``).
        learn_temperature: train the logit scale.
        hr_cosine_weight: weight of the student-HR-to-teacher-HR cosine term (0: off, as the paper).
        caption_loss_weight: weight of the "CL" caption classification loss (0: off).
        teacher_cache: compute the teacher's HR embedding once per training image and reuse it.
        activation_checkpointing: recompute block activations in the backward pass.
        optimizer: ``"adamw"`` or ``"lamb"`` (timm).
        lr: peak learning rate.
        weight_decay: weight decay of tokens/prompts and unfrozen weights (none on the temperature).
        betas: Adam betas.
        warmup_steps: linear warm-up steps before the cosine decay.
        min_lr_ratio: final learning rate as a fraction of ``lr``.
        export_path: where ``fit`` writes the tokens-only export (default ``<log_dir>/lr_tokens.safetensors``).

    """

    def __init__(
        self,
        backbone: str = "toyclip",
        backbone_seed: int = 0,
        method: str = "lr_tokens",
        start_block: int = 0,
        token_init: str = "trunc_normal",
        token_std: float = 0.02,
        num_prompts: int = 50,
        unfreeze_last_blocks: int = 0,
        unfrozen_lr_scale: float = 0.01,
        init_temperature: float = 0.07,
        learn_temperature: bool = True,
        hr_cosine_weight: float = 0.0,
        caption_loss_weight: float = 0.0,
        teacher_cache: bool = False,
        activation_checkpointing: bool = False,
        optimizer: str = "adamw",
        lr: float = 5e-4,
        weight_decay: float = 0.2,
        betas: tuple[float, float] = (0.9, 0.999),
        warmup_steps: int = 0,
        min_lr_ratio: float = 0.0,
        export_path: str | None = None,
    ) -> None:
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {', '.join(OPTIMIZERS)}")
        if method == "none" and unfreeze_last_blocks == 0:
            raise ValueError("method='none' trains nothing unless unfreeze_last_blocks > 0")
        self.save_hyperparameters()
        from lr0fm.models import load_backbone

        self.backbone: Backbone = load_backbone(backbone, seed=backbone_seed)
        # with unfrozen blocks the student drifts, so the teacher must be a second, frozen instance
        self.teacher: Backbone | None = load_backbone(backbone, seed=backbone_seed) if unfreeze_last_blocks else None
        if self.teacher is not None:
            freeze_backbone(self.teacher)
        self.unfrozen = freeze_backbone(self.backbone, unfreeze_last_blocks=unfreeze_last_blocks)
        self.tokens: LRTokens | VisualPromptTokens | None = None
        if method == "lr_tokens":
            self.tokens = LRTokens(self.backbone, start_block=start_block, init=token_init, std=token_std)
        elif method == "vpt":
            self.tokens = VisualPromptTokens(self.backbone, num_prompts=num_prompts, init=token_init, std=token_std)
        if activation_checkpointing:
            _set_grad_checkpointing(self.backbone.visual)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)), requires_grad=learn_temperature)
        self._teacher_cache: dict[int, torch.Tensor] = {}
        self._caption_classifier: torch.Tensor | None = None
        self.strict_loading = False  # checkpoints hold only the trainable tensors; see on_load_checkpoint

    # -- modes and checkpoints -------------------------------------------------------------------------

    def train(self, mode: bool = True) -> LRTK0Module:
        """Switch modes, then put the frozen backbone parts back into eval mode."""
        super().train(mode)
        apply_frozen_modes(self.backbone)
        if self.teacher is not None:
            apply_frozen_modes(self.teacher)
        return self

    def _trainable_keys(self) -> set[str]:
        return {name for name, param in self.named_parameters() if param.requires_grad} | {"logit_scale"}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep only the trainable tensors: the frozen backbone is rebuilt from its spec."""
        keep = self._trainable_keys()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint that lacks a trainable tensor of this configuration."""
        missing = sorted(self._trainable_keys() - set(checkpoint["state_dict"]))
        if missing:
            raise KeyError(
                f"checkpoint lacks trainable tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}; it was "
                "written for another method/backbone configuration"
            )

    # -- forward ---------------------------------------------------------------------------------------

    def embed_student(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised embeddings with tokens on."""
        return F.normalize(self.backbone.encode_image(images), dim=-1)

    @torch.no_grad()
    def embed_teacher(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised embeddings of the frozen teacher (tokens off), without gradients."""
        if self.teacher is not None:
            return F.normalize(self.teacher.encode_image(images), dim=-1)
        if self.tokens is None:
            return F.normalize(self.backbone.encode_image(images), dim=-1)
        with self.tokens.disabled():
            return F.normalize(self.backbone.encode_image(images), dim=-1)

    def _teacher_hr(self, hr: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        if not self.hparams.teacher_cache or not self.training:
            return self.embed_teacher(hr)
        keys = indices.tolist()
        todo = [i for i, key in enumerate(keys) if key not in self._teacher_cache]
        if todo:
            fresh = self.embed_teacher(hr[todo])
            for row, i in enumerate(todo):
                self._teacher_cache[keys[i]] = fresh[row]
        return torch.stack([self._teacher_cache[key] for key in keys])

    def _caption_targets(self) -> torch.Tensor:
        if self._caption_classifier is None:
            captions = self.trainer.datamodule.captions
            with torch.no_grad():
                text = self.backbone.encode_text(self.backbone.tokenizer(captions))
            self._caption_classifier = F.normalize(text.float(), dim=-1).to(self.device)
        return self._caption_classifier

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        hr, lr = batch["hr"], batch["lr"]
        batch_size, num_views = hr.shape[0], lr.shape[1]
        teacher = self._teacher_hr(hr, batch["index"])
        # one student forward over HR + all LR views: [(1 + K) * B, 3, H, W]
        student_in = torch.cat([hr, lr.transpose(0, 1).reshape(-1, *hr.shape[1:])])
        student = self.embed_student(student_in).view(1 + num_views, batch_size, -1)
        teacher_all = gather_with_grad(teacher.to(student.dtype))
        student_all = gather_with_grad(student, dim=1)
        scale = self.logit_scale.exp().clamp(max=100.0)
        loss, parts = distillation_loss(
            teacher_all, student_all, scale, hr_cosine_weight=self.hparams.hr_cosine_weight
        )
        if self.hparams.caption_loss_weight:
            labels = gather_with_grad(batch["caption"])
            caption = caption_classification_loss(student_all, self._caption_targets().to(student.dtype), labels, scale)
            loss = loss + self.hparams.caption_loss_weight * caption
            parts["caption"] = caption.detach()
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, prog_bar=True, on_step=on_step, on_epoch=not on_step, batch_size=batch_size)
        for name, value in parts.items():
            self.log(f"{stage}/loss_{name}", value, on_step=on_step, on_epoch=not on_step, batch_size=batch_size)
        if on_step:
            self.log("train/temperature", 1.0 / scale.detach(), on_step=True, on_epoch=False, batch_size=batch_size)
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Distillation loss of one batch."""
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Distillation loss on held-out images (logged as ``val/loss``)."""
        self._step(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Distillation loss on held-out images (logged as ``test/loss``)."""
        self._step(batch, "test")

    # -- optimisation and export -----------------------------------------------------------------------

    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW or LAMB; tokens at ``lr``, unfrozen blocks at ``lr * unfrozen_lr_scale``; warm-up + cosine."""
        hp = self.hparams
        groups = []
        if self.tokens is not None:
            groups.append({"params": list(self.tokens.parameters()), "lr": hp.lr, "weight_decay": hp.weight_decay})
        if self.unfrozen:
            scaled = hp.lr * hp.unfrozen_lr_scale
            groups.append({"params": self.unfrozen, "lr": scaled, "weight_decay": hp.weight_decay})
        if self.logit_scale.requires_grad:
            groups.append({"params": [self.logit_scale], "lr": hp.lr, "weight_decay": 0.0})
        if hp.optimizer == "lamb":
            from timm.optim import Lamb

            optimizer = Lamb(groups, lr=hp.lr, betas=tuple(hp.betas))
        else:
            optimizer = torch.optim.AdamW(groups, lr=hp.lr, betas=tuple(hp.betas))
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, hp.warmup_steps, total, hp.min_lr_ratio)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def export_tokens(self, path: str | Path) -> Path:
        """Write the tokens-only export (safetensors + JSON config) of the LR tokens.

        Raises:
            ValueError: the method has no LR tokens (VPT prompts and fine-tuned blocks are not exported).

        """
        if not isinstance(self.tokens, LRTokens):
            raise ValueError(f"only LR tokens can be exported, this run trains method={self.hparams.method!r}")
        return save_lr_tokens(path, self.tokens, self.backbone.spec)

    def on_fit_end(self) -> None:
        """Export the LR tokens (rank 0) to ``export_path`` or ``<log_dir>/lr_tokens.safetensors``."""
        if not isinstance(self.tokens, LRTokens):
            return
        log_dir = self.trainer.log_dir  # a collective under DDP: every rank asks
        path = self.hparams.export_path or Path(log_dir or self.trainer.default_root_dir) / EXPORT_NAME
        if self.trainer.is_global_zero:
            self.print(f"LR tokens exported to {self.export_tokens(path)}")


def export_checkpoint_tokens(checkpoint: str | Path, output: str | Path | None = None) -> Path:
    """Write the tokens-only export of the LR tokens held by a Lightning checkpoint of :class:`LRTK0Module`.

    The backbone is rebuilt from the spec stored in the checkpoint's hyper-parameters (its weights must be
    loadable here) and the checkpoint's trainable tensors are loaded onto it, so e.g. the best checkpoint
    kept by ``ModelCheckpoint(monitor="val/war_16")`` can be exported and benchmarked.

    Args:
        checkpoint: a ``.ckpt`` file written by ``lr0fm fit``.
        output: the ``.safetensors`` file to write; defaults to the checkpoint path with that suffix.

    Returns:
        The written path.

    Raises:
        FileNotFoundError: ``checkpoint`` does not exist.
        ValueError: the checkpoint is not an LR-TK0 checkpoint, or its method has no LR tokens.

    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    hparams = state.get("hyper_parameters") if isinstance(state, dict) else None
    if not hparams or "backbone" not in hparams or "state_dict" not in state:
        raise ValueError(
            f"{checkpoint} is not an LR-TK0 checkpoint (expected a Lightning checkpoint of LRTK0Module "
            "with hyper_parameters.backbone and a state_dict)"
        )
    if hparams.get("method", "lr_tokens") != "lr_tokens":
        raise ValueError(f"only LR tokens can be exported; {checkpoint} trains method={hparams['method']!r}")
    # Lightning's loader handles LightningCLI's extra hparams (``_instantiator``) and calls on_load_checkpoint
    module = LRTK0Module.load_from_checkpoint(checkpoint, map_location="cpu", activation_checkpointing=False)
    return module.export_tokens(output or checkpoint.with_suffix(".safetensors"))
