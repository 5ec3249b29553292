"""The zero-shot LightningModule: ``Trainer.validate`` runs the benchmark, so DDP and precision come free."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch

from lr0fm.benchmark.data import check_corrupt
from lr0fm.benchmark.scoring import ZeroShotCounts, counts_to_records, predict_top5
from lr0fm.models.base import Backbone


class ZeroShotModule(L.LightningModule):
    """Scores one dataset at several resolutions against a fixed text classifier.

    After ``trainer.validate(module, datamodule)``, :attr:`records` holds one results-table record per
    resolution (identical on every rank) and :attr:`predictions` the per-sample top-5 predictions.

    Args:
        backbone: the model (its image encoder is used; the classifier is precomputed).
        classifier: ``[C, D]`` normalised class embeddings.
        resolutions: resolution of each view, in the order the transform produces them.
        model_name: ``model`` column of the records.
        dataset_name: ``dataset`` column of the records.
        protocol: ``protocol`` column of the records (the LR protocol's name).
        chain: ``chain`` column of the records (the LR chain the protocol chose for this backbone).
        keep_predictions: also gather per-sample predictions.
        skip_corrupt: skip undecodable images (counted) instead of stopping with the file's name.
    """

    def __init__(
        self,
        backbone: Backbone,
        classifier: torch.Tensor,
        resolutions: Sequence,
        *,
        model_name: str,
        dataset_name: str,
        protocol: str | None = None,
        chain: str | None = None,
        keep_predictions: bool = True,
        skip_corrupt: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.register_buffer("classifier", classifier, persistent=False)
        self.resolutions = list(resolutions)
        self.model_name = model_name
        self.dataset_name = dataset_name
        self.protocol, self.chain = protocol, chain
        self.skip_corrupt = skip_corrupt
        self.counts = ZeroShotCounts(len(self.resolutions), keep_predictions)
        self.records: list[dict] = []
        self.predictions: dict[str, torch.Tensor] = {}

    def on_validation_epoch_start(self) -> None:
        """Start from zero counts."""
        self.counts.reset()

    def validation_step(self, batch, batch_idx: int) -> None:
        """Predict every view of the batch and count hits."""
        views, labels, indices, corrupt = batch
        skipped = check_corrupt(corrupt, self.skip_corrupt)
        if views is None:
            self.counts.add_skipped(skipped)
            return
        with torch.no_grad():
            top5 = predict_top5(self.backbone, self.classifier, views)
        self.counts.update(top5, labels, indices, skipped)

    test_step = validation_step
    on_test_epoch_start = on_validation_epoch_start

    def on_validation_epoch_end(self) -> None:
        """Synchronise counts across ranks and turn them into records (logged as ``top1/<dataset>/<res>``)."""
        result = self.counts.compute()
        self.records = counts_to_records(
            result,
            model=self.model_name,
            dataset=self.dataset_name,
            resolutions=self.resolutions,
            num_classes=int(self.classifier.shape[0]),
            protocol=self.protocol,
            chain=self.chain,
        )
        if "indices" in result:  # torchmetrics squeezes one-element outputs (a one-image dataset): unsqueeze
            preds = result["preds"]
            self.predictions = {
                "indices": result["indices"].reshape(-1).cpu(),
                "labels": result["labels"].reshape(-1).cpu(),
                "preds": (preds if preds.dim() == 3 else preds.reshape(1, len(self.resolutions), -1)).cpu(),
            }
        if self._trainer is not None:  # driven by a Trainer (lr0fm benchmark), not by evaluate_backbone
            for rec in self.records:
                self.log(f"top1/{self.dataset_name}/{rec['resolution']}", rec["top1"], rank_zero_only=True)
        self.counts.reset()

    on_test_epoch_end = on_validation_epoch_end
