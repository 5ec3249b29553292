"""Robustness vs pre-training data size (paper Fig. 5 right (ii)): WAR-n against image-text pairs, dot ~ size."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lr0fm.analysis import ANALYSES
from lr0fm.analysis.context import ReportContext
from lr0fm.analysis.figures import FigureRecord, save_figure
from lr0fm.analysis.model_size import SECTION, family_legend, scatter_models, with_property
from lr0fm.analysis.properties import format_count
from lr0fm.analysis.style import pyplot
from lr0fm.metrics.correlation import spearman


@ANALYSES.register("pretraining_data", kind="table", title="Robustness vs pre-training data size")
def pretraining_data(ctx: ReportContext, out: Path) -> list[FigureRecord]:
    """WAR-n against the number of pre-training pairs, dot area proportional to parameters."""
    n = ctx.resolution
    rows = with_property(ctx, ctx.property_rows(n), "pretrain_pairs", "pre-training data size", "pretraining_data")
    if len(rows) < 2:
        return []
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    scatter_models(ax, ctx, rows, "pretrain_pairs", "params_m")
    ax.set_xscale("log")
    ticks = sorted({r["pretrain_pairs"] for r in rows})
    ax.set_xticks(ticks, [format_count(t) for t in ticks], fontsize=7, rotation=45)
    ax.minorticks_off()
    rho = spearman(np.array([r["pretrain_pairs"] for r in rows]), np.array([r["war_percent"] for r in rows]))
    ax.set_xlabel("pre-training image-text pairs (log)")
    ax.set_ylabel(f"WAR-{n} (%)")
    ax.set_title(f"Robustness vs pre-training data size (Spearman {rho:.2f})")
    ax.grid(alpha=0.25)
    family_legend(ax, ctx, rows)
    fig.tight_layout()
    keys = ("model", "family", "pretrain_data", "pretrain_pairs", "params_m", "war_percent", "sar_percent")
    record = FigureRecord(
        name=f"robustness_vs_pretraining_{n}",
        title=f"WAR-{n} vs pre-training data size (paper Fig. 5 right, ii)",
        caption=f"WAR-{n} against the number of pre-training image-text pairs, dot area proportional to the "
        "parameter count; quality of the data matters more than its quantity.",
        command=ctx.regenerate("pretraining_data"),
        section=SECTION,
        analysis="pretraining_data",
    )
    return [save_figure(fig, out, record, [{k: r[k] for k in keys} for r in rows])]
