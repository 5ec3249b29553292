"""Robustness vs the model's input resolution (paper Fig. 7 left): higher-input-resolution variants are less robust.

Variants of one model at different input sizes are those of one family, pre-trained on the same data, with
the same architecture once its input size is dropped (``ViT-B-16-SigLIP-384`` -> ``ViT-B-16-SigLIP``; e.g.
SigLIP-ViT-B/16 at 224/256/384/512 px, CLIP-ViT-L/14 and its @336px); each group is one line from its
smallest to its largest input size.
"""

from __future__ import annotations

from pathlib import Path

from lr0fm.analysis import ANALYSES
from lr0fm.analysis.context import ReportContext
from lr0fm.analysis.figures import FigureRecord, save_figure
from lr0fm.analysis.model_size import SECTION, with_property
from lr0fm.analysis.style import pyplot, spread


def resolution_groups(rows: list[dict]) -> list[list[dict]]:
    """Groups of the same model at >= 2 input resolutions, each sorted by input resolution."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["variant"] is None:
            continue
        key = (r["family"], r["pretrain_data"], r["variant"])
        groups.setdefault(key, []).append(r)
    return [
        sorted(g, key=lambda r: (r["input_resolution"], r["model"]))
        for g in groups.values()
        if len({r["input_resolution"] for r in g}) >= 2
    ]


@ANALYSES.register("input_resolution", kind="table", title="Robustness vs input resolution")
def input_resolution(ctx: ReportContext, out: Path) -> list[FigureRecord]:
    """WAR-n of each model variant against its input resolution."""
    n = ctx.resolution
    rows = with_property(ctx, ctx.property_rows(n), "input_resolution", "input resolution", "input_resolution")
    groups = resolution_groups(rows)
    if not groups:
        if rows:
            ctx.note("input_resolution: no model appears at two input resolutions; no figure")
        return []
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    data = []
    wars = [r["war_percent"] for g in groups for r in g]
    labels_y = spread([g[0]["war_percent"] for g in groups], gap=0.028 * (max(wars) - min(wars) or 1.0))
    for i, (group, label_y) in enumerate(zip(groups, labels_y)):
        color = ctx.colors[group[0]["family"]]
        xs, ys = [r["input_resolution"] for r in group], [r["war_percent"] for r in group]
        ax.plot(xs, ys, color=color, marker="o", lw=1.2, ms=4)
        ax.annotate(
            group[0]["model"],
            (xs[0], label_y),
            xytext=(-6, 0),
            textcoords="offset points",
            fontsize=5.5,
            ha="right",
            va="center",
            color=color,
            annotation_clip=False,
        )
        data += [
            {"group": i, **{k: r[k] for k in ("model", "family", "variant", "input_resolution", "params_m")}}
            | {"war_percent": r["war_percent"]}
            for r in group
        ]
    ax.set_xlabel("model input resolution (px)")
    ax.set_ylabel(f"WAR-{n} (%)")
    ax.set_title("Same model, higher input resolution")
    ax.set_xlim(min(r["input_resolution"] for r in data) - 90, max(r["input_resolution"] for r in data) + 20)
    ax.grid(alpha=0.25)
    fig.tight_layout()
    record = FigureRecord(
        name=f"robustness_vs_input_resolution_{n}",
        title=f"WAR-{n} vs input resolution (paper Fig. 7 left)",
        caption=f"WAR-{n} of the same model (family, data, size) at different input resolutions, one line each: "
        "variants with a larger input are mostly less robust.",
        command=ctx.regenerate("input_resolution"),
        section=SECTION,
        analysis="input_resolution",
    )
    return [save_figure(fig, out, record, data)]
