"""Dataset representation: how much each dataset's model ranking survives aggregation (paper Fig. 5 left).

The Spearman correlations are those of ``lr0fm metrics report`` (:func:`lr0fm.metrics.compute_report`,
``correlations.csv``): the model ranking by SAR-n computed over Gamma, or by WAR-n, against each dataset's
Gamma ranking. On the published 66-model table at 16 px, EuroSAT goes 0.26 -> 0.49 and ImageNet-A 0.56 -> 0.68.
"""

from __future__ import annotations

from pathlib import Path

from lr0fm.analysis import ANALYSES
from lr0fm.analysis.context import ReportContext
from lr0fm.analysis.figures import FigureRecord, save_figure
from lr0fm.analysis.style import dataset_label, pyplot, resolution_label
from lr0fm.metrics.report import MEAN_ROW

SECTION = "Dataset representation"


def spearman_figure(ctx: ReportContext, out: Path, resolution: int) -> FigureRecord | None:
    """SAR vs WAR Spearman bars per dataset at ``resolution`` (``None`` when the report has no correlations)."""
    rows = [c for c in ctx.report.correlations if c.resolution == resolution]
    if not rows:
        ctx.note(
            f"dataset_correlation: no dataset correlations at {resolution} px (they need >= 3 models with every "
            "dataset)"
        )
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.62 * len(rows) + 1.5), 3.8))
    xs = range(len(rows))
    for offset, attr, color, label in ((-0.2, "spearman_sar", "0.6", "SAR"), (0.2, "spearman_war", "#0072B2", "WAR")):
        values = [getattr(c, attr) for c in rows]
        ax.bar([x + offset for x in xs], values, width=0.4, color=color, label=f"{label}-{resolution} (over Gamma)")
        for x, v in zip(xs, values):
            ax.text(x + offset, max(v, 0), f"{v:.2f}", ha="center", va="bottom", fontsize=5.5, rotation=90)
    ax.set_xticks(
        list(xs), [dataset_label(c.dataset) if c.dataset != MEAN_ROW else "mean" for c in rows], rotation=45, ha="right"
    )
    ax.set_ylabel("Spearman correlation")
    ax.set_ylim(min(0.0, min(min(c.spearman_sar, c.spearman_war) for c in rows) - 0.05), 1.15)
    ax.axhline(0, color="0.3", lw=0.6)
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title(f"Aggregate vs dataset model ranking at {resolution_label(resolution)}")
    ax.grid(axis="y", alpha=0.25)
    fig.tight_layout()
    data = [
        {
            "resolution": c.resolution,
            "dataset": c.dataset,
            "spearman_sar": c.spearman_sar,
            "spearman_war": c.spearman_war,
        }
        for c in rows
    ]
    record = FigureRecord(
        name=f"dataset_spearman_{resolution}",
        title=f"SAR vs WAR: dataset representation at {resolution_label(resolution)} (paper Fig. 5 left)",
        caption=f"Spearman correlation between the model ranking by SAR-{resolution} or WAR-{resolution} (both over "
        "Gamma) and each dataset's own ranking: WAR raises the datasets SAR overlooks.",
        command=ctx.regenerate("dataset_correlation"),
        section=SECTION,
        analysis="dataset_correlation",
    )
    return save_figure(fig, out, record, data)


@ANALYSES.register("dataset_correlation", kind="table", title="SAR vs WAR dataset representation")
def dataset_correlation(ctx: ReportContext, out: Path) -> list[FigureRecord]:
    """The Spearman bars at the report's resolution."""
    record = spearman_figure(ctx, out, ctx.resolution)
    return [record] if record else []
