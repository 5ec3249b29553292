"""The LR0.FM robustness formulas (pure NumPy; no torch, no Lightning).

Notation follows the paper: ``A`` is a top-1 accuracy in [0, 1], ``HR`` the model's native resolution,
``n`` a low resolution, ``C`` the dataset's number of classes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

#: Default decay rate of the improved relative robustness near chance accuracy (paper: alpha = 200).
DEFAULT_ALPHA: float = 200.0

ArrayLike = float | Sequence[float] | np.ndarray


def check_alpha(alpha: float, name: str = "alpha") -> float:
    """Validate the decay rate ``alpha`` of Gamma (paper eq. 1) and return it as a float.

    ``1 - exp(-alpha * eps^2)`` is a factor in [0, 1) that falls to 0 at chance accuracy only for a finite
    ``alpha > 0`` (the paper requires ``alpha >> 1`` and uses 200): ``alpha = 0`` zeroes every Gamma, a
    negative ``alpha`` turns the factor into ``-(exp(|alpha| eps^2) - 1)``, which grows without bound (WAR,
    a sum of absolute values, then reaches ~1e64 at ``alpha = -200``), and NaN makes every Gamma NaN.

    Args:
        alpha: the value to check.
        name: how the value is named in the message (e.g. the ``--alpha`` flag).

    Raises:
        ValueError: ``alpha`` is not a finite number > 0.

    """
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(alpha, bool) or not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"{name} {alpha!r}: the decay rate of Gamma near chance accuracy (paper eq. 1) must be a finite number "
            f"> 0; the paper uses {DEFAULT_ALPHA:g} (alpha >> 1)"
        )
    return value


def relative_robustness(acc_hr: ArrayLike, acc_lr: ArrayLike) -> np.ndarray | float:
    """Relative robustness ``gamma_n = 1 - (A_HR - A_n) / A_HR`` (not clipped: > 1 is legitimate).

    Args:
        acc_hr: accuracy at native resolution (must be > 0).
        acc_lr: accuracy at the low resolution ``n``.

    Returns:
        gamma, with the broadcast shape of the inputs.
    """
    acc_hr = np.asarray(acc_hr, dtype=float)
    acc_lr = np.asarray(acc_lr, dtype=float)
    if np.any(acc_hr <= 0):
        raise ValueError("relative robustness is undefined for a native-resolution accuracy A_HR <= 0")
    out = 1.0 - (acc_hr - acc_lr) / acc_hr
    return out.item() if out.ndim == 0 else out


def accuracy_gap(acc_hr: ArrayLike, num_classes: ArrayLike) -> np.ndarray | float:
    """Accuracy gap to chance ``eps_D = A_HR - 1 / C``."""
    acc_hr = np.asarray(acc_hr, dtype=float)
    num_classes = np.asarray(num_classes, dtype=float)
    if np.any(num_classes < 1):
        raise ValueError("the number of classes must be >= 1")
    out = acc_hr - 1.0 / num_classes
    return out.item() if out.ndim == 0 else out


def chance_factor(acc_hr: ArrayLike, num_classes: ArrayLike, alpha: float = DEFAULT_ALPHA) -> np.ndarray | float:
    """The factor ``1 - exp(-alpha * eps_D^2)`` that zeroes robustness near chance accuracy.

    Raises:
        ValueError: ``alpha`` is not a finite number > 0 (see :func:`check_alpha`).

    """
    alpha = check_alpha(alpha)
    eps = np.asarray(accuracy_gap(acc_hr, num_classes), dtype=float)
    out = 1.0 - np.exp(-alpha * eps**2)
    return out.item() if out.ndim == 0 else out


def improved_relative_robustness(
    acc_hr: ArrayLike, acc_lr: ArrayLike, num_classes: ArrayLike, alpha: float = DEFAULT_ALPHA
) -> np.ndarray | float:
    """Improved relative robustness ``Gamma_n = gamma_n * (1 - exp(-alpha * eps_D^2))`` (paper eq. 1)."""
    gamma = np.asarray(relative_robustness(acc_hr, acc_lr), dtype=float)
    out = gamma * np.asarray(chance_factor(acc_hr, num_classes, alpha), dtype=float)
    return out.item() if out.ndim == 0 else out


def simple_aggregated_robustness(gammas: ArrayLike) -> float:
    """SAR-n: the plain mean of per-dataset relative robustness values."""
    values = np.asarray(gammas, dtype=float)
    if values.size == 0:
        raise ValueError("SAR needs at least one dataset")
    return float(values.mean())


def weighted_aggregated_robustness(Gammas: ArrayLike, weights: ArrayLike) -> float:  # noqa: N803 (paper's Γ)
    """WAR-n = sum_d |w_d * Gamma_d| / sum_d |w_d|.

    Args:
        Gammas: per-dataset improved relative robustness.
        weights: per-dataset weights, same length.
    """
    g = np.asarray(Gammas, dtype=float)
    w = np.asarray(weights, dtype=float)
    if g.shape != w.shape:
        raise ValueError(f"WAR needs one weight per dataset: {g.shape} values vs {w.shape} weights")
    denom = np.abs(w).sum()
    if denom == 0:
        raise ValueError("WAR weights are all zero")
    return float(np.abs(w * g).sum() / denom)


def war_matrix(Gammas: np.ndarray, weights: np.ndarray) -> np.ndarray:  # noqa: N803
    """WAR for every row of a ``[models, datasets]`` matrix of Gamma values (vectorised)."""
    w = np.abs(np.asarray(weights, dtype=float))
    return np.abs(np.asarray(Gammas, dtype=float) * w).sum(axis=-1) / w.sum()


def mean_accuracy(accuracies: ArrayLike) -> float:
    """ACC-n: mean top-1 over datasets."""
    values = np.asarray(accuracies, dtype=float)
    if values.size == 0:
        raise ValueError("ACC needs at least one dataset")
    return float(values.mean())


def weights_vector(datasets: Sequence[str], weights: Mapping[str, float]) -> np.ndarray:
    """The weights of ``datasets`` in order (each must be present in ``weights``)."""
    return np.array([float(weights[d]) for d in datasets], dtype=float)
