"""Optimise WAR dataset weights with Ax so that the WAR model ranking represents chosen datasets.

The objective is a weighted sum of Spearman correlations SC(d) between the WAR ranking of models and dataset
d's Gamma ranking; the paper's eq. 2 is the default:
``0.95 (SC(imagenet) + SC(imagenet-v2) + SC(dtd)) + SC(imagenet-a) + SC(eurosat)``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from lr0fm.catalog import did_you_mean
from lr0fm.metrics.correlation import fast_war_correlations, standardised_ranks

#: The paper's eq. 2.
PAPER_OBJECTIVE = "0.95*imagenet + 0.95*imagenet-v2 + 0.95*dtd + imagenet-a + eurosat"
DEFAULT_BOUNDS = (0.01, 1.0)


@dataclass(frozen=True)
class Objective:
    """A linear combination of per-dataset Spearman correlations.

    Attributes:
        terms: dataset -> coefficient.
        text: the expression it was parsed from.
    """

    terms: dict[str, float]
    text: str

    def __call__(self, correlations: Mapping[str, float]) -> float:
        """Value of the objective for per-dataset correlations (NaN correlations count as 0)."""
        total = 0.0
        for d, c in self.terms.items():
            value = correlations[d]
            total += c * (0.0 if np.isnan(value) else value)
        return float(total)


def parse_objective(text: str, datasets: Sequence[str]) -> Objective:
    """Parse ``"0.95*imagenet + eurosat"`` (terms ``[coef*]dataset`` joined by ``+``) or ``"mean"``.

    ``mean`` weights every dataset of the table by ``1 / #datasets``.

    Raises:
        ValueError: an empty term, a coefficient that is not a finite number, a dataset absent from ``datasets``,
            or coefficients that are all zero (nothing to maximise).
    """
    text = text.strip()
    if text.lower() == "mean":
        return Objective({d: 1.0 / len(datasets) for d in datasets}, text)
    terms: dict[str, float] = {}
    for raw in text.split("+"):
        part = raw.strip()
        if not part:
            raise ValueError(f"objective {text!r}: empty term; expected terms like 0.95*imagenet joined by +")
        coef, _, name = part.rpartition("*")
        try:
            value = float(coef) if coef.strip() else 1.0
        except ValueError:
            raise ValueError(f"objective {text!r}: coefficient {coef!r} of term {part!r} is not a number") from None
        if not math.isfinite(value):
            raise ValueError(
                f"objective {text!r}: coefficient {coef.strip()!r} of term {part!r} is not finite; expected a finite "
                "number such as 0.95"
            )
        name = name.strip()
        if name not in datasets:
            raise ValueError(
                f"objective {text!r}: dataset {name!r} is not in the results table.{did_you_mean(name, list(datasets))}"
            )
        terms[name] = terms.get(name, 0.0) + value
    if not any(terms.values()):
        raise ValueError(f"objective {text!r}: every coefficient is 0, so there is nothing to maximise")
    return Objective(terms, text)


@dataclass
class OptimizationResult:
    """Outcome of :func:`optimize_weights`.

    Attributes:
        weights: best weights found.
        objective_value: their objective value.
        ax_objective_value: best objective value of the Ax trials alone (before local refinement).
        start_weights: the starting weights (evaluated as the first trial).
        start_objective: the starting objective value.
        correlations: per-dataset WAR correlations of the best weights.
        start_correlations: per-dataset WAR correlations of the starting weights.
        history: objective value of every Ax trial, in order (the start first).
    """

    weights: dict[str, float]
    objective_value: float
    ax_objective_value: float
    start_weights: dict[str, float]
    start_objective: float
    correlations: dict[str, float]
    start_correlations: dict[str, float]
    history: list[float] = field(default_factory=list)


class WeightScorer:
    """Evaluates the objective for many weightings of one fixed ``[models, datasets]`` Gamma matrix."""

    def __init__(self, Gammas: np.ndarray, datasets: Sequence[str], objective: Objective) -> None:  # noqa: N803
        self.gammas = np.asarray(Gammas, dtype=float)
        self.datasets = list(datasets)
        self.objective = objective
        self._ranks = standardised_ranks(self.gammas)

    def correlations(self, weights: np.ndarray) -> dict[str, float]:
        """Per-dataset Spearman correlation of the WAR ranking under ``weights``."""
        values = fast_war_correlations(self._ranks, self.gammas, np.asarray(weights, dtype=float))
        return dict(zip(self.datasets, map(float, values)))

    def __call__(self, weights: np.ndarray) -> float:
        """Objective value of ``weights``."""
        return self.objective(self.correlations(weights))


def refine_weights(
    scorer: WeightScorer, start: np.ndarray, bounds: tuple[float, float], steps: int, seed: int
) -> tuple[np.ndarray, float]:
    """Seeded stochastic hill climbing from ``start`` (moves that do not lower the objective are kept).

    The objective is piecewise constant in the weights (it depends on rankings only), so accepting equal
    moves lets the search drift across plateaus; each step costs one ranking of the models.
    """
    lo, hi = bounds
    rng = np.random.default_rng(seed)
    best, best_value = np.array(start, dtype=float), scorer(start)
    span = np.log(hi / lo) if lo > 0 else 1.0
    for _ in range(steps):
        cand = best.copy()
        idx = rng.choice(cand.size, size=rng.integers(1, min(3, cand.size) + 1), replace=False)
        if lo > 0:  # multiplicative moves: weights live on a log scale
            cand[idx] = cand[idx] * np.exp(rng.normal(0.0, 0.25 * span, size=idx.size))
        else:
            cand[idx] = cand[idx] + rng.normal(0.0, 0.25 * (hi - lo), size=idx.size)
        cand = np.clip(cand, lo, hi)
        value = scorer(cand)
        if value >= best_value:
            best, best_value = cand, value
    return best, float(best_value)


def _quiet_loggers(*prefixes: str) -> None:
    """Show only errors of these libraries' loggers (Ax sets INFO on its child loggers, so each is set)."""
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in prefixes]
    for name in {*prefixes, *names}:
        logging.getLogger(name).setLevel(logging.ERROR)


