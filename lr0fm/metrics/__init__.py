"""LR0.FM robustness metrics: gamma, Gamma, ACC, SAR, WAR, dataset-representation report, WAR weights.

Pure Python/NumPy/SciPy (Ax only for weight optimisation); no torch or Lightning imports.
"""

from lr0fm.lazy import lazy_exports

#: public name -> submodule; loaded on first use so ``lr0fm metrics --help`` does not import SciPy
_EXPORTS = {
    "RobustnessReport": "report",
    "compute_report": "report",
    "DEFAULT_ALPHA": "robustness",
    "accuracy_gap": "robustness",
    "improved_relative_robustness": "robustness",
    "mean_accuracy": "robustness",
    "relative_robustness": "robustness",
    "simple_aggregated_robustness": "robustness",
    "weighted_aggregated_robustness": "robustness",
    "HR": "table",
    "ResultsTable": "table",
    "ResultsTableError": "table",
    "load_results": "table",
    "DEFAULT_WAR_WEIGHTS": "weights",
    "load_weights": "weights",
    "save_weights": "weights",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)

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
