"""Accuracy vs resolution: one panel per dataset (models as lines) and one per model family (paper Fig. 1).

Readable with the 66-model table: lines are coloured by family, the ``top_k`` models at the report's
resolution are drawn thick and labelled, the rest thin; a model with LR tokens is dash-dotted; each dataset
panel marks the chance level 1/C.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lr0fm.analysis import ANALYSES
from lr0fm.analysis.context import ReportContext
from lr0fm.analysis.figures import FigureRecord, save_figure
from lr0fm.analysis.properties import TOKENS_MARK
from lr0fm.analysis.style import dataset_label, grid, pyplot, resolution_label, spread
from lr0fm.metrics.robustness import mean_accuracy
from lr0fm.metrics.table import HR

SECTION = "Accuracy vs resolution"
#: line style of a model with LR-TK0 tokens (its base keeps the family colour's solid line)
TOKENS_STYLE = "-."


def _axis(ctx: ReportContext) -> list:
    """The x positions: the low resolutions, then HR."""
    return [*ctx.resolutions, HR]


def _label_lines(ax, labelled: list[tuple[str, float, str]], x: float) -> None:
    ys = spread([y for _, y, _ in labelled], gap=4.5, top=99.0)
    for (name, _, color), y in zip(labelled, ys):
        ax.annotate(
            name,
            (x, y),
            xytext=(4, 0),
            textcoords="offset points",
            fontsize=5.5,
            color=color,
            va="center",
            annotation_clip=False,
        )


def _ranked(ctx: ReportContext, dataset: str, rank_res) -> list[str]:
    """Models of ``dataset`` best first at ``rank_res`` (the top-k drawn thick)."""
    rows = [(m, ctx.table.get(m, dataset, rank_res)) for m in ctx.models]
    return [m for m, r in sorted(rows, key=lambda x: -(x[1].top1 if x[1] else -1.0)) if r is not None]


def _legend(fig, ctx: ReportContext) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=ctx.colors[f], lw=2, label=f) for f in ctx.families]
    if any(TOKENS_MARK in m for m in ctx.models):
        handles.append(Line2D([], [], color="0.3", lw=2, ls=TOKENS_STYLE, label="with LR tokens"))
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=min(8, len(handles)),
        fontsize=8,
        frameon=False,
        handlelength=3.5,
        bbox_to_anchor=(0.5, 0.0),
    )


def per_dataset(ctx: ReportContext, out: Path) -> FigureRecord:
    """Top-1 vs resolution, one panel per dataset, one line per model, chance level dashed."""
    plt = pyplot()
    xs = _axis(ctx)
    rank_res = ctx.resolution
    rows_n, cols_n = grid(len(ctx.datasets))
    fig, axes = plt.subplots(rows_n, cols_n, figsize=(4.1 * cols_n, 3.1 * rows_n + 0.6), squeeze=False)
    rows = []
    for ax, dataset in zip(axes.flat, ctx.datasets):
        top = set(_ranked(ctx, dataset, rank_res)[: ctx.top_k])
        classes = [c for m in ctx.models if (c := ctx.num_classes(m, dataset))]
        chance = 100.0 / max(set(classes), key=classes.count) if classes else None
        labelled = []
        for model in ctx.models:
            points = [(i, 100 * row.top1) for i, r in enumerate(xs) if (row := ctx.table.get(model, dataset, r))]
            if not points:
                continue
            color = ctx.colors[ctx.family(model)]
            thick = model in top
            ax.plot(
                *zip(*points),
                color=color,
                ls=TOKENS_STYLE if TOKENS_MARK in model else "-",
                lw=1.8 if thick else 0.6,
                alpha=1.0 if thick else 0.35,
                marker="o" if thick else None,
                ms=2.5,
                zorder=3 if thick else 2,
            )
            if thick:
                labelled.append((model, points[-1][1], color))
            rows += [
                {
                    "dataset": dataset,
                    "model": model,
                    "family": ctx.family(model),
                    "resolution": xs[i],
                    "top1_percent": round(y, 4),
                    "chance_percent": round(chance, 4) if chance else "",
                    "labelled": thick,
                }
                for i, y in points
            ]
        _label_lines(ax, labelled, len(xs) - 1)
        if chance is not None:
            ax.axhline(chance, color="0.3", ls="--", lw=0.8)
            ax.text(0, chance + 1.5, f"chance {chance:.1f}%", fontsize=6, color="0.3")
        ax.set_title(dataset_label(dataset), fontsize=10)
        ax.set_xticks(range(len(xs)), [resolution_label(r) for r in xs], fontsize=7)
        ax.set_xlim(-0.2, len(xs) - 1 + 1.9)
        ax.set_ylim(0, 102)
        ax.grid(alpha=0.25)
    for ax in axes.flat[len(ctx.datasets) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("top-1 (%)")
    _legend(fig, ctx)
    fig.tight_layout(rect=(0, 0.5 / (3.1 * rows_n + 0.6), 1, 1))
    record = FigureRecord(
        name="accuracy_per_dataset",
        title="Accuracy vs resolution, per dataset",
        caption=f"Zero-shot top-1 vs input resolution on each dataset, one line per model coloured by family; the "
        f"{ctx.top_k} best at {resolution_label(rank_res)} are thick and named, dashed: chance (1/C).",
        command=ctx.regenerate("accuracy_curves"),
        section=SECTION,
        analysis="accuracy_curves",
    )
    return save_figure(fig, out, record, rows)


def family_accuracy(ctx: ReportContext) -> list[dict]:
    """ACC-n (mean top-1 over datasets, %) of every model at every resolution, with its family."""
    rows = []
    for model in ctx.models:
        for r in _axis(ctx):
            scores = [s for d in ctx.datasets if (s := ctx.score(model, d, r))]
            if scores:
                acc = 100 * mean_accuracy([s.top1 for s in scores])
                rows.append({"family": ctx.family(model), "model": model, "resolution": r, "acc_percent": acc})
    return rows


def per_family(ctx: ReportContext, out: Path) -> FigureRecord:
    """ACC-n vs resolution, one panel per family: models as thin lines and a shade, the family mean dark."""
    plt = pyplot()
    xs = _axis(ctx)
    rows = family_accuracy(ctx)
    families = ctx.families
    rows_n, cols_n = grid(len(families), columns=5)
    fig, axes = plt.subplots(rows_n, cols_n, figsize=(3.3 * cols_n, 2.8 * rows_n), squeeze=False, sharey=True)
    for ax, family in zip(axes.flat, families):
        color = ctx.colors[family]
        members = list(dict.fromkeys(r["model"] for r in rows if r["family"] == family))
        acc = np.full((len(members), len(xs)), np.nan)
        for r in rows:
            if r["family"] == family:
                acc[members.index(r["model"]), xs.index(r["resolution"])] = r["acc_percent"]
        for line in acc:
            ax.plot(range(len(xs)), line, color=color, lw=0.6, alpha=0.45)
        if len(members) > 1:
            ax.fill_between(range(len(xs)), np.nanmin(acc, 0), np.nanmax(acc, 0), color=color, alpha=0.18, lw=0)
        ax.plot(range(len(xs)), np.nanmean(acc, 0), color=color, lw=2.4, marker="o", ms=3)
        ax.plot(range(len(xs)), np.nanmean(acc, 0), color="black", lw=0.8, alpha=0.6)
        ax.set_title(f"{family} ({len(members)})", fontsize=9)
        ax.set_xticks(range(len(xs)), [resolution_label(r) for r in xs], fontsize=7)
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.25)
    for ax in axes.flat[len(families) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("ACC-n (%)")
    fig.tight_layout()
    for r in rows:
        r["acc_percent"] = round(r["acc_percent"], 4)
    record = FigureRecord(
        name="accuracy_per_family",
        title="Accuracy vs resolution, per model family (paper Fig. 1)",
        caption="Mean top-1 over datasets (ACC-n) vs resolution per family: each backbone a thin line, their range "
        "shaded, the family average dark.",
        command=ctx.regenerate("accuracy_curves"),
        section=SECTION,
        analysis="accuracy_curves",
    )
    return save_figure(fig, out, record, rows)


@ANALYSES.register("accuracy_curves", kind="table", title="Accuracy vs resolution")
def accuracy_curves(ctx: ReportContext, out: Path) -> list[FigureRecord]:
    """Accuracy vs resolution per dataset and per model family."""
    return [per_dataset(ctx, out), per_family(ctx, out)]
