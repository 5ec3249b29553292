"""Similarity of two sets of features of the same images: per-image cosine and linear CKA (pure torch math).

Linear CKA (Kornblith et al., 2019, "Similarity of Neural Network Representations Revisited", eq. 5) of
``X [n, p]`` and ``Y [n, q]`` (rows: the same ``n`` images) is ``||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)``
with column-centred ``Xc``, ``Yc``: 1 for identical features (and for features equal up to an orthogonal
transform and isotropic scaling), near 0 for unrelated ones. The paper's Fig. 7 (right) cites the same work for
its layer-wise similarity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mean_cosine(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean over rows of the cosine similarity of ``x[i]`` and ``y[i]`` (``[n, d]`` each)."""
    if x.shape != y.shape:
        raise ValueError(f"cosine needs features of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    return float(F.cosine_similarity(x.double(), y.double(), dim=-1).mean())


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of ``x [n, p]`` and ``y [n, q]`` (the same ``n`` images in the same order), in ``[0, 1]``.

    Computed in float64 in the feature-space form (``p x q`` cross products), which stays small for many images.

    Raises:
        ValueError: different numbers of rows, or fewer than 2 rows.

    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA needs [n, p] and [n, q] features of the same n, got {tuple(x.shape)}, {tuple(y.shape)}")
    if x.shape[0] < 2:
        raise ValueError("CKA needs at least 2 images")
    x = x.double() - x.double().mean(dim=0, keepdim=True)
    y = y.double() - y.double().mean(dim=0, keepdim=True)
    cross = torch.linalg.matrix_norm(y.T @ x) ** 2
    norm = torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)
    return float(cross / norm) if norm > 0 else 0.0


def centered_gram(x: torch.Tensor) -> torch.Tensor:
    """``Xc Xc^T`` (``[n, n]``, float64) of column-centred features ``x [n, p]``."""
    x = x.double() - x.double().mean(dim=0, keepdim=True)
    return x @ x.T


def cka_matrix(xs: list[torch.Tensor], ys: list[torch.Tensor]) -> torch.Tensor:
    """``[len(xs), len(ys)]`` linear CKA of every pair (layer ``i`` of one run, layer ``j`` of another).

    Uses the Gram form ``<Kx, Ky>_F / (||Kx||_F ||Ky||_F)`` with centred ``K = Xc Xc^T`` (equal to
    :func:`linear_cka`; each Gram matrix is computed once, so a ``layers x layers`` matrix costs one
    ``n x n`` dot product per pair).
    """
    gx = [centered_gram(x) for x in xs]
    gy = [centered_gram(y) for y in ys]
    nx = [torch.linalg.matrix_norm(g) for g in gx]
    ny = [torch.linalg.matrix_norm(g) for g in gy]
    out = torch.zeros(len(xs), len(ys), dtype=torch.float64)
    for i, (a, na) in enumerate(zip(gx, nx)):
        for j, (b, nb) in enumerate(zip(gy, ny)):
            out[i, j] = (a * b).sum() / (na * nb) if na > 0 and nb > 0 else 0.0
    return out.cpu()
