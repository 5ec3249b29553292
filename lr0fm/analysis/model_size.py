"""Robustness vs model size: WAR-n against parameters (paper Fig. 5 right (i)) and parameter buckets (Fig. 6 mid).

Parameters come from the backbone table, GFLOPs (the dot size) from the measured cache
(:mod:`lr0fm.analysis.gflops`); ResNets are stars and transformers dots, as in the paper. The buckets group
models whose sizes lie within 60M of each other (the paper's +-30M) and show the most robust model of each
family in a bucket, so families are compared without a size advantage.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lr0fm.analysis import ANALYSES
from lr0fm.analysis.context import ReportContext
from lr0fm.analysis.figures import FigureRecord, save_figure
from lr0fm.analysis.style import pyplot
from lr0fm.metrics.correlation import spearman

SECTION = "Model properties"
#: width of a parameter bucket in millions (the paper's +-30M)
BUCKET_WIDTH_M = 60.0


def dot_sizes(values: list[float | None], smallest: float = 14.0, largest: float = 240.0) -> list[float]:
    """Marker areas proportional to ``values`` (unknown values get the smallest size)."""
    known = [v for v in values if v is not None and v > 0]
    top = max(known) if known else 1.0
    return [smallest + (largest - smallest) * (v / top if v else 0.0) for v in values]


def scatter_models(ax, ctx: ReportContext, rows: list[dict], x_key: str, size_key: str) -> None:
    """WAR vs ``x_key`` dots (stars for ResNets), coloured by family, sized by ``size_key``."""
    sizes = dot_sizes([r[size_key] for r in rows])
    for r, s in zip(rows, sizes):
        marker = "*" if r["architecture"] == "ResNet" else "o"
        ax.scatter(
            [r[x_key]],
            [r["war_percent"]],
            s=s * (1.6 if marker == "*" else 1.0),
            marker=marker,
            alpha=0.75,
            color=ctx.colors[r["family"]],
            edgecolor="black",
            lw=0.3,
        )


def family_legend(ax, ctx: ReportContext, rows: list[dict], extra: list | None = None) -> None:
    """A legend of the families drawn (and ``extra`` handles)."""
    from matplotlib.lines import Line2D

    families = list(dict.fromkeys(r["family"] for r in rows))
    handles = [Line2D([], [], ls="", marker="o", color=ctx.colors[f], label=f) for f in families]
    ax.legend(handles=handles + (extra or []), fontsize=6, ncol=2, loc="best", framealpha=0.8)


def with_property(ctx: ReportContext, rows: list[dict], key: str, what: str, analysis: str) -> list[dict]:
    """The rows that have ``key``; the others are named in a note of ``analysis``."""
    kept = [r for r in rows if r[key] is not None]
    lacking = [r["model"] for r in rows if r[key] is None]
    if not any(ctx.properties[r["model"]].entry for r in rows):
        ctx.note(
            "model properties: no model of the table is in the backbone table; pass --backbones TABLE (a YAML "
            "like lr0fm/resources/backbones/lr0fm66.yaml with family, params, pretrain_size, resolution)"
        )
    elif lacking:
        shown = ", ".join(lacking[:6]) + (f" and {len(lacking) - 6} more" if len(lacking) > 6 else "")
        ctx.note(f"{analysis}: the backbone table gives no {what} for {len(lacking)} model(s) ({shown}); left out")
    return kept


def size_figure(ctx: ReportContext, out: Path, rows: list[dict], resolution: int) -> FigureRecord:
    """WAR-n vs parameters, dot size = image GFLOPs."""
    from matplotlib.lines import Line2D

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    scatter_models(ax, ctx, rows, "params_m", "image_gflops")
    ax.set_xscale("log")
    rho = spearman(np.array([r["params_m"] for r in rows]), np.array([r["war_percent"] for r in rows]))
    ax.set_xlabel("parameters (millions, log)")
    ax.set_ylabel(f"WAR-{resolution} (%)")
    ax.set_title(f"Robustness vs model size (Spearman {rho:.2f})")
    ax.grid(alpha=0.25)
    markers = [
        Line2D([], [], ls="", marker="*", color="0.4", ms=9, label="ResNet"),
        Line2D([], [], ls="", marker="o", color="0.4", label="transformer"),
    ]
    family_legend(ax, ctx, rows, markers)
    fig.tight_layout()
    measured = sum(r["image_gflops"] is not None for r in rows)
    record = FigureRecord(
        name=f"robustness_vs_size_{resolution}",
        title=f"WAR-{resolution} vs model size (paper Fig. 5 right, i)",
        caption=f"WAR-{resolution} against parameters, dot area proportional to the image tower's GFLOPs "
        f"(measured for {measured} of {len(rows)} models, the rest smallest); stars: ResNets.",
        command=ctx.regenerate("model_size"),
        section=SECTION,
        analysis="model_size",
    )
    data = [
        {k: r[k] for k in ("model", "family", "architecture", "params_m", "image_gflops", "war_percent", "sar_percent")}
        for r in rows
    ]
    return save_figure(fig, out, record, data)


def size_buckets(rows: list[dict], width: float = BUCKET_WIDTH_M) -> list[list[dict]]:
    """Models grouped by size: a bucket starts at its smallest model and holds those within ``width`` of it."""
    buckets: list[list[dict]] = []
    for r in sorted(rows, key=lambda r: r["params_m"]):
        if buckets and r["params_m"] - buckets[-1][0]["params_m"] <= width:
            buckets[-1].append(r)
        else:
            buckets.append([r])
    return buckets


def bucket_figure(ctx: ReportContext, out: Path, rows: list[dict], resolution: int) -> FigureRecord | None:
    """The best model of each family in each parameter bucket shared by >= 2 families."""
    shown = []
    for bucket in size_buckets(rows):
        best: dict[str, dict] = {}
        for r in bucket:
            if r["family"] not in best or r["war_percent"] > best[r["family"]]["war_percent"]:
                best[r["family"]] = r
        if len(best) >= 2:
            centre = float(np.median([r["params_m"] for r in bucket]))
            shown.append((centre, sorted(best.values(), key=lambda r: -r["war_percent"])))
    if not shown:
        ctx.note("model_size: no parameter bucket holds models of two families; no bucket figure")
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * sum(len(b) for _, b in shown) + 2), 4.6))
    x, ticks, data = 0.0, [], []
    for centre, members in shown:
        start = x
        for r in members:
            ax.bar(x, r["war_percent"], color=ctx.colors[r["family"]], width=0.85)
            ax.text(x, 0.5, r["model"], rotation=90, fontsize=5.5, ha="center", va="bottom")
            keys = ("family", "model", "params_m", "war_percent")
            data.append({"bucket_m": round(centre), **{k: r[k] for k in keys}})
            x += 1
        ticks.append(((start + x - 1) / 2, f"~{_round_size(centre)}"))
        x += 0.8
    ax.set_xticks([t for t, _ in ticks], [label for _, label in ticks])
    ax.set_xlabel("parameter bucket (models within 60M of each other)")
    ax.set_ylabel(f"WAR-{resolution} (%)")
    ax.set_title("Families compared within a size bucket (median size): the most robust model of each")
    family_legend(ax, ctx, [r for _, members in shown for r in members])
    ax.grid(axis="y", alpha=0.25)
    fig.tight_layout()
    record = FigureRecord(
        name=f"robustness_size_buckets_{resolution}",
        title=f"WAR-{resolution} within parameter buckets (paper Fig. 6 mid)",
        caption="Models binned by size (within 60M, the paper's +-30M); per bucket the most robust model of each "
        "family, so families compare without a size advantage.",
        command=ctx.regenerate("model_size"),
        section=SECTION,
        analysis="model_size",
    )
    return save_figure(fig, out, record, data)


def _round_size(millions: float) -> str:
    if millions >= 1000:
        return f"{millions / 1000:.1f}B"
    return f"{int(round(millions, -1 if millions >= 100 else 0))}M" if math.isfinite(millions) else "?"


@ANALYSES.register("model_size", kind="table", title="Robustness vs model size")
def model_size(ctx: ReportContext, out: Path) -> list[FigureRecord]:
    """Robustness vs parameters, and within parameter buckets."""
    rows = with_property(ctx, ctx.property_rows(ctx.resolution), "params_m", "parameter count", "model_size")
    if len(rows) < 2:
        return []
    records = [size_figure(ctx, out, rows, ctx.resolution)]
    bucket = bucket_figure(ctx, out, rows, ctx.resolution)
    return records + ([bucket] if bucket else [])
