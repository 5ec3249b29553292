"""Datasets embedded in 2-D by their robustness across models (paper Fig. 7 middle).

Each dataset is the vector of its Gamma-n over the models that have every dataset. With 5 or more datasets
the embedding is t-SNE (scikit-learn, as the paper; PCA initialisation and a fixed seed, so it is
deterministic; perplexity min(5, (n - 1) / 3)), with fewer it is PCA. Colours are a Ward clustering of the
2-D points into (at most) 3 groups, the paper's count of the clusters it sees.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lr0fm.analysis import ANALYSES
from lr0fm.analysis.context import ReportContext
from lr0fm.analysis.figures import FigureRecord, save_figure
from lr0fm.analysis.style import dataset_label, family_colors, pyplot, resolution_label

SECTION = "Dataset representation"
#: fewer datasets than this: PCA instead of t-SNE (t-SNE's perplexity needs a few neighbours)
MIN_TSNE = 5
CLUSTERS = 3


def embed(features: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D coordinates of the rows of ``features`` and the method's name (``t-SNE`` or ``PCA``)."""
    n = features.shape[0]
    if n >= MIN_TSNE:
        from sklearn.manifold import TSNE

        perplexity = max(1.0, min(5.0, (n - 1) / 3))
        tsne = TSNE(
            n_components=2, perplexity=perplexity, init="pca", random_state=seed, learning_rate="auto", method="exact"
        )  # exact: a few dozen points, where Barnes-Hut is slower
        return tsne.fit_transform(features), f"t-SNE (perplexity {perplexity:.3g})"
    centred = features - features.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    coords = u[:, :2] * s[:2]
    return np.pad(coords, ((0, 0), (0, 2 - coords.shape[1]))), "PCA"


def clusters(points: np.ndarray, count: int = CLUSTERS) -> np.ndarray:
    """Ward clusters (1-based labels) of the rows of ``points``."""
    from scipy.cluster.hierarchy import fcluster, linkage

    if points.shape[0] < 2:
        return np.ones(points.shape[0], dtype=int)
    return fcluster(linkage(points, method="ward"), t=min(count, points.shape[0]), criterion="maxclust")


def embedding_figure(ctx: ReportContext, out: Path, resolution: int) -> FigureRecord | None:
    """The dataset embedding at ``resolution`` (``None``: fewer than 3 datasets or 2 complete models)."""
    models, gammas = ctx.gamma_matrix(resolution)
    if len(ctx.datasets) < 3 or len(models) < 2:
        ctx.note(
            f"dataset_embedding: needs >= 3 datasets and >= 2 models with every dataset at {resolution} px "
            f"(have {len(ctx.datasets)} datasets, {len(models)} models)"
        )
        return None
    features = gammas.T  # one row per dataset
    coords, method = embed(features)
    groups = clusters(coords)
    colors = family_colors([f"cluster {g}" for g in sorted(set(groups))])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.2, 5.0))
    for (x, y), dataset, g in zip(coords, ctx.datasets, groups):
        ax.scatter([x], [y], s=60, color=colors[f"cluster {g}"], edgecolor="black", lw=0.4)
        ax.annotate(dataset_label(dataset), (x, y), xytext=(5, 4), textcoords="offset points", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"Datasets by their Gamma-{resolution} across {len(models)} models ({method.split(' ')[0]})")
    ax.margins(0.15)
    fig.tight_layout()
    rows = [
        {
            "dataset": d,
            "x": float(x),
            "y": float(y),
            "cluster": int(g),
            "method": method,
            "mean_Gamma": float(features[i].mean()),
            "models": len(models),
        }
        for i, (d, (x, y), g) in enumerate(zip(ctx.datasets, coords, groups))
    ]
    record = FigureRecord(
        name=f"dataset_embedding_{resolution}",
        title=f"Datasets embedded by robustness at {resolution_label(resolution)} (paper Fig. 7 middle)",
        caption=f"Each dataset as its vector of Gamma-{resolution} over {len(models)} models, embedded in 2-D by "
        f"{method}; colours: the {len(set(groups))} clusters of the 2-D points (Ward).",
        command=ctx.regenerate("dataset_embedding"),
        section=SECTION,
        analysis="dataset_embedding",
    )
    return save_figure(fig, out, record, rows)


@ANALYSES.register("dataset_embedding", kind="table", title="Dataset embedding by robustness")
def dataset_embedding(ctx: ReportContext, out: Path) -> list[FigureRecord]:
    """The dataset embedding at the report's resolution."""
    record = embedding_figure(ctx, out, ctx.resolution)
    return [record] if record else []
