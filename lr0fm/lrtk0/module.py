"""The LR-TK0 LightningModule: a frozen teacher distilled into the same backbone with tokens (paper Sec. 5).

Teacher: the backbone with tokens off on the HR image, under ``no_grad`` (in fp32 with ``teacher_fp32``, as
the authors run it outside autocast). Student: the backbone with tokens on, over the HR image and its K LR
versions in *one* forward of the concatenated batch. Loss: symmetric InfoNCE between the teacher's HR
embeddings and each student view, summed over the views as the authors' ``train_one_epoch_lr3``
(``EVA/EVA-CLIP/rei/training/train.py``) does (:mod:`lr0fm.lrtk0.loss`), with a learnable temperature
that is never clamped (theirs is a new ``logit_scale_lr`` parameter, outside the clamp of CLIP's own).

Baselines and ablations are options: ``method="vpt"`` (50 prompts, Table 4), ``method="robust_sam"`` (Table 4:
RobustSAM's robust token, token head and feature blocks, :mod:`lr0fm.lrtk0.robust_sam`; its student embeds only
the LR views and its loss matches outputs and robust features to the teacher's, the authors'
``train_one_epoch_lr19``, :func:`~lr0fm.lrtk0.loss.robust_sam_loss`), ``finetune`` (Table 5 "not
frozen": ``paper-text`` = the last ``unfreeze_last_blocks`` blocks at ``unfrozen_lr_scale``, or
``authors-code`` = the authors' unfrozen set and layer-decay rates, see :mod:`lr0fm.lrtk0.freeze`; the
teacher is then a frozen copy), ``caption_loss_weight`` (the "CL" variant: a trainable linear caption-id
head with cross-entropy, the authors' ``lr_head``), ``hr_cosine_weight`` (not the paper's: keeps the
student's HR embedding on the teacher's). Multi-scale buckets, augmentation, same-caption batches and
images per caption are options of :class:`~lr0fm.lrtk0.data.LRTK0DataModule`.

Checkpoints hold only the trainable tensors (tokens, temperature, caption head, unfrozen weights, the token
module's buffers) and the optimizer; the frozen backbone is rebuilt from its spec, so a ViT-B checkpoint stays
small. ``fit`` ends with the tokens-only export of whichever method trained (:mod:`lr0fm.lrtk0.export`).
"""

from __future__ import annotations

import contextlib
import inspect
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from lr0fm.lrtk0.attachment import AttachedTokens
from lr0fm.lrtk0.export import save_lr_tokens
from lr0fm.lrtk0.freeze import apply_frozen_modes, freeze_backbone, unfreeze_authors_code
from lr0fm.lrtk0.loss import caption_classification_loss, distillation_loss, robust_sam_loss
from lr0fm.lrtk0.methods import METHODS
from lr0fm.lrtk0.robust_sam import RobustSAM
from lr0fm.lrtk0.schedule import warmup_cosine
from lr0fm.models.base import Backbone

OPTIMIZERS = ("adamw", "lamb")
#: Table 5 "not frozen" variants (see :mod:`lr0fm.lrtk0.freeze`)
FINETUNE_SCHEMES = ("paper-text", "authors-code")
#: file written next to the logs at the end of ``fit`` (tokens-only export, whichever the method)
EXPORT_NAME = "lr_tokens.safetensors"


def _set_grad_checkpointing(visual: nn.Module) -> None:
    for tower in (visual, getattr(visual, "trunk", None)):
        if tower is not None and hasattr(tower, "set_grad_checkpointing"):
            tower.set_grad_checkpointing(True)
            return
    raise ValueError(f"vision tower {type(visual).__name__} has no set_grad_checkpointing()")


def _no_weight_decay(name: str, param: nn.Parameter) -> bool:
    """Biases, norms, scalars, position embeddings and class tokens get no weight decay (EVA's rule)."""
    stem = ("pos_embed", "cls_token", "positional_embedding", "class_embedding")
    return param.ndim <= 1 or name.endswith(".bias") or any(k in name for k in stem)


