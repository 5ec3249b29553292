"""What every table analysis reads: the results table, its robustness report and the models' properties.

A table analysis is a function ``analysis(ctx, out) -> list[FigureRecord]`` registered in
:data:`lr0fm.analysis.ANALYSES` with ``kind="table"``; it computes arrays from ``ctx`` (with the metrics code,
:mod:`lr0fm.metrics`), draws them, and saves each figure with :func:`lr0fm.analysis.figures.save_figure`. It
returns no figure (and adds a note) when the table lacks what it needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lr0fm.analysis.properties import ModelProperties
from lr0fm.analysis.style import family_colors
from lr0fm.metrics.report import DatasetScore, ModelSummary, RobustnessReport, gamma_matrix
from lr0fm.metrics.table import HR, Resolution, ResultsTable


@dataclass
class ReportContext:
    """Inputs of the table analyses.

    Attributes:
        table: the results table.
        report: its robustness report (``lr0fm.metrics.compute_report``).
        properties: ``{model: ModelProperties}`` for every model of the table.
        resolution: the low resolution of the single-resolution figures (the paper's 16 px).
        pairs: ``(model with LR-TK0 tokens, base model)`` pairs of the table.
        references: the ``--reference MODEL=BASE`` pairs the metrics were computed with.
        command: the ``lr0fm report`` command that regenerates the report (an analysis adds ``--analyses NAME``).
        top_k: how many models the accuracy panels label.
        notes: what an analysis could not draw, and why (shown in the report).
        front_ends: ``{model: FrontEnd}``: the table's SR front-end and LR-token models with what they add at
            inference (:func:`lr0fm.analysis.sr_tradeoff.front_ends`).
    """

    table: ResultsTable
    report: RobustnessReport
    properties: dict[str, ModelProperties]
    resolution: int
    pairs: list[tuple[str, str]] = field(default_factory=list)
    references: dict[str, str] = field(default_factory=dict)
    command: str = "lr0fm report"
    top_k: int = 5
    notes: list[str] = field(default_factory=list)
    front_ends: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._cells = {(s.model, s.dataset, s.resolution): s for s in self.report.per_dataset}
        # the table computes these from its rows on every access: once here
        self._models, self._datasets, self._resolutions = self.table.models, self.table.datasets, self.table.resolutions

    def note(self, text: str) -> None:
        """Add a note for the report (once)."""
        if text not in self.notes:
            self.notes.append(text)

    def regenerate(self, analysis: str) -> str:
        """The command that regenerates the figures of ``analysis``."""
        return f"{self.command} --analyses {analysis}"

    @property
    def models(self) -> list[str]:
        """Models in table order."""
        return self._models

    @property
    def datasets(self) -> list[str]:
        """Datasets in paper order."""
        return self._datasets

    @property
    def resolutions(self) -> list[int]:
        """The table's low resolutions, ascending."""
        return self._resolutions

    @property
    def families(self) -> list[str]:
        """Families in order of first appearance."""
        return list(dict.fromkeys(self.family(m) for m in self.models))

    @property
    def colors(self) -> dict[str, str]:
        """Colour of each family."""
        if not hasattr(self, "_colors"):
            self._colors = family_colors(self.families)
        return self._colors

    def family(self, model: str) -> str:
        """The family of ``model``."""
        return self.properties[model].family

    def score(self, model: str, dataset: str, resolution: Resolution) -> DatasetScore | None:
        """gamma/Gamma of one cell (``None`` when the table lacks it)."""
        return self._cells.get((model, dataset, resolution))

    def summaries(self, resolution: Resolution) -> list[ModelSummary]:
        """ACC/SAR/WAR of every model at ``resolution``."""
        return [s for s in self.report.summary if s.resolution == resolution]

    def hr_accuracy(self, model: str, dataset: str) -> float | None:
        """The HR accuracy ``model``'s gamma is relative to (its reference's under ``--reference``)."""
        row = self.table.get(self.references.get(model, model), dataset, HR)
        return None if row is None else row.top1

    def num_classes(self, model: str, dataset: str) -> int | None:
        """The class count of the chance level of ``model`` on ``dataset``."""
        return self.report.num_classes.get((model, dataset))

    def gamma_matrix(self, resolution: int, attribute: str = "Gamma") -> tuple[list[str], np.ndarray]:
        """``[models, datasets]`` of ``gamma`` or ``Gamma`` over the models with every dataset at ``resolution``."""
        models, matrix = gamma_matrix(self._cells, self.models, self.datasets, resolution)
        if attribute != "Gamma":
            values = [[getattr(self._cells[(m, d, resolution)], attribute) for d in self.datasets] for m in models]
            matrix = np.array(values, dtype=float).reshape(len(models), len(self.datasets))
        return models, matrix

    def property_rows(self, resolution: int) -> list[dict]:
        """One row per model with a summary at ``resolution``: its properties and ACC/SAR/WAR (%)."""
        rows = []
        for s in self.summaries(resolution):
            p = self.properties[s.model]
            rows.append(
                {
                    "model": s.model,
                    "family": p.family,
                    "architecture": p.architecture,
                    "params_m": p.params_m,
                    "pretrain_data": p.pretrain_data,
                    "pretrain_pairs": p.pretrain_pairs,
                    "input_resolution": p.input_resolution,
                    "image_gflops": p.image_gflops,
                    "variant": p.variant,
                    "resolution": resolution,
                    "acc_percent": 100 * s.acc,
                    "sar_percent": 100 * s.sar,
                    "war_percent": 100 * s.war,
                }
            )
        return rows
