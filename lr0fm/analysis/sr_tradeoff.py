"""SR front-ends vs LR tokens: top-1 gain over the plain backbone against what each adds at inference.

The paper compares LR-TK0 with super-resolving the LR image before the frozen backbone (Table 3, Fig. 9). A
results folder holding a backbone's plain rows, its ``sr:<name>`` rows (``lr0fm benchmark --sr``) and its
``SPEC+lrtk0:...`` rows (``--lr_tokens``) answers "is it cheaper to train LR tokens or to run an SR model in
front?": for each front-end and low resolution, the mean over the datasets both have of its top-1 minus the
plain backbone's, against the parameters it adds (``sr_params``, ``lr_tokens_params``) and, for SR, the
forward time per image the run measured (``sr_ms_per_image``).

Such a folder mixes LR protocols (``sr:<name>`` and the plain one), so the report needs
``--allow_mixed_protocols``; a model measured under several protocols is then named ``MODEL [protocol]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lr0fm.analysis import ANALYSES
from lr0fm.analysis.context import ReportContext
from lr0fm.analysis.figures import FigureRecord, save_figure
from lr0fm.analysis.lrtk0_gains import SR_PROTOCOL_PREFIX, plain_base
from lr0fm.analysis.properties import TOKENS_MARK, float_or_none
from lr0fm.analysis.style import pyplot, resolution_label
from lr0fm.metrics.table import HR

SECTION = "LR-TK0"
#: marker, colour and legend of each kind of front-end: SR, and the LR-TK0 methods whose exports ``--lr_tokens``
#: applies (the rows' ``lr_tokens_method``)
STYLE = {
    "sr": ("o", "tab:blue", "SR front-end (--sr)"),
    "lr_tokens": ("*", "tab:red", "LR tokens (LR-TK0)"),
    "vpt": ("D", "tab:green", "VPT prompts"),
    "robust_sam": ("s", "tab:purple", "RobustSAM parts"),
}
OTHER = ("^", "0.4", "other token file")


@dataclass
class FrontEnd:
    """What a model of the table adds to a plain backbone at inference, read from its rows' columns.

    Attributes:
        model: the model's name in the table.
        base: the plain backbone's name in the table (``None``: not in the table).
        kind: ``"sr"`` (an SR front-end), or the LR-TK0 method of a token file (``"lr_tokens"``, ``"vpt"``,
            ``"robust_sam"``; ``"lr_tokens"`` when the rows do not say).
        name: short name (the SR model's name and passes, or the token file's label).
        params: numbers it adds (``sr_params`` / ``lr_tokens_params``; ``None``: not recorded).
        ms_per_image: SR forward time per image at each low resolution, as measured in the run.
    """

    model: str
    base: str | None
    kind: str
    name: str
    params: int | None = None
    ms_per_image: dict[int, float] = field(default_factory=dict)


def front_ends(records: list[dict[str, Any]], models: list[str]) -> dict[str, FrontEnd]:
    """The SR and LR-token front-ends of a table, from its raw records (``results.csv``/``.jsonl`` rows).

    Args:
        records: the table's rows as read from the file (all columns).
        models: the table's model names (after :func:`lr0fm.metrics.table.select_protocol`).

    Returns:
        ``{table model name: FrontEnd}``.
    """
    found: dict[str, FrontEnd] = {}
    for record in records:
        spec, protocol = str(record.get("model", "")), str(record.get("protocol") or "")
        name = f"{spec} [{protocol}]" if f"{spec} [{protocol}]" in models else spec
        if name not in models:
            continue
        if protocol.startswith(SR_PROTOCOL_PREFIX):
            entry = found.setdefault(
                name, FrontEnd(name, plain_base(spec, models), "sr", protocol[len(SR_PROTOCOL_PREFIX) :])
            )
            params = float_or_none(record.get("sr_params"))
        elif TOKENS_MARK in spec:
            entry = found.setdefault(
                name, FrontEnd(name, plain_base(spec.split(TOKENS_MARK, 1)[0], models), "lr_tokens", "")
            )
            entry.name = spec.split(TOKENS_MARK, 1)[1]
            entry.kind = str(record.get("lr_tokens_method") or entry.kind)  # vpt, robust_sam: also token files
            params = float_or_none(record.get("lr_tokens_params"))
        else:
            continue
        if params is not None:
            entry.params = int(params)
        ms = float_or_none(record.get("sr_ms_per_image"))
        resolution = str(record.get("resolution", "")).strip()
        if ms is not None and resolution.isdigit():
            entry.ms_per_image[int(resolution)] = ms
    return found


def tradeoff_rows(ctx: ReportContext) -> list[dict]:
    """One row per (front-end, low resolution): its mean top-1 gain over its plain backbone and its cost."""
    rows = []
    for fe in ctx.front_ends.values():
        if fe.base is None:
            ctx.note(f"sr_tradeoff: {fe.model} has no plain rows of its backbone in the table to gain over")
            continue
        for r in [*ctx.resolutions, HR]:
            pairs = [
                (a.top1, b.top1)
                for d in ctx.datasets
                if (a := ctx.table.get(fe.model, d, r)) is not None and (b := ctx.table.get(fe.base, d, r)) is not None
            ]
            if not pairs:
                continue
            rows.append(
                {
                    "base": fe.base,
                    "model": fe.model,
                    "front_end": fe.name,
                    "kind": fe.kind,
                    "resolution": r,
                    "datasets": len(pairs),
                    "top1_percent": 100 * float(np.mean([a for a, _ in pairs])),
                    "top1_base_percent": 100 * float(np.mean([b for _, b in pairs])),
                    "gain_points": 100 * float(np.mean([a - b for a, b in pairs])),
                    "params_added": fe.params,
                    "ms_per_image": fe.ms_per_image.get(r) if r != HR else None,
                }
            )
    return rows


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:60] or "model"


def tradeoff_figure(ctx: ReportContext, out: Path, base: str, rows: list[dict]) -> FigureRecord:
    """Per low resolution, each front-end's mean gain against the parameters it adds (symlog axis)."""
    resolutions = [r for r in ctx.resolutions if any(row["resolution"] == r for row in rows)]
    plt = pyplot()
    fig, axes = plt.subplots(1, len(resolutions), figsize=(3.6 * len(resolutions) + 0.6, 3.8), squeeze=False)
    for ax, r in zip(axes[0], resolutions, strict=True):
        for row in (row for row in rows if row["resolution"] == r):
            marker, color, _ = STYLE.get(row["kind"], OTHER)
            x = row["params_added"] if row["params_added"] is not None else 0
            ax.scatter([x], [row["gain_points"]], marker=marker, color=color, s=90 if marker == "*" else 45, zorder=3)
            label = row["front_end"] + (f"\n{row['ms_per_image']:.2g} ms/img" if row["ms_per_image"] else "")
            ax.annotate(label, (x, row["gain_points"]), fontsize=6.5, xytext=(4, 3), textcoords="offset points")
        ax.axhline(0, color="0.3", lw=0.7)
        ax.margins(y=0.18)
        ax.set_xscale("symlog", linthresh=100)
        most = max([row["params_added"] or 0 for row in rows] + [100])
        ax.set_xlim(0, most * 300)  # room for the labels right of the largest
        ax.set_xlabel("parameters added at inference")
        ax.set_title(resolution_label(r), fontsize=9)
        ax.grid(alpha=0.25)
    axes[0][0].set_ylabel("mean top-1 gain over the plain model (points)")
    handles = [
        plt.Line2D([], [], marker=m, color=c, ls="", label=label)
        for kind, (m, c, label) in STYLE.items()
        if any(row["kind"] == kind for row in rows)
    ]
    axes[0][-1].legend(handles=handles, fontsize=7, loc="best")
    fig.suptitle(f"SR front-ends vs LR tokens on {base}", fontsize=9)
    fig.tight_layout()
    record = FigureRecord(
        name=f"sr_tradeoff_{_slug(base)}",
        title=f"SR front-ends vs LR tokens: {base}",
        caption=f"Mean top-1 gain over {base} (points, over the datasets both have) of each SR front-end "
        "(`--sr`) and each LR-token file (`--lr_tokens`) at each low resolution, against the parameters it adds at "
        "inference; SR labels give the forward time per image the run measured (paper Tables 3 and 4, Fig. 9).",
        command=ctx.regenerate("sr_tradeoff"),
        section=SECTION,
        analysis="sr_tradeoff",
    )
    return save_figure(fig, out, record, [row for row in rows if row["base"] == base])


@ANALYSES.register("sr_tradeoff", kind="table", title="SR front-ends vs LR tokens")
def sr_tradeoff(ctx: ReportContext, out: Path) -> list[FigureRecord]:
    """One trade-off figure per plain backbone that has an SR front-end or LR tokens in the table."""
    rows = tradeoff_rows(ctx)
    if not any(row["kind"] == "sr" for row in rows):
        if rows:
            ctx.note("sr_tradeoff: no SR front-end rows (lr0fm benchmark --sr) next to the LR-token rows")
        return []
    bases = list(dict.fromkeys(row["base"] for row in rows if row["kind"] == "sr"))
    return [tradeoff_figure(ctx, out, base, [row for row in rows if row["base"] == base]) for base in bases]
