"""LR-TK0 distillation loss: CLIP-style symmetric InfoNCE between teacher HR and student embeddings.

The frozen teacher embeds the HR image; the student (tokens on) embeds the HR image and its K LR versions.
Every student view is contrasted with the teacher's HR embeddings of the *global* batch (in-batch
negatives gathered across DDP ranks with gradients by the LightningModule, see
:meth:`lr0fm.lrtk0.module.LRTK0Module.gather`), so each rank computes the loss of the whole global batch.
The RobustSAM baseline has its own per-sample loss (:func:`robust_sam_loss`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def symmetric_info_nce(queries: torch.Tensor, keys: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """CLIP loss: mean of the query->key and key->query cross-entropies; row ``i`` matches row ``i``.

    Args:
        queries: L2-normalised ``[B, D]`` embeddings.
        keys: L2-normalised ``[B, D]`` embeddings.
        logit_scale: the (already exponentiated) inverse temperature.

    """
    logits = logit_scale * queries @ keys.t()
    labels = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))


def distillation_loss(
    teacher: torch.Tensor,
    student: torch.Tensor,
    logit_scale: torch.Tensor,
    *,
    hr_cosine_weight: float = 0.0,
    reduction: str = "sum",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """LR-TK0 loss of one (global) batch.

    Args:
        teacher: L2-normalised teacher HR embeddings ``[B, D]`` (no gradient).
        student: L2-normalised student embeddings ``[V, B, D]``; view 0 is the HR image, views 1.. the LR ones.
        logit_scale: exponentiated learnable inverse temperature.
        hr_cosine_weight: weight of ``1 - cos(student HR, teacher HR)``, which keeps the student's HR
            embedding on the teacher's (cuts the native-resolution cost); 0 disables it.
        reduction: ``"sum"`` of the per-view losses (the authors: ``total_loss_lr + total_loss_hr``) or
            their ``"mean"``.

    Returns:
        ``(loss, parts)``: the total and its detached parts ``hr``, ``lr`` (mean over LR views) and
        ``cosine`` (when enabled).

    """
    per_view = torch.stack([symmetric_info_nce(view, teacher, logit_scale) for view in student])
    loss = per_view.sum() if reduction == "sum" else per_view.mean()
    parts = {"hr": per_view[0].detach()}
    if len(per_view) > 1:
        parts["lr"] = per_view[1:].mean().detach()
    if hr_cosine_weight:
        cosine = (1.0 - (student[0] * teacher).sum(-1)).mean()
        loss = loss + hr_cosine_weight * cosine
        parts["cosine"] = cosine.detach()
    return loss, parts


def caption_classification_loss(student: torch.Tensor, head: torch.nn.Module, labels: torch.Tensor) -> torch.Tensor:
    """The paper's "CL" variant: classify every student view into the training captions.

    As the authors' ``train_one_epoch_lr4`` (``EVA/EVA-CLIP/rei/training/train.py``) with their ``lr_head``
    (``eva_clip/model_lr.py``): a trainable linear head on the normalised image features, cross-entropy
    over the HR and all LR views with the image's caption id as the label.

    Args:
        student: L2-normalised student embeddings ``[V, B, D]``.
        head: the linear caption-id head ``D -> C``.
        labels: caption id of each image ``[B]``.

    """
    logits = head(student.to(head.weight.dtype))  # [V, B, C]
    return F.cross_entropy(logits.flatten(0, 1), labels.repeat(student.shape[0]))


def robust_sam_loss(
    teacher: torch.Tensor,
    teacher_features: torch.Tensor,
    student: torch.Tensor,
    student_features: torch.Tensor,
    *,
    reduction: str = "sum",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The RobustSAM baseline's loss: LR outputs matched to the frozen teacher's HR ones, view by view.

    As the authors' ``train_one_epoch_lr19`` (``EVA/EVA-CLIP/rei/training/train.py``): per LR view, the mean
    squared difference of the robust feature maps (their ``Mask_Feature_Consistency_Loss``) plus the batch mean
    of the squared L2 distance between the normalised embeddings (their ``token_consistency_loss``, i.e.
    ``2 - 2 cos``); no temperature, no in-batch negatives.

    Args:
        teacher: L2-normalised teacher HR embeddings ``[B, D]`` (no gradient).
        teacher_features: the teacher's clear robust features ``[B, C, H, W]`` (no gradient).
        student: L2-normalised student embeddings of the LR views ``[K, B, D]``.
        student_features: the student's robust features ``[K, B, C, H, W]``.
        reduction: ``"sum"`` over the views (the authors) or their ``"mean"``.

    Returns:
        ``(loss, parts)``: the total and its detached parts ``token`` and ``features`` (means over the views).

    """
    features = (student_features - teacher_features).pow(2).flatten(1).mean(-1)  # [K]
    token = (student - teacher).pow(2).sum(-1).mean(-1)  # [K]
    per_view = features + token
    loss = per_view.sum() if reduction == "sum" else per_view.mean()
    return loss, {"token": token.mean().detach(), "features": features.mean().detach()}
