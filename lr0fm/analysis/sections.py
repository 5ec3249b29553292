"""The order of the report: its sections, the table analyses, and the file holding the summary tables."""

from __future__ import annotations

#: report sections, in page order (a figure's ``FigureRecord.section``); sections not listed follow, in the
#: order their first figure was written (the model analyses')
SECTIONS = ("Accuracy vs resolution", "Robustness", "Dataset representation", "Model properties", "LR-TK0")

#: the modules of the table analyses, in report order (importing one registers it in ``ANALYSES``)
TABLE_ANALYSIS_MODULES = (
    "accuracy_curves", "robustness_ranking", "gamma_comparison", "gamma_heatmap", "dataset_correlation",
    "dataset_embedding", "model_size", "pretraining_data", "input_resolution", "lrtk0_gains",
    "sr_tradeoff",
)  # fmt: skip

#: the report's summary tables, metadata and notes (JSON), read by :func:`lr0fm.analysis.html.write_index`
REPORT_DATA = "report.json"
