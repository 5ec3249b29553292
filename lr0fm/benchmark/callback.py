"""Zero-shot benchmark during LR-TK0 training: ACC/SAR/WAR per resolution, logged like any metric.

The callback runs :func:`lr0fm.benchmark.engine.evaluate_backbone` on the student (tokens on) at the end
of every validation loop (so ``trainer.check_val_every_n_epoch`` sets how often; sanity checks skipped)
and of every test loop. SAR and WAR follow the paper's LR-TK0 convention: gamma is relative to the
*teacher's* (vanilla model's) HR accuracy, evaluated once with the tokens off. It logs
``<stage>/acc_<n>``, ``<stage>/sar_<n>``, ``<stage>/war_<n>`` for every resolution ``n`` (and ``hr``),
so ``ModelCheckpoint(monitor="val/war_16", mode="max")`` keeps the best tokens.

Units: fractions, as ``results.csv`` and the benchmark's TensorBoard scalars (``acc`` 0.62 = 62 % top-1). SAR
and WAR are means of gamma-like ratios (LR accuracy over the teacher's HR accuracy), so they exceed 1 when the
student at that resolution beats the teacher at HR (``sar_hr`` often does: tokens on, HR image).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from lr0fm.benchmark.classifier import ClassifierCache
from lr0fm.benchmark.engine import evaluate_backbone
from lr0fm.datasets import ZeroShotDataset, build_dataset
from lr0fm.metrics import DEFAULT_WAR_WEIGHTS, ResultsTable, compute_report
from lr0fm.protocols import DEFAULT_PROTOCOL, parse_resolutions

STUDENT, TEACHER = "student", "teacher"


def subsample(dataset: ZeroShotDataset, max_samples: int | None) -> ZeroShotDataset:
    """At most ``max_samples`` evenly spaced samples of ``dataset`` (all when ``None`` or enough)."""
    if max_samples is None or len(dataset) <= max_samples:
        return dataset
    picks = np.linspace(0, len(dataset) - 1, max_samples).round().astype(int)
    return dataclasses.replace(dataset, samples=[dataset.samples[i] for i in picks])


def robustness_metrics(
    student: list[dict], teacher: list[dict], weights: Mapping[str, float] | None = None
) -> dict[str, float]:
    """``acc_<n>``, ``sar_<n>``, ``war_<n>`` of the student as fractions, gamma relative to the teacher's HR accuracy.

    ``sar``/``war`` are ratios to the teacher's HR accuracy and may exceed 1 (the student beats the teacher).

    Args:
        student: benchmark records of the student (model name ignored).
        teacher: benchmark records of the teacher, including ``hr``.
        weights: WAR dataset weights; ``None``: the published weights when they cover every dataset,
            else equal weights.

    """
    records = [{**r, "model": STUDENT} for r in student] + [{**r, "model": TEACHER} for r in teacher]
    datasets = sorted({r["dataset"] for r in student})
    if weights is None and not all(d in DEFAULT_WAR_WEIGHTS for d in datasets):
        weights = {d: 1.0 for d in datasets}
    report = compute_report(ResultsTable.from_records(records), weights=weights, references={STUDENT: TEACHER})
    metrics: dict[str, float] = {}
    for row in report.summary:  # fractions, as in the report's files (printed tables show percent)
        if row.model == STUDENT:
            metrics.update({f"acc_{row.resolution}": row.acc, f"sar_{row.resolution}": row.sar})
            metrics[f"war_{row.resolution}"] = row.war
    return metrics


class ZeroShotBenchmark(Callback):
    """Benchmark the current tokens on zero-shot datasets at every validation and test epoch end.

    Args:
        datasets: dataset specs for :func:`lr0fm.datasets.build_dataset` (e.g. ``["toy-texture"]``,
            ``["dtd", "eurosat"]``).
        resolutions: low resolutions and ``"hr"`` (HR is always evaluated: SAR/WAR need it).
        root: folder holding the registered datasets.
        max_samples: evaluate at most this many evenly spaced images per dataset (``None``: all).
        batch_size: images per forward pass.
        num_workers: DataLoader workers of the benchmark.
        weights: WAR weights per dataset (default: see :func:`robustness_metrics`).
        cache_dir: on-disk cache of the text classifiers.
        protocol: LR protocol of the views (default ``paper``: the authors' chain of the backbone).

    """

    def __init__(
        self,
        datasets: list[str],
        resolutions: list[int | str] | None = None,
        root: str | None = None,
        max_samples: int | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        weights: dict[str, float] | None = None,
        cache_dir: str | None = None,
        protocol: str = DEFAULT_PROTOCOL,
    ) -> None:
        if not datasets:
            raise ValueError("ZeroShotBenchmark needs at least one dataset, e.g. datasets: [toy-texture]")
        self.specs = list(datasets)
        self.resolutions = parse_resolutions([*(resolutions or [16, 32]), "hr"])
        self.root, self.max_samples = root, max_samples
        self.batch_size, self.num_workers = batch_size, num_workers
        self.weights, self.cache_dir, self.protocol = weights, cache_dir, protocol
        self._datasets: dict[str, ZeroShotDataset] | None = None
        self._teacher: list[dict] | None = None
        self._cache: ClassifierCache | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Build the datasets up front, so a bad name fails before training starts."""
        if self._datasets is None:
            self._datasets = {spec: subsample(build_dataset(spec, self.root), self.max_samples) for spec in self.specs}
            self._cache = ClassifierCache(self.cache_dir)

    def _evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule, backbone: Any = None) -> list[dict]:
        """Records of ``backbone`` (default: the student, tokens on) on the callback's datasets."""
        return evaluate_backbone(
            backbone if backbone is not None else pl_module.backbone,
            self._datasets,
            self.resolutions,
            protocol=self.protocol,
            model_name=STUDENT if backbone is None else TEACHER,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            device=pl_module.device,
            forward_context=trainer.precision_plugin.forward_context,
            cache=self._cache,
        )

    def run(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        """Evaluate student (and, once, teacher) and return the metrics without a stage prefix."""
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                student = self._evaluate(trainer, pl_module)
                if self._teacher is None:
                    self._teacher = self._teacher_records(trainer, pl_module)
        finally:
            pl_module.train(was_training)
        return robustness_metrics(student, self._teacher, self.weights)

    def _teacher_records(self, trainer: L.Trainer, pl_module: Any) -> list[dict]:
        if pl_module.teacher is not None:  # unfrozen weights: the teacher is a separate frozen instance
            return self._evaluate(trainer, pl_module, pl_module.teacher)
        with pl_module.tokens.disabled():
            return self._evaluate(trainer, pl_module)

    def _log(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for name, value in self.run(trainer, pl_module).items():
            pl_module.log(f"{stage}/{name}", value, on_step=False, on_epoch=True)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Benchmark after each real validation loop (logged as ``val/...``)."""
        if not trainer.sanity_checking:
            self._log(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Benchmark at the end of ``test`` (logged as ``test/...``)."""
        self._log(trainer, pl_module, "test")
