"""Robustness rankings: SAR-n and WAR-n of every model as sorted bars, one figure per low resolution."""

from __future__ import annotations

from pathlib import Path

from lr0fm.analysis import ANALYSES
from lr0fm.analysis.context import ReportContext
from lr0fm.analysis.figures import FigureRecord, save_figure
from lr0fm.analysis.style import pyplot, resolution_label

SECTION = "Robustness"


def _bars(ax, ctx: ReportContext, items: list[tuple[str, float]], label: str) -> None:
    items = sorted(items, key=lambda x: x[1])  # best at the top of a horizontal bar chart
    names = [m for m, _ in items]
    ax.barh(range(len(items)), [v for _, v in items], color=[ctx.colors[ctx.family(m)] for m in names], height=0.75)
    ax.set_yticks(range(len(items)), names, fontsize=7 if len(items) <= 30 else 5.5)
    ax.set_ylim(-0.6, len(items) - 0.4)
    ax.set_xlabel(f"{label} (%)")
    ax.set_title(label)
    ax.grid(axis="x", alpha=0.25)


def ranking_figure(ctx: ReportContext, out: Path, resolution: int) -> FigureRecord:
    """SAR-n and WAR-n bars of every model at ``resolution``."""
    plt = pyplot()
    summaries = ctx.summaries(resolution)
    n = f"{resolution}"
    fig, axes = plt.subplots(1, 2, figsize=(12, max(3.0, 0.15 * len(summaries) + 1.4)))
    _bars(axes[0], ctx, [(s.model, 100 * s.sar) for s in summaries], f"SAR-{n}")
    _bars(axes[1], ctx, [(s.model, 100 * s.war) for s in summaries], f"WAR-{n}")
    from matplotlib.patches import Patch

    fig.legend(
        handles=[Patch(color=ctx.colors[f], label=f) for f in ctx.families],
        loc="lower center",
        ncol=min(8, len(ctx.families)),
        fontsize=7,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.35 / (0.15 * len(summaries) + 1.4), 1, 1))
    rows = [
        {
            "model": s.model,
            "family": ctx.family(s.model),
            "resolution": resolution,
            "sar": round(s.sar, 6),
            "war": round(s.war, 6),
            "rank_war": s.rank_war,
        }
        for s in summaries
    ]
    record = FigureRecord(
        name=f"robustness_ranking_{resolution}",
        title=f"SAR-{n} and WAR-{n} ranking",
        caption=f"Models ranked by SAR-{n} (mean gamma over datasets) and WAR-{n} (weighted mean of Gamma) at "
        f"{resolution_label(resolution)}, coloured by family.",
        command=ctx.regenerate("robustness_ranking"),
        section=SECTION,
        analysis="robustness_ranking",
    )
    return save_figure(fig, out, record, rows)


@ANALYSES.register("robustness_ranking", kind="table", title="SAR-n and WAR-n rankings")
def robustness_ranking(ctx: ReportContext, out: Path) -> list[FigureRecord]:
    """One SAR/WAR ranking figure per low resolution of the table."""
    return [ranking_figure(ctx, out, r) for r in ctx.resolutions if ctx.summaries(r)]
