"""Dataset representation: how well an aggregate ranking of models reflects each dataset's ranking.

For one resolution, models are ranked by an aggregate robustness (SAR computed over Gamma, or WAR) and by
each single dataset's Gamma; the Spearman rank correlation between the two says how much that dataset is
represented in the aggregate (paper Fig. 4-mid and Fig. 5-left).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from lr0fm.metrics.robustness import war_matrix


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant."""
    from scipy import stats

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.spearmanr(x, y).statistic)


def dataset_correlations(Gammas: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:  # noqa: N803
    """Spearman correlation between an aggregate ranking and each dataset's ranking.

    Args:
        Gammas: ``[models, datasets]`` improved relative robustness.
        weights: per-dataset WAR weights; ``None`` aggregates by the plain mean (SAR over Gamma).

    Returns:
        one correlation per dataset.
    """
    g = np.asarray(Gammas, dtype=float)
    aggregate = g.mean(axis=1) if weights is None else war_matrix(g, weights)
    return np.array([spearman(aggregate, g[:, j]) for j in range(g.shape[1])])


def fast_war_correlations(rank_columns: np.ndarray, Gammas: np.ndarray, weights: np.ndarray) -> np.ndarray:  # noqa: N803
    """Spearman correlations of the WAR ranking with precomputed per-dataset rank columns.

    Spearman's rho is Pearson's correlation of average ranks, so this equals :func:`dataset_correlations`
    (ties included) while ranking the fixed dataset columns only once; the weight optimiser evaluates
    thousands of weightings of one table.

    Args:
        rank_columns: ``[models, datasets]`` average ranks of each dataset column, centred and scaled to unit
            norm (see :func:`standardised_ranks`).
        Gammas: ``[models, datasets]`` improved relative robustness.
        weights: per-dataset weights.
    """
    from scipy import stats

    agg = war_matrix(Gammas, weights)
    r = stats.rankdata(agg)
    r = r - r.mean()
    norm = np.linalg.norm(r)
    if norm == 0:
        return np.full(rank_columns.shape[1], np.nan)
    return (r / norm) @ rank_columns


def standardised_ranks(Gammas: np.ndarray) -> np.ndarray:  # noqa: N803
    """Per-column average ranks, centred and scaled to unit norm (constant columns become NaN)."""
    from scipy import stats  # imported here: the CLI parsers import this module, and SciPy costs ~1 s

    ranks = stats.rankdata(np.asarray(Gammas, dtype=float), axis=0)
    ranks = ranks - ranks.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(ranks, axis=0, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, ranks / np.where(norms > 0, norms, 1.0), np.nan)


def mean_correlation(values: Sequence[float]) -> float:
    """Mean of correlations, ignoring NaN (undefined) entries."""
    arr = np.asarray(values, dtype=float)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else float("nan")
