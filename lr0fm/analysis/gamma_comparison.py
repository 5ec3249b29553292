"""gamma vs Gamma: the two problems of relative robustness that the improved Gamma fixes (paper Sec. 3, Fig. 4).

* Near chance, gamma is misleadingly high: a model at chance at HR stays at chance at 16 px, so it "keeps" its
  accuracy (the paper's ALBEF (4M) on Aircraft: A_HR 2.7 %, A_16 1 %, gamma 37 %); Gamma zeroes such cells.
* Near chance, tiny accuracy differences are amplified: gamma = A_n / A_HR moves by 1/A_HR points per point of
  A_n, so with A_HR = 2.7 % one more correct image in a hundred moves gamma by 37 points. Gamma's factor
  1 - exp(-alpha eps^2) damps exactly these cells.

Every value is computed with :mod:`lr0fm.metrics.robustness` (the sensitivity as the finite difference of
``relative_robustness`` / ``improved_relative_robustness`` for +1 accuracy point).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lr0fm.analysis import ANALYSES
from lr0fm.analysis.context import ReportContext
from lr0fm.analysis.figures import FigureRecord, save_figure
from lr0fm.analysis.style import dataset_label, pyplot, resolution_label
from lr0fm.metrics.robustness import (
    accuracy_gap,
    chance_factor,
    improved_relative_robustness,
    relative_robustness,
)

SECTION = "Robustness"
#: a cell is "near chance" when Gamma keeps less than half of gamma
NEAR_CHANCE_FACTOR = 0.5
#: the accuracy step of the sensitivity panel: one point
STEP = 0.01


def gamma_cells(ctx: ReportContext, resolution: int) -> list[dict]:
    """gamma, Gamma, accuracy gap, chance factor and the per-point sensitivity of every cell at ``resolution``."""
    alpha = ctx.report.alpha
    rows = []
    for model in ctx.models:
        for dataset in ctx.datasets:
            score = ctx.score(model, dataset, resolution)
            a_hr = ctx.hr_accuracy(model, dataset)
            if score is None or a_hr is None:
                continue
            n_cls = score.num_classes
            factor = float(chance_factor(a_hr, n_cls, alpha))
            rows.append(
                {
                    "model": model,
                    "dataset": dataset,
                    "resolution": resolution,
                    "top1": score.top1,
                    "top1_hr": a_hr,
                    "num_classes": n_cls,
                    "accuracy_gap": float(accuracy_gap(a_hr, n_cls)),
                    "chance_factor": factor,
                    "gamma": score.gamma,
                    "Gamma": score.Gamma,
                    "gamma_per_point": float(relative_robustness(a_hr, score.top1 + STEP)) - score.gamma,
                    "Gamma_per_point": float(improved_relative_robustness(a_hr, score.top1 + STEP, n_cls, alpha))
                    - score.Gamma,
                    "near_chance": factor < NEAR_CHANCE_FACTOR,
                }
            )
    return rows


def _scatter_gamma_vs_Gamma(ax, rows: list[dict], n: str) -> None:  # noqa: N802 (the paper's symbol)
    gap = np.array([r["accuracy_gap"] for r in rows])
    points = ax.scatter(
        [100 * r["gamma"] for r in rows],
        [100 * r["Gamma"] for r in rows],
        c=100 * gap,
        s=9,
        cmap="viridis",
        vmin=0,
        vmax=max(1.0, 100 * gap.max()),
        lw=0,
    )
    top = max(100 * max(r["gamma"] for r in rows), 100)
    ax.plot([0, top], [0, top], color="0.4", ls="--", lw=0.8)
    ax.set_xlabel(f"gamma-{n} (%)")
    ax.set_ylabel(f"Gamma-{n} (%)")
    ax.set_title("(a) Gamma = gamma except near chance")
    ax.figure.colorbar(points, ax=ax, label="accuracy gap A_HR - 1/C (%)")


def _near_chance(ax, rows: list[dict], n: str) -> None:
    near = [r for r in rows if r["near_chance"]]
    far = [r for r in rows if not r["near_chance"]]
    for group, color, label in ((far, "0.55", "gamma"), (near, "#D55E00", "gamma, near chance")):
        ax.scatter(
            [100 * r["accuracy_gap"] for r in group],
            [100 * r["gamma"] for r in group],
            s=14,
            facecolors="none",
            edgecolors=color,
            lw=0.7,
            label=label,
        )
    ax.scatter(
        [100 * r["accuracy_gap"] for r in rows], [100 * r["Gamma"] for r in rows], s=5, color="#0072B2", label="Gamma"
    )
    if near:
        worst = max(near, key=lambda r: r["gamma"])
        ax.annotate(
            f"{worst['model']} / {dataset_label(worst['dataset'])}\nA_HR {100 * worst['top1_hr']:.1f}%, "
            f"A_{n} {100 * worst['top1']:.1f}%: gamma {100 * worst['gamma']:.0f}%, Gamma {100 * worst['Gamma']:.0f}%",
            (100 * worst["accuracy_gap"], 100 * worst["gamma"]),
            xytext=(25, 10),
            textcoords="offset points",
            fontsize=6.5,
            arrowprops={"arrowstyle": "->", "lw": 0.6},
        )
    ax.set_xlabel("accuracy gap A_HR - 1/C (%)")
    ax.set_ylabel(f"robustness at {n} px (%)")
    ax.set_title(f"(b) near chance, gamma is high ({len(near)} cells)")
    ax.legend(fontsize=6.5, loc="lower right")


def _amplification(ax, rows: list[dict]) -> None:
    gap = [100 * r["accuracy_gap"] for r in rows]
    ax.scatter(
        gap,
        [100 * r["gamma_per_point"] for r in rows],
        s=10,
        facecolors="none",
        edgecolors="#D55E00",
        lw=0.7,
        label="gamma",
    )
    ax.scatter(gap, [max(100 * r["Gamma_per_point"], 1e-3) for r in rows], s=5, color="#0072B2", label="Gamma")
    ax.set_yscale("log")
    ax.set_xlabel("accuracy gap A_HR - 1/C (%)")
    ax.set_ylabel("change per +1 point of A_n (points)")
    ax.set_title("(c) near chance, tiny differences are amplified")
    ax.legend(fontsize=6.5)


def comparison_figure(ctx: ReportContext, out: Path, resolution: int) -> FigureRecord | None:
    """The three panels, at ``resolution``."""
    rows = gamma_cells(ctx, resolution)
    if not rows:
        return None
    plt = pyplot()
    n = str(resolution)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    _scatter_gamma_vs_Gamma(axes[0], rows, n)
    _near_chance(axes[1], rows, n)
    _amplification(axes[2], rows)
    for ax in axes:
        ax.grid(alpha=0.25)
    fig.tight_layout()
    record = FigureRecord(
        name=f"gamma_comparison_{resolution}",
        title=f"gamma vs Gamma at {resolution_label(resolution)} (paper Fig. 4 left)",
        caption="Every (model, dataset) cell: Gamma = gamma away from chance (a); near chance (A_HR close to 1/C) "
        "gamma is misleadingly high (b) and moves by 1/A_HR points per accuracy point (c); Gamma zeroes both.",
        command=ctx.regenerate("gamma_comparison"),
        section=SECTION,
        analysis="gamma_comparison",
    )
    return save_figure(fig, out, record, rows)


@ANALYSES.register("gamma_comparison", kind="table", title="gamma vs Gamma")
def gamma_comparison(ctx: ReportContext, out: Path) -> list[FigureRecord]:
    """The gamma-vs-Gamma figure at the report's resolution."""
    record = comparison_figure(ctx, out, ctx.resolution)
    return [record] if record else []
