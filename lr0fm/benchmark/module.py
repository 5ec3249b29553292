"""The zero-shot LightningModule: ``Trainer.validate`` runs the benchmark, so DDP and precision come free."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import lightning as L
import torch
from torch import nn

from lr0fm.benchmark.data import ViewMaker, check_corrupt
from lr0fm.benchmark.scoring import ZeroShotCounts, counts_to_records, predict_top5
from lr0fm.datasets.base import ZeroShotDataset
from lr0fm.models.base import Backbone

#: ``(backbone, dataset, device) -> [C, D]`` normalised class embeddings (e.g. ``ClassifierCache.for_dataset``).
ClassifierFn = Callable[[Backbone, ZeroShotDataset, torch.device], torch.Tensor]
#: ``(task, records, predictions or None) -> None``, called when a dataset is finished.
TaskEndFn = Callable[["ZeroShotTask", list[dict], dict | None], None]


@dataclass
class ZeroShotTask:
    """One dataset of a backbone's validation: what is scored and at which resolutions.

    Attributes:
        name: ``dataset`` column of the records.
        dataset: the evaluation set (its class names size the counts).
        resolutions: resolution of each view, in the order the dataset's transform produces them.
        chain: ``chain`` column of the records (the LR chain the protocol chose for this backbone).
        extra: columns added to every record of this task (e.g. run metadata).
    """

    name: str
    dataset: ZeroShotDataset
    resolutions: Sequence
    chain: str | None = None
    extra: dict = field(default_factory=dict)


class ZeroShotModule(L.LightningModule):
    """Scores one backbone on several datasets at several resolutions (one dataloader serves them all).

    The text classifiers are built when validation starts, on the device the Trainer placed the module on
    (so nothing guesses ranks or moves the backbone back and forth). After ``trainer.validate(module,
    dataloader)``, :attr:`records` holds one results-table record per (dataset, resolution), identical on
    every rank, and :attr:`predictions` the per-sample top-5 classes and scores of each dataset.

    Args:
        backbone: the model (its image encoder is used; classifiers come from ``classifier_fn``).
        tasks: the datasets; a batch's ``task`` field indexes them (:func:`lr0fm.benchmark.data.make_loader`).
        classifier_fn: builds (or fetches from a cache) a dataset's classifier on a device.
        model_name: ``model`` column of the records.
        protocol: ``protocol`` column of the records (the LR protocol's name).
        keep_predictions: also gather per-sample predictions.
        skip_corrupt: skip undecodable images (counted) instead of stopping with the file's name.
        on_task_end: called on every rank as soon as a dataset is finished, with its task, records and
            predictions (``lr0fm benchmark`` writes them there, so a kill loses at most the dataset in progress).
        view_makers: per task, turns what a batch carries (already on the module's device) into
            ``[B, R, 3, S, S]`` float32 views: uint8 views to scale and normalise
            (:class:`lr0fm.protocols.chains.FloatViews`) or decoded images to make views of
            (:class:`lr0fm.protocols.device.DeviceViews`), see :func:`lr0fm.benchmark.data.view_pipeline`;
            ``None`` (for all tasks or one): the batches carry the views. A view maker with a
            ``record_columns(resolution) -> dict`` method adds those columns to the task's records (the SR
            front-end's model, passes and time, :class:`lr0fm.sr.chain.SRViews`).
    """

    def __init__(
        self,
        backbone: Backbone,
        tasks: Sequence[ZeroShotTask],
        classifier_fn: ClassifierFn,
        *,
        model_name: str,
        protocol: str | None = None,
        keep_predictions: bool = True,
        skip_corrupt: bool = False,
        on_task_end: TaskEndFn | None = None,
        view_makers: Sequence[ViewMaker | None] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.tasks = list(tasks)
        self.classifier_fn = classifier_fn
        self.model_name = model_name
        self.protocol = protocol
        self.skip_corrupt = skip_corrupt
        self.counts = nn.ModuleList(
            ZeroShotCounts(len(t.resolutions), t.dataset.num_classes, keep_predictions) for t in self.tasks
        )
        self.classifiers: list[torch.Tensor | None] = [None] * len(self.tasks)
        self.on_task_end = on_task_end
        self.view_makers = list(view_makers) if view_makers is not None else None
        self.records: list[dict] = []
        self.predictions: dict[str, dict[str, torch.Tensor]] = {}
        self._finished = 0

    def build_classifiers(self) -> None:
        """Build every task's classifier on the module's device (once; a cache makes reruns free)."""
        for i, task in enumerate(self.tasks):
            if self.classifiers[i] is None or self.classifiers[i].device != self.device:
                self.classifiers[i] = self.classifier_fn(self.backbone, task.dataset, self.device)

    def on_validation_start(self) -> None:
        """Classifiers on the device the Trainer chose."""
        self.build_classifiers()

    def on_validation_epoch_start(self) -> None:
        """Start from zero counts."""
        for counts in self.counts:
            counts.reset()
        self.records, self.predictions, self._finished = [], {}, 0

    def validation_step(self, batch, batch_idx: int) -> None:
        """Predict every view of the batch and count hits for the batch's dataset (:func:`~.data.collate`)."""
        views, labels, indices, corrupt, task = batch
        self._finish_tasks(task)  # the datasets before this one are complete on this rank
        counts = self.counts[task]
        skipped = check_corrupt(corrupt, self.skip_corrupt)
        if views is None:
            counts.add_skipped(skipped)
            return
        with torch.no_grad():
            make_views = self.view_makers[task] if self.view_makers is not None else None
            if make_views is not None:
                views = make_views(views)
            top5, scores = predict_top5(self.backbone, self.classifiers[task], views)
        counts.update(top5, labels, indices, skipped, scores)

    test_step = validation_step
    on_test_start = on_validation_start
    on_test_epoch_start = on_validation_epoch_start

    def on_validation_epoch_end(self) -> None:
        """Finish the datasets not finished yet."""
        self._finish_tasks(len(self.tasks))

    def _finish_tasks(self, upto: int) -> None:
        """Finish tasks ``[finished, upto)`` in order: every rank does so in the same order (sync is collective)."""
        while self._finished < upto:
            self._finish(self._finished)
            self._finished += 1

    def _finish(self, index: int) -> None:
        """Synchronise a dataset's counts across ranks, make its records (and report them to ``on_task_end``)."""
        task, counts, classifier = self.tasks[index], self.counts[index], self.classifiers[index]
        result = counts.compute()
        records = counts_to_records(
            result,
            model=self.model_name,
            dataset=task.name,
            resolutions=task.resolutions,
            num_classes=int(classifier.shape[0]),
            protocol=self.protocol,
            chain=task.chain,
        )
        maker = self.view_makers[index] if self.view_makers is not None else None
        columns = getattr(maker, "record_columns", None)  # per-resolution columns (an SR front-end's cost)
        records = [{**rec, **task.extra, **(columns(rec["resolution"]) if columns else {})} for rec in records]
        self.records += records
        if "indices" in result:  # torchmetrics squeezes one-element outputs (one image): unsqueeze
            shape = (-1, len(task.resolutions), min(5, int(classifier.shape[0])))
            self.predictions[task.name] = {
                "indices": result["indices"].reshape(-1).cpu(),
                "labels": result["labels"].reshape(-1).cpu(),
                "preds": result["preds"].reshape(shape).cpu(),
                "scores": result["scores"].reshape(shape).float().cpu(),
            }
        if self._trainer is not None and self.logger is not None:  # lr0fm benchmark: TensorBoard scalars
            self.logger.log_metrics({f"top1/{task.name}/{rec['resolution']}": rec["top1"] for rec in records}, step=0)
        counts.reset()
        if self.on_task_end is not None:
            self.on_task_end(task, records, self.predictions.get(task.name))

    on_test_epoch_end = on_validation_epoch_end
