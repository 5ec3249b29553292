"""The model x dataset heatmap of Gamma-n (improved relative robustness), models ordered by WAR-n."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lr0fm.analysis import ANALYSES
from lr0fm.analysis.context import ReportContext
from lr0fm.analysis.figures import FigureRecord, save_figure
from lr0fm.analysis.style import dataset_label, pyplot, resolution_label

SECTION = "Robustness"


def heatmap_figure(ctx: ReportContext, out: Path, resolution: int) -> FigureRecord | None:
    """Gamma of every (model, dataset) cell at ``resolution`` (missing cells blank)."""
    summaries = sorted(ctx.summaries(resolution), key=lambda s: (s.rank_war, s.model))
    if not summaries:
        return None
    models = [s.model for s in summaries]
    values = np.full((len(models), len(ctx.datasets)), np.nan)
    rows = []
    for i, model in enumerate(models):
        for j, dataset in enumerate(ctx.datasets):
            score = ctx.score(model, dataset, resolution)
            if score is not None:
                values[i, j] = 100 * score.Gamma
                rows.append({"model": model, "dataset": dataset, "resolution": resolution, "Gamma": score.Gamma})
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(2.2 + 0.62 * len(ctx.datasets), 1.6 + 0.19 * len(models)))
    image = ax.imshow(
        np.ma.masked_invalid(values), cmap="magma", vmin=0, vmax=max(100.0, np.nanmax(values)), aspect="auto"
    )
    ax.set_xticks(range(len(ctx.datasets)), [dataset_label(d) for d in ctx.datasets], rotation=45, ha="right")
    ax.set_yticks(range(len(models)), models, fontsize=7 if len(models) <= 30 else 5.5)
    size = 6 if len(models) <= 30 else 4.5
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=size, color="white" if v < 55 else "black")
    fig.colorbar(image, ax=ax, label=f"Gamma-{resolution} (%)", fraction=0.04)
    ax.set_title(f"Gamma-{resolution} per model and dataset (models by WAR-{resolution})")
    fig.tight_layout()
    record = FigureRecord(
        name=f"gamma_heatmap_{resolution}",
        title=f"Gamma-{resolution} heatmap",
        caption=f"Improved relative robustness Gamma of every model (rows, best WAR-{resolution} first) on every "
        f"dataset at {resolution_label(resolution)}, in percent.",
        command=ctx.regenerate("gamma_heatmap"),
        section=SECTION,
        analysis="gamma_heatmap",
    )
    return save_figure(fig, out, record, rows)


@ANALYSES.register("gamma_heatmap", kind="table", title="Gamma-n heatmap")
def gamma_heatmap(ctx: ReportContext, out: Path) -> list[FigureRecord]:
    """The Gamma heatmap at the report's resolution."""
    record = heatmap_figure(ctx, out, ctx.resolution)
    return [record] if record else []