def _check_numbers(
    positive: dict[str, float], non_negative: dict[str, float], optional_positive: dict[str, float | None]
) -> None:
    """Refuse NaN/inf and out-of-range settings, naming the option (``model.<name>``) and the accepted range."""
    checks = [(name, value, True) for name, value in positive.items()]
    checks += [(name, value, False) for name, value in non_negative.items()]
    checks += [(name, value, True) for name, value in optional_positive.items() if value is not None]
    for name, value, strict in checks:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"model.{name}={value!r} is not valid: expected a finite number")
        if value < 0 or (strict and value == 0):
            raise ValueError(f"model.{name}={value!r} is not valid: expected a number {'> 0' if strict else '>= 0'}")


def _check_robust_sam_options(
    finetune: str | None, teacher_cache: bool, hr_cosine_weight: float, caption_loss_weight: float
) -> None:
    """Refuse the options that have no meaning for RobustSAM, naming each and the value to set."""
    clashes = {
        "finetune": (finetune is not None, "null (RobustSAM trains its own parts on a frozen backbone)"),
        "teacher_cache": (teacher_cache, "false (the teacher's robust features change as the parts train)"),
        "hr_cosine_weight": (hr_cosine_weight != 0, "0 (the RobustSAM student embeds only the LR views)"),
        "caption_loss_weight": (caption_loss_weight != 0, "0 (the authors' RobustSAM loss has no caption term)"),
    }
    bad = [f"model.{name}: {fix}" for name, (clash, fix) in clashes.items() if clash]
    if bad:
        raise ValueError(f"method='robust_sam' needs {'; '.join(bad)} (or add --config ablations/robust_sam)")


