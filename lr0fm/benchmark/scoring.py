"""Scoring: images at R resolutions -> top-5 class predictions, and exact, DDP-synchronised counts."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torchmetrics import Metric

from lr0fm.models.base import Backbone


def predict_top5(backbone: Backbone, classifier: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
    """Top-5 predicted classes of every view.

    Args:
        backbone: the image encoder.
        classifier: ``[C, D]`` normalised class embeddings.
        views: ``[B, R, 3, H, W]`` preprocessed images at R resolutions.

    Returns:
        ``[B, R, k]`` class indices, best first (``k = min(5, C)``).
    """
    b, r = views.shape[:2]
    feats = F.normalize(backbone.encode_image(views.flatten(0, 1)).float(), dim=-1)
    logits = feats @ classifier.float().t()
    return logits.topk(min(5, classifier.shape[0]), dim=-1).indices.view(b, r, -1)


class ZeroShotCounts(Metric):
    """Top-1/top-5 hit counts per resolution, plus per-sample predictions; summed/gathered across ranks."""

    full_state_update = False

    def __init__(self, num_resolutions: int, keep_predictions: bool = True) -> None:
        super().__init__()
        self.keep_predictions = keep_predictions
        self.add_state("top1", torch.zeros(num_resolutions, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("top5", torch.zeros(num_resolutions, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("skipped", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        if keep_predictions:
            self.add_state("indices", [], dist_reduce_fx="cat")
            self.add_state("labels", [], dist_reduce_fx="cat")
            self.add_state("preds", [], dist_reduce_fx="cat")

    def update(self, top5: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor, skipped: int = 0) -> None:
        """Add a batch: ``top5`` is ``[B, R, k]``, ``labels`` and ``indices`` are ``[B]``."""
        hits = top5 == labels.view(-1, 1, 1)
        self.top1 += hits[..., 0].sum(0)
        self.top5 += hits.any(-1).sum(0)
        self.total += labels.numel()
        self.skipped += int(skipped)
        if self.keep_predictions:
            self.indices.append(indices)
            self.labels.append(labels)
            self.preds.append(top5)

    def add_skipped(self, skipped: int) -> None:
        """Count corrupt images dropped from a batch that had no decodable sample."""
        self.skipped += int(skipped)

    def compute(self) -> dict[str, torch.Tensor]:
        """Counts (and per-sample predictions ordered by sample index)."""
        out = {"top1": self.top1, "top5": self.top5, "total": self.total, "skipped": self.skipped}
        if self.keep_predictions:
            if isinstance(self.indices, list) and not self.indices:
                idx = torch.zeros(0, dtype=torch.long)
                out.update(indices=idx, labels=idx, preds=torch.zeros(0, len(self.top1), 5, dtype=torch.long))
            else:
                idx, labels, preds = (_cat(x) for x in (self.indices, self.labels, self.preds))
                order = idx.argsort()
                out.update(indices=idx[order], labels=labels[order], preds=preds[order])
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
            "num_samples": total,
            "num_classes": num_classes,
        }
        if int(counts["skipped"]):
            rec["num_skipped"] = int(counts["skipped"])
        records.append(rec)
    return records