def optimize_weights(
    Gammas: np.ndarray,  # noqa: N803
    datasets: Sequence[str],
    objective: Objective,
    *,
    bounds: tuple[float, float] = DEFAULT_BOUNDS,
    trials: int = 60,
    batch_size: int = 6,
    refine_steps: int = 3000,
    seed: int = 0,
    start: Mapping[str, float] | None = None,
    progress: Callable[[int, float, float], None] | None = None,
) -> OptimizationResult:
    """Search dataset weights in ``bounds`` that maximise ``objective``.

    Ax explores the space globally (Sobol initialisation, then Bayesian optimisation, ``batch_size``
    candidates per model fit); the best Ax trial is then refined by :func:`refine_weights`, which is cheap
    because the objective is evaluated exactly. The starting weights are the first trial, so the result is
    never worse than the start, and everything is seeded: the same inputs and seed give the same weights.

    Args:
        Gammas: ``[models, datasets]`` improved relative robustness at the target resolution.
        datasets: dataset name of each column.
        objective: what to maximise.
        bounds: lower and upper bound of every weight (lower > 0 keeps every dataset present).
        trials: number of Ax trials after the start trial.
        batch_size: candidates Ax proposes per round (one surrogate-model fit per round).
        refine_steps: local refinement steps after Ax (0 disables it).
        seed: seed of Ax's generation strategy and of the refinement.
        start: starting weights (default: all ones); clipped into ``bounds``.
        progress: called as ``progress(trials_done, last_value, best_value)`` after each Ax round.
    """
    from ax.api.client import Client
    from ax.api.configs import RangeParameterConfig

    lo, hi = float(bounds[0]), float(bounds[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi):
        raise ValueError(f"bounds (LO, HI) must be finite with 0 <= LO < HI, got {tuple(bounds)}")
    if trials < 1 or batch_size < 1 or refine_steps < 0:
        raise ValueError("trials and batch_size must be >= 1 and refine_steps >= 0")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed}")
    gammas = np.asarray(Gammas, dtype=float)
    if not np.isfinite(gammas).all():
        raise ValueError(
            "the Gamma matrix has undefined (NaN) or infinite values: keep the models whose Gamma is defined"
        )
    bad = {d: w for d, w in (start or {}).items() if not (math.isfinite(float(w)) and float(w) >= 0)}
    if bad:
        raise ValueError(f"starting weights must be finite numbers >= 0, got {bad}")
    scorer = WeightScorer(gammas, datasets, objective)
    names = [f"w{i}" for i in range(len(datasets))]
    start_vec = np.clip([float((start or {}).get(d, 1.0)) for d in datasets], lo, hi)

    _quiet_loggers("ax", "botorch", "linear_operator", "gpytorch")
    client = Client(random_seed=seed)
    client.configure_experiment(
        parameters=[RangeParameterConfig(name=n, parameter_type="float", bounds=(lo, hi)) for n in names]
    )
    client.configure_optimization(objective="score")
    client.configure_generation_strategy(method="fast", initialization_random_seed=seed)

    start_value = scorer(start_vec)
    idx = client.attach_trial({n: float(v) for n, v in zip(names, start_vec)}, arm_name="start")
    client.complete_trial(idx, raw_data={"score": start_value})
    best_vec, best_value, history = start_vec, start_value, [start_value]
    while len(history) - 1 < trials:
        batch = client.get_next_trials(max_trials=min(batch_size, trials - (len(history) - 1)))
        for idx, params in batch.items():
            vec = np.array([float(params[n]) for n in names])
            value = scorer(vec)
            client.complete_trial(idx, raw_data={"score": value})
            history.append(value)
            if value > best_value:
                best_vec, best_value = vec, value
        if progress is not None:
            progress(len(history) - 1, history[-1], best_value)
    ax_value = best_value
    if refine_steps:
        best_vec, best_value = refine_weights(scorer, best_vec, (lo, hi), refine_steps, seed)

    return OptimizationResult(
        weights=dict(zip(datasets, map(float, best_vec))),
        objective_value=float(best_value),
        ax_objective_value=float(ax_value),
        start_weights=dict(zip(datasets, map(float, start_vec))),
        start_objective=float(start_value),
        correlations=scorer.correlations(best_vec),
        start_correlations=scorer.correlations(start_vec),
        history=history,
    )
