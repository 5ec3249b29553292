"""LR-TK0 before/after: per-dataset top-1 gains of a model with LR tokens over the same model without them.

The pairs are the ``--reference MODEL=BASE`` pairs (as in ``lr0fm metrics report``) and, found in the table
by name, every ``SPEC+lrtk0:NAME@HASH`` model (the label ``lr0fm benchmark --lr_tokens`` gives) whose ``SPEC``
is also in the table (paper Fig. 12 and Table 2).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from lr0fm.analysis import ANALYSES
from lr0fm.analysis.context import ReportContext
from lr0fm.analysis.figures import FigureRecord, save_figure
from lr0fm.analysis.properties import TOKENS_MARK
from lr0fm.analysis.style import dataset_label, pyplot, resolution_label
from lr0fm.metrics.table import HR

SECTION = "LR-TK0"

#: the ``protocol`` of rows measured behind an SR front-end (``lr0fm benchmark --sr``): ``sr:<name>``
SR_PROTOCOL_PREFIX = "sr:"


def plain_base(spec: str, models: list[str]) -> str | None:
    """The table name of ``spec``'s rows without a front-end (``None``: not in the table).

    ``spec`` itself, or, in a table of mixed protocols where ``spec`` was measured under several,
    ``spec [paper]`` (else its first other protocol that is not an SR front-end's ``sr:<name>``).
    """
    if spec in models:
        return spec
    named = [m for m in models if m.startswith(f"{spec} [") and not m.startswith(f"{spec} [{SR_PROTOCOL_PREFIX}")]
    return next((m for m in named if m == f"{spec} [paper]"), named[0] if named else None)


def token_pairs(models: list[str], references: dict[str, str]) -> list[tuple[str, str]]:
    """``(model with tokens, base)`` pairs: the references, then the table's ``SPEC+lrtk0:...`` models."""
    pairs = dict(references)
    for model in models:
        if TOKENS_MARK in model and (base := plain_base(model.split(TOKENS_MARK, 1)[0], models)) is not None:
            pairs.setdefault(model, base)
    return list(pairs.items())


def gains(ctx: ReportContext, model: str, base: str) -> list[dict]:
    """Top-1 of ``model`` and ``base`` and the gain (points) on every dataset and resolution both have."""
    rows = []
    for dataset in ctx.datasets:
        for r in [*ctx.resolutions, HR]:
            a, b = ctx.table.get(model, dataset, r), ctx.table.get(base, dataset, r)
            if a is not None and b is not None:
                rows.append(
                    {
                        "model": model,
                        "base": base,
                        "dataset": dataset,
                        "resolution": r,
                        "top1": a.top1,
                        "top1_base": b.top1,
                        "gain_points": 100 * (a.top1 - b.top1),
                    }
                )
    return rows


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:60] or "model"


def gains_figure(ctx: ReportContext, out: Path, model: str, base: str) -> FigureRecord | None:
    """Grouped bars: per dataset (and mean), the gain at each resolution."""
    rows = gains(ctx, model, base)
    if not rows:
        ctx.note(f"lrtk0_gains: {model} and {base} share no (dataset, resolution) cell")
        return None
    resolutions = list(dict.fromkeys(r["resolution"] for r in rows))
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    table = {(r["dataset"], r["resolution"]): r["gain_points"] for r in rows}
    means = {res: float(np.mean([table[(d, res)] for d in datasets if (d, res) in table])) for res in resolutions}
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6.5, 0.75 * (len(datasets) + 1) * max(1, len(resolutions) / 3)), 4.2))
    width = 0.8 / len(resolutions)
    cmap = plt.get_cmap("viridis")
    for k, res in enumerate(resolutions):
        xs = [i + (k - (len(resolutions) - 1) / 2) * width for i in range(len(datasets) + 1)]
        ys = [table.get((d, res), np.nan) for d in datasets] + [means[res]]
        ax.bar(xs, ys, width=width, color=cmap(k / max(1, len(resolutions) - 1)), label=resolution_label(res))
    ax.axhline(0, color="0.3", lw=0.7)
    ax.set_xticks(range(len(datasets) + 1), [dataset_label(d) for d in datasets] + ["mean"], rotation=45, ha="right")
    ax.set_ylabel("top-1 gain (points)")
    ax.set_title(f"LR-TK0: {model}\nminus {base}", fontsize=9)
    ax.legend(fontsize=7, ncol=len(resolutions))
    ax.grid(axis="y", alpha=0.25)
    fig.tight_layout()
    record = FigureRecord(
        name=f"lrtk0_gains_{_slug(model)}",
        title=f"LR-TK0 gains of {model}",
        caption=f"Top-1 of {model} minus {base} (points) on each dataset at each resolution, and their mean "
        "(paper Fig. 12): LR tokens should gain at low resolution and cost little at HR.",
        command=ctx.regenerate("lrtk0_gains"),
        section=SECTION,
        analysis="lrtk0_gains",
    )
    return save_figure(fig, out, record, rows)


@ANALYSES.register("lrtk0_gains", kind="table", title="LR-TK0 before/after")
def lrtk0_gains(ctx: ReportContext, out: Path) -> list[FigureRecord]:
    """One gains figure per (model with tokens, base) pair of the table."""
    records = [gains_figure(ctx, out, model, base) for model, base in ctx.pairs]
    return [r for r in records if r is not None]
