"""LR0.FM robustness metrics: gamma, Gamma, ACC, SAR, WAR, dataset-representation report, WAR weights.

Pure Python/NumPy/SciPy (Ax only for weight optimisation); no torch or Lightning imports.
"""

from lr0fm.metrics.report import RobustnessReport, compute_report
from lr0fm.metrics.robustness import (
    DEFAULT_ALPHA,
    accuracy_gap,
    improved_relative_robustness,
    mean_accuracy,
    relative_robustness,
    simple_aggregated_robustness,
    weighted_aggregated_robustness,
)
from lr0fm.metrics.table import HR, ResultsTable, ResultsTableError, load_results
from lr0fm.metrics.weights import DEFAULT_WAR_WEIGHTS, load_weights, save_weights

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_WAR_WEIGHTS",
    "HR",
    "ResultsTable",
    "ResultsTableError",
    "RobustnessReport",
    "accuracy_gap",
    "compute_report",
    "improved_relative_robustness",
    "load_results",
    "load_weights",
    "mean_accuracy",
    "relative_robustness",
    "save_weights",
    "simple_aggregated_robustness",
    "weighted_aggregated_robustness",
]
