"""Readable Markdown tables of a robustness report."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from lr0fm.catalog import DISPLAY_NAMES
from lr0fm.metrics.table import HR

if TYPE_CHECKING:
    from lr0fm.metrics.report import RobustnessReport

#: Per-dataset accuracy tables are printed for at most this many models.
MAX_MODELS_FOR_DATASET_TABLES = 8


def _num(value: float, digits: int = 1) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _res_label(res) -> str:
    return "HR" if res == HR else str(res)


def summary_table(report: RobustnessReport) -> str:
    """One row per model: HR accuracy, then ACC/SAR/WAR at each resolution (percent)."""
    resolutions = list(dict.fromkeys(s.resolution for s in report.summary))
    models = list(dict.fromkeys(s.model for s in report.summary))
    hr_acc = {}
    for m in models:
        accs = [d.top1 for d in report.per_dataset if d.model == m and d.resolution == HR]
        hr_acc[m] = 100 * sum(accs) / len(accs) if accs else float("nan")
    header = ["model", "ACC-HR"]
    for r in resolutions:
        header += [f"ACC-{_res_label(r)}", f"SAR-{_res_label(r)}", f"WAR-{_res_label(r)}"]
    rows = []
    for m in models:
        row = [m, _num(hr_acc[m])]
        for r in resolutions:
            try:
                s = report.summary_for(m, r)
                row += [_num(s.acc), _num(s.sar), _num(s.war)]
            except KeyError:
                row += ["–", "–", "–"]
        rows.append(row)
    return _table(header, rows)


def dataset_tables(report: RobustnessReport) -> str:
    """Per model: top-1 (%) of each dataset at each resolution."""
    models = list(dict.fromkeys(d.model for d in report.per_dataset))
    out = []
    for m in models:
        cells = {(d.dataset, d.resolution): d.top1 for d in report.per_dataset if d.model == m}
        datasets = list(dict.fromkeys(d for d, _ in cells))
        resolutions = sorted({r for _, r in cells if r != HR}) + ([HR] if any(r == HR for _, r in cells) else [])
        rows = [
            [DISPLAY_NAMES.get(d, d)] + [_num(100 * cells[(d, r)]) if (d, r) in cells else "–" for r in resolutions]
            for d in datasets
        ]
        out.append(f"### {m}: top-1 (%)\n\n" + _table(["dataset"] + [_res_label(r) for r in resolutions], rows))
    return "\n\n".join(out)


def correlation_table(report: RobustnessReport) -> str:
    """Spearman correlation of the SAR(Gamma) and WAR rankings with each dataset's ranking."""
    rows = [
        [str(c.resolution), DISPLAY_NAMES.get(c.dataset, c.dataset), _num(c.spearman_sar, 2), _num(c.spearman_war, 2)]
        for c in report.correlations
    ]
    return _table(["resolution", "dataset", "Spearman SAR(Γ)", "Spearman WAR"], rows)


def report_markdown(report: RobustnessReport, *, include_correlations: bool = True) -> str:
    """The whole report as Markdown."""
    parts = [
        "## LR0.FM robustness (ACC, SAR, WAR in %)",
        f"alpha = {report.alpha:g}; WAR weights: "
        + ", ".join(f"{DISPLAY_NAMES.get(d, d)} {w:.3g}" for d, w in report.weights.items()),
        summary_table(report),
    ]
    if len({d.model for d in report.per_dataset}) <= MAX_MODELS_FOR_DATASET_TABLES:
        parts.append(dataset_tables(report))
    if include_correlations and report.correlations:
        parts += ["### Dataset representation (Spearman rank correlation)", correlation_table(report)]
    parts += report.notes
    return "\n\n".join(parts) + "\n"