class LRTK0Module(L.LightningModule):
    """Trains LR tokens (or a baseline) on a frozen zero-shot backbone by HR -> multi-scale LR distillation.

    Args:
        backbone: backbone spec for :func:`lr0fm.models.load_backbone` (e.g. ``"EVA02-B-16:merged2b_s8b_b131k"``,
            ``"toyclip"``, ``"ViT-B-16:none"``).
        backbone_seed: seed of random backbone weights (``ARCH:none`` specs).
        method: ``"lr_tokens"`` (LR-TK0), ``"vpt"`` (visual prompts), ``"robust_sam"`` (RobustSAM's parts; on a
            frozen backbone, no temperature, ``loss_reduction`` over the LR views) or ``"none"`` (only
            fine-tuning).
        start_block: first block with an LR token (paper Fig. 15).
        token_init: ``"trunc_normal"`` (the authors' EVA code), ``"normal"`` (their OpenCLIP/MetaCLIP code) or
            ``"zeros"``.
        token_std: std of the block tokens' (and prompts', and RobustSAM's robust token's) init.
        embed_token_std: std of the token after patch embedding (default ``token_std``; authors'
            OpenCLIP/MetaCLIP code: 0.01).
        num_prompts: VPT prompt count.
        finetune: ``None`` (frozen backbone, LR-TK0), ``"paper-text"`` or ``"authors-code"`` (Table 5).
        unfreeze_last_blocks: blocks fine-tuned by ``finetune="paper-text"`` (paper: 4).
        unfrozen_lr_scale: learning-rate factor of those blocks (paper: 1/100).
        layer_decay: per-layer learning-rate decay of ``finetune="authors-code"`` (authors: 0.75).
        init_temperature: initial temperature (learnable logit scale starts at ``1 / init_temperature``).
        learn_temperature: train the logit scale.
        max_logit_scale: clamp of the exponentiated logit scale (``None``: never clamped, as the authors).
        loss_reduction: ``"sum"`` (the authors) or ``"mean"`` of the per-view contrastive losses.
        hr_cosine_weight: weight of the student-HR-to-teacher-HR cosine term (0: off, as the paper).
        caption_loss_weight: weight of the "CL" caption-id cross-entropy (0: off; the authors add it with 1).
        teacher_cache: compute the teacher's HR embedding once per training image and reuse it (needs HR
            views without random crops).
        teacher_fp32: run the teacher outside autocast, in fp32 (the authors' teacher is outside autocast).
        activation_checkpointing: recompute block activations in the backward pass.
        optimizer: ``"adamw"`` or ``"lamb"`` (timm).
        lr: peak learning rate of the tokens/prompts (and of the unfrozen weights, before their scale).
        head_lr: peak learning rate of the temperature and the caption head (default ``lr``; the authors'
            EVA run: tokens at its visual lr 2e-4, these at 5e-4).
        weight_decay: weight decay of tokens/prompts, the caption head's weight and unfrozen matrices.
        betas: Adam betas.
        eps: Adam epsilon.
        warmup_steps: linear warm-up steps before the cosine decay.
        min_lr_ratio: final learning rate as a fraction of the peak.
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
        embed_token_std: float | None = None,
        num_prompts: int = 50,
        finetune: str | None = None,
        unfreeze_last_blocks: int = 4,
        unfrozen_lr_scale: float = 0.01,
        layer_decay: float = 0.75,
        init_temperature: float = 0.07,
        learn_temperature: bool = True,
        max_logit_scale: float | None = None,
        loss_reduction: str = "sum",
        hr_cosine_weight: float = 0.0,
        caption_loss_weight: float = 0.0,
        teacher_cache: bool = False,
        teacher_fp32: bool = False,
        activation_checkpointing: bool = False,
        optimizer: str = "adamw",
        lr: float = 5e-4,
        head_lr: float | None = None,
        weight_decay: float = 0.2,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        warmup_steps: int = 0,
        min_lr_ratio: float = 0.0,
        export_path: str | None = None,
    ) -> None:
        super().__init__()
        build_tokens = METHODS.get(method)  # ValueError naming the known methods
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {', '.join(OPTIMIZERS)}")
        if finetune is not None and finetune not in FINETUNE_SCHEMES:
            raise ValueError(f"unknown finetune {finetune!r}; expected null or one of {', '.join(FINETUNE_SCHEMES)}")
        if method == "none" and finetune is None:
            raise ValueError("method='none' trains nothing unless finetune is 'paper-text' or 'authors-code'")
        if method == "robust_sam":
            _check_robust_sam_options(finetune, teacher_cache, hr_cosine_weight, caption_loss_weight)
        if loss_reduction not in ("sum", "mean"):
            raise ValueError(f"loss_reduction must be 'sum' or 'mean', got {loss_reduction!r}")
        _check_numbers(
            positive={"lr": lr, "init_temperature": init_temperature, "eps": eps},
            non_negative={"weight_decay": weight_decay, "token_std": token_std, "warmup_steps": warmup_steps},
            optional_positive={"head_lr": head_lr, "max_logit_scale": max_logit_scale},
        )
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise ValueError(f"model.min_lr_ratio={min_lr_ratio!r} is not valid: expected a number in [0, 1]")
        self.save_hyperparameters()
        from lr0fm.models import load_backbone

        self.backbone: Backbone = load_backbone(backbone, seed=backbone_seed)
        # with unfrozen weights the student drifts, so the teacher must be a second, frozen instance
        self.teacher: Backbone | None = load_backbone(backbone, seed=backbone_seed) if finetune else None
        if self.teacher is not None:
            freeze_backbone(self.teacher)
        self.unfrozen: list[tuple[str, nn.Parameter, float]] = []
        if finetune == "paper-text":
            params = freeze_backbone(self.backbone, unfreeze_last_blocks=unfreeze_last_blocks)
            names = {id(p): name for name, p in self.backbone.visual.named_parameters()}
            self.unfrozen = [(names[id(p)], p, unfrozen_lr_scale) for p in params]
        else:
            freeze_backbone(self.backbone)
            if finetune == "authors-code":
                self.unfrozen = unfreeze_authors_code(self.backbone, layer_decay=layer_decay)
        self.tokens: AttachedTokens | None = build_tokens(
            self.backbone,
            start_block=start_block,
            init=token_init,
            std=token_std,
            embed_std=embed_token_std,
            num_prompts=num_prompts,
        )
        if activation_checkpointing:
            _set_grad_checkpointing(self.backbone.visual)
        # RobustSAM's loss has no temperature (theirs: logit_scale.requires_grad = False)
        learn_temperature = learn_temperature and method != "robust_sam"
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)), requires_grad=learn_temperature)
        self.caption_head: nn.Linear | None = None  # the "CL" head, sized in setup() from the training captions
        self._teacher_cache: dict[int, torch.Tensor] = {}
        self.strict_loading = False  # checkpoints hold only the trainable tensors; see on_load_checkpoint

    def setup(self, stage: str) -> None:
        """Check the data against the options; create the "CL" caption head for the training captions."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if self.hparams.teacher_cache and getattr(datamodule, "crop_scale", None) is not None:
            raise ValueError(
                "model.teacher_cache reuses the teacher's embedding of each image, but data.crop_scale draws a new "
                "HR crop at every step; set data.crop_scale: null (no augmentation) or model.teacher_cache: false"
            )
        if self.hparams.caption_loss_weight and self.caption_head is None:
            if datamodule is None or not hasattr(datamodule, "captions"):
                raise ValueError("caption_loss_weight needs a datamodule with captions (LRTK0DataModule)")
            with torch.no_grad(), self._tokens_off():
                size = self.backbone.image_size
                dim = self.backbone.encode_image(torch.zeros(1, 3, size, size)).shape[-1]
            self.caption_head = nn.Linear(dim, len(datamodule.captions))

    def _tokens_off(self) -> contextlib.AbstractContextManager:
        return self.tokens.disabled() if self.tokens is not None else contextlib.nullcontext()

    # -- modes and checkpoints -------------------------------------------------------------------------

    def train(self, mode: bool = True) -> LRTK0Module:
        """Switch modes, then put the frozen backbone parts back into eval mode."""
        super().train(mode)
        apply_frozen_modes(self.backbone)
        if self.teacher is not None:
            apply_frozen_modes(self.teacher)
        return self

    def _trainable_keys(self) -> set[str]:
        """Names of the tensors a checkpoint keeps: trainable ones, the temperature and the token module's buffers."""
        buffers = {f"tokens.{name}" for name, _ in self.tokens.named_buffers()} if self.tokens is not None else set()
        return {name for name, param in self.named_parameters() if param.requires_grad} | {"logit_scale"} | buffers

    def checkpoint_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every tensor a checkpoint of this configuration must hold (see :meth:`_trainable_keys`)."""
        keep = self._trainable_keys()
        tensors = {**dict(self.named_parameters()), **dict(self.named_buffers())}
        return {name: tuple(t.shape) for name, t in tensors.items() if name in keep}

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

    def _teacher_precision(self, device: torch.device) -> contextlib.AbstractContextManager:
        """Outside autocast with ``teacher_fp32`` (as the authors' teacher), else the current precision."""
        if self.hparams.teacher_fp32:
            return torch.autocast(device_type=device.type, enabled=False)
        return contextlib.nullcontext()

    @torch.no_grad()
    def embed_teacher(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised embeddings of the frozen teacher (tokens off), without gradients."""
        model = self.teacher if self.teacher is not None else self.backbone
        with self._teacher_precision(images.device):
            return self._teacher_forward(model, images.float() if self.hparams.teacher_fp32 else images)

    def _teacher_forward(self, model: Backbone, images: torch.Tensor) -> torch.Tensor:
        if model is self.backbone:
            with self._tokens_off():
                return F.normalize(model.encode_image(images), dim=-1)
        return F.normalize(model.encode_image(images), dim=-1)

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

    def gather(self, x: torch.Tensor, dim: int = 0) -> torch.Tensor:
        """``x`` of every DDP rank concatenated along ``dim``, with gradients (``all_gather(sync_grads=True)``).

        The all-gather backward sums the ranks' gradients, and DDP averages them again, so the update equals
        one process on the global batch. Without DDP (or a Trainer) ``x`` is returned as it is.
        """
        if self._trainer is None or self.trainer.world_size == 1:
            return x
        return torch.cat(list(self.all_gather(x, sync_grads=True).unbind(0)), dim=dim)

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        batch_size = batch["hr"].shape[0]
        if isinstance(self.tokens, RobustSAM):
            loss, parts = self._robust_sam_loss(batch)
        else:
            loss, parts = self._distillation_loss(batch)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, prog_bar=True, on_step=on_step, on_epoch=not on_step, batch_size=batch_size)
        for name, value in parts.items():
            self.log(f"{stage}/loss_{name}", value, on_step=on_step, on_epoch=not on_step, batch_size=batch_size)
        if on_step and self.logit_scale.requires_grad:
            scale = self._logit_scale().detach()
            self.log("train/temperature", 1.0 / scale, on_step=True, on_epoch=False, batch_size=batch_size)
        return loss

    def _logit_scale(self) -> torch.Tensor:
        scale = self.logit_scale.exp()
        return scale if self.hparams.max_logit_scale is None else scale.clamp(max=self.hparams.max_logit_scale)

    def _robust_sam_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The authors' ``train_one_epoch_lr19``: teacher on HR (parts off, "clear" features), student on the LR views.

        Per-sample losses (no in-batch negatives), so DDP needs no gather: the ranks' gradients average.
        """
        hr, lr = batch["hr"], batch["lr"]
        robust: RobustSAM = self.tokens  # type: ignore[assignment]
        with robust.recording() as record:
            teacher = self.embed_teacher(hr)
        with torch.no_grad(), self._teacher_precision(hr.device):
            teacher_features = robust.robust_features(record, clear=True)
        with robust.recording() as record:
            student = self.embed_student(lr.transpose(0, 1).reshape(-1, *hr.shape[1:]))  # [K * B, D], view-major
        student_features = robust.robust_features(record, clear=False)
        views = (lr.shape[1], hr.shape[0])
        return robust_sam_loss(
            teacher.to(student.dtype),
            teacher_features.to(student_features.dtype),
            student.view(*views, -1),
            student_features.view(*views, *student_features.shape[1:]),
            reduction=self.hparams.loss_reduction,
        )

    def _distillation_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """LR-TK0's contrastive distillation (and the VPT/fine-tuning baselines): student on HR + LR views."""
        hp = self.hparams
        hr, lr = batch["hr"], batch["lr"]
        batch_size, num_views = hr.shape[0], lr.shape[1]
        teacher = self._teacher_hr(hr, batch["index"])
        # one student forward over HR + all LR views: [(1 + K) * B, 3, H, W]
        student_in = torch.cat([hr, lr.transpose(0, 1).reshape(-1, *hr.shape[1:])])
        student = self.embed_student(student_in).view(1 + num_views, batch_size, -1)
        teacher_all = self.gather(teacher.to(student.dtype))
        student_all = self.gather(student, dim=1)
        loss, parts = distillation_loss(
            teacher_all,
            student_all,
            self._logit_scale(),
            hr_cosine_weight=hp.hr_cosine_weight,
            reduction=hp.loss_reduction,
        )
        if hp.caption_loss_weight:
            caption = caption_classification_loss(student, self.caption_head, batch["caption"])
            loss = loss + hp.caption_loss_weight * caption
            parts["caption"] = caption.detach()
        return loss, parts

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
        """AdamW or LAMB with parameter groups; warm-up + cosine per step.

        Groups: tokens/prompts/RobustSAM parts at ``lr`` (their biases, norms and 1-d tensors without weight
        decay); the temperature and the caption head at ``head_lr``; unfrozen weights at ``lr`` times their
        scale (``unfrozen_lr_scale``, or the layer decay of ``authors-code``).
        """
        hp = self.hparams
        head_lr = hp.lr if hp.head_lr is None else hp.head_lr
        groups: list[dict[str, Any]] = []
        if self.tokens is not None:
            split: dict[bool, list[nn.Parameter]] = {}
            for name, param in self.tokens.named_parameters():
                split.setdefault(_no_weight_decay(name, param), []).append(param)
            for no_decay, params in split.items():
                groups.append({"params": params, "lr": hp.lr, "weight_decay": 0.0 if no_decay else hp.weight_decay})
        by_scale: dict[tuple[float, bool], list[nn.Parameter]] = {}
        for name, param, scale in self.unfrozen:
            by_scale.setdefault((scale, _no_weight_decay(name, param)), []).append(param)
        for (scale, no_decay), params in by_scale.items():
            groups.append({"params": params, "lr": hp.lr * scale, "weight_decay": 0.0 if no_decay else hp.weight_decay})
        if self.logit_scale.requires_grad:
            groups.append({"params": [self.logit_scale], "lr": head_lr, "weight_decay": 0.0})
        if self.caption_head is not None:
            groups.append({"params": [self.caption_head.weight], "lr": head_lr, "weight_decay": hp.weight_decay})
            groups.append({"params": [self.caption_head.bias], "lr": head_lr, "weight_decay": 0.0})
        if hp.optimizer == "lamb":
            from timm.optim import Lamb

            optimizer = Lamb(groups, lr=hp.lr, betas=tuple(hp.betas), eps=hp.eps)
        else:
            optimizer = torch.optim.AdamW(groups, lr=hp.lr, betas=tuple(hp.betas), eps=hp.eps)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, hp.warmup_steps, total, hp.min_lr_ratio)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def export_tokens(self, path: str | Path) -> Path:
        """Write the tokens-only export (safetensors + JSON config naming the method) of the trained tokens.

        LR tokens and VPT prompts are written whole, RobustSAM without its training-only feature blocks;
        ``lr0fm benchmark --lr_tokens`` applies any of them.

        Raises:
            ValueError: the method has no tokens (``none``: fine-tuned blocks are not exported).

        """
        if self.tokens is None:
            raise ValueError(f"method={self.hparams.method!r} trains no tokens, so there is nothing to export")
        return save_lr_tokens(path, self.tokens, self.backbone.spec)

    def on_fit_end(self) -> None:
        """Export the tokens (rank 0) to ``export_path`` or ``<log_dir>/lr_tokens.safetensors``."""
        if self.tokens is None:
            return
        log_dir = self.trainer.log_dir  # a collective under DDP: every rank asks
        path = self.hparams.export_path or Path(log_dir or self.trainer.default_root_dir) / EXPORT_NAME
        if self.trainer.is_global_zero:
            self.print(f"{self.hparams.method} tokens exported to {self.export_tokens(path)}")


def export_checkpoint_tokens(checkpoint: str | Path, output: str | Path | None = None) -> Path:
    """Write the tokens-only export of the tokens held by a Lightning checkpoint of :class:`LRTK0Module`.

    Any method with tokens exports (LR tokens, VPT prompts, RobustSAM's inference parts); the header names it.

    The backbone is rebuilt from the spec stored in the checkpoint's hyper-parameters (its weights must be
    loadable here) and the checkpoint's trainable tensors are loaded onto it after checking their names,
    shapes and values, so e.g. the best checkpoint kept by ``ModelCheckpoint(monitor="val/loss")`` can be
    exported and benchmarked. The checkpoint is read with ``weights_only=True`` and never overwritten.

    Args:
        checkpoint: a ``.ckpt`` file written by ``lr0fm fit``.
        output: the ``.safetensors`` file to write; defaults to the checkpoint path with that suffix.

    Returns:
        The written path.

    Raises:
        CheckpointError: the checkpoint is missing, unreadable, not an LR-TK0 checkpoint, has no tokens,
            holds tensors of another backbone or NaN/inf values, or ``output`` is the checkpoint itself or a
            folder.

    """
    from lr0fm.lrtk0.checkpoints import WHICH, CheckpointError, check_tensors, lrtk0_hparams, read_checkpoint

    checkpoint = Path(checkpoint)
    target = Path(output) if output else checkpoint.with_suffix(".safetensors")
    if target.resolve() == checkpoint.resolve() or (target.exists() and target.samefile(checkpoint)):
        raise CheckpointError(
            f"-o {str(target)!r} is the checkpoint itself; refusing to overwrite it. Pass another output file, "
            "e.g. -o lr_tokens.safetensors."
        )
    if target.is_dir():
        example = target / "lr_tokens.safetensors"
        raise CheckpointError(f"-o {str(target)!r} is a folder; pass a file name, e.g. -o {example}.")
    state = read_checkpoint(checkpoint, WHICH)
    hparams = lrtk0_hparams(checkpoint, state, WHICH)
    if hparams.get("method", "lr_tokens") == "none":
        raise CheckpointError(
            f"{str(checkpoint)!r} trains method='none' (fine-tuned backbone weights, no tokens), so there is no "
            "tokens-only export; benchmark it with `lr0fm validate --ckpt_path`."
        )
    accepted = inspect.signature(LRTK0Module.__init__).parameters
    kwargs = {key: value for key, value in hparams.items() if key in accepted and key != "self"}
    kwargs["activation_checkpointing"] = False
    try:
        module = LRTK0Module(**kwargs)
    except Exception as exc:  # noqa: BLE001 - missing weights, an unknown spec, a bad setting: one line
        raise CheckpointError(
            f"checkpoint {str(checkpoint)!r} was trained on backbone {hparams['backbone']!r}, which cannot be "
            f"built here: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
        ) from exc
    expected = module.checkpoint_shapes()
    check_tensors(checkpoint, state["state_dict"], expected, f"backbone {hparams['backbone']!r}")
    module.load_state_dict({name: state["state_dict"][name] for name in expected}, strict=False)
    return module.export_tokens(target)
