"""Scoring: images at R resolutions -> top-5 class predictions, and exact, DDP-synchronised counts."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torchmetrics import Metric

from lr0fm.models.base import Backbone


def predict_top5(
    backbone: Backbone, classifier: torch.Tensor, views: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-5 predicted classes of every view, with their cosine similarities.

    Args:
        backbone: the image encoder.
        classifier: ``[C, D]`` normalised class embeddings.
        views: ``[B, R, 3, H, W]`` preprocessed images at R resolutions.

    Returns:
        ``[B, R, k]`` class indices, best first (``k = min(5, C)``), and ``[B, R, k]`` float32 cosine
        similarities of image and class embeddings.

    The image encoder runs once per resolution on the ``B`` views of that resolution (the forward shape of a
    per-resolution evaluation with the same batch size), not on all ``B x R`` views at once: the same
    numbers, and on a CPU the smaller matrices stay in cache (``benchmarks/benchmark_speed.py``).
    """
    k = min(5, classifier.shape[0])
    weights = classifier.float().t()
    indices, values = [], []
    for j in range(views.shape[1]):
        feats = F.normalize(backbone.encode_image(views[:, j]).float(), dim=-1)
        top = (feats @ weights).topk(k, dim=-1)
        indices.append(top.indices)
        values.append(top.values)
    return torch.stack(indices, dim=1), torch.stack(values, dim=1)


class ZeroShotCounts(Metric):
    """Top-1/top-5 hits per resolution and per class, plus per-sample predictions; summed/gathered across ranks.

    Args:
        num_resolutions: views per image.
        num_classes: size of the classifier (for the per-class hits behind mean per-class recall).
        keep_predictions: also keep per-sample top-5 classes and scores.
    """

    full_state_update = False

    def __init__(self, num_resolutions: int, num_classes: int, keep_predictions: bool = True) -> None:
        super().__init__()
        self.keep_predictions = keep_predictions
        self.add_state("top1", torch.zeros(num_resolutions, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("top5", torch.zeros(num_resolutions, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("skipped", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("class_top1", torch.zeros(num_resolutions, num_classes, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("class_total", torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")
        if keep_predictions:
            self.add_state("indices", [], dist_reduce_fx="cat")
            self.add_state("labels", [], dist_reduce_fx="cat")
            self.add_state("preds", [], dist_reduce_fx="cat")
            self.add_state("scores", [], dist_reduce_fx="cat")

    def update(
        self,
        top5: torch.Tensor,
        labels: torch.Tensor,
        indices: torch.Tensor,
        skipped: int = 0,
        scores: torch.Tensor | None = None,
    ) -> None:
        """Add a batch: ``top5`` (and ``scores``) are ``[B, R, k]``, ``labels`` and ``indices`` are ``[B]``."""
        hits = top5 == labels.view(-1, 1, 1)
        self.top1 += hits[..., 0].sum(0)
        self.top5 += hits.any(-1).sum(0)
        self.total += labels.numel()
        self.skipped += int(skipped)
        self.class_top1.index_add_(1, labels, hits[..., 0].t().long())
        self.class_total += torch.bincount(labels, minlength=self.class_total.numel())
        if self.keep_predictions:
            self.indices.append(indices)
            self.labels.append(labels)
            self.preds.append(top5)
            self.scores.append(scores if scores is not None else torch.full(top5.shape, float("nan")))

    def add_skipped(self, skipped: int) -> None:
        """Count corrupt images dropped from a batch that had no decodable sample."""
        self.skipped += int(skipped)

    def compute(self) -> dict[str, torch.Tensor]:
        """Counts (and per-sample predictions ordered by sample index)."""
        out = {"top1": self.top1, "top5": self.top5, "total": self.total, "skipped": self.skipped}
        out.update(class_top1=self.class_top1, class_total=self.class_total)
        if self.keep_predictions:
            if isinstance(self.indices, list) and not self.indices:
                idx = torch.zeros(0, dtype=torch.long)
                empty = torch.zeros(0, len(self.top1), 5)
                out.update(indices=idx, labels=idx, preds=empty.long(), scores=empty)
            else:
                idx, labels, preds, scores = (_cat(x) for x in (self.indices, self.labels, self.preds, self.scores))
                order = idx.argsort()
                out.update(indices=idx[order], labels=labels[order], preds=preds[order], scores=scores[order])
        return out


def _cat(x: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
    """A list state is a list before synchronisation and one tensor after it."""
    return torch.cat(x) if isinstance(x, list) else x


def counts_to_records(
    counts: dict[str, torch.Tensor],
    *,
    model: str,
    dataset: str,
    resolutions: Sequence,
    num_classes: int,
    protocol: str | None = None,
    chain: str | None = None,
) -> list[dict]:
    """One results-table record per resolution (with the LR protocol and chain when given)."""
    total = int(counts["total"])
    # torchmetrics squeezes one-element outputs of compute(): with one resolution the counts are 0-dim
    top1, top5 = counts["top1"].reshape(-1), counts["top5"].reshape(-1)
    class_total = counts["class_total"].reshape(-1)
    class_top1 = counts["class_top1"].reshape(len(top1), -1)
    present = class_total > 0
    records = []
    for i, res in enumerate(resolutions):
        rec = {
            "model": model,
            "dataset": dataset,
            "resolution": res,
            **({"protocol": protocol} if protocol is not None else {}),
            **({"chain": chain} if chain is not None else {}),
            "top1": int(top1[i]) / total if total else float("nan"),
            "top5": int(top5[i]) / total if total else float("nan"),
            # CLIP_benchmark's mean_per_class_recall: mean over the classes that have test images
            "mean_per_class_recall": float((class_top1[i][present].double() / class_total[present]).mean())
            if bool(present.any())
            else float("nan"),
            "num_samples": total,
            "num_classes": num_classes,
        }
        if int(counts["skipped"]):
            rec["num_skipped"] = int(counts["skipped"])
        records.append(rec)
    return records
