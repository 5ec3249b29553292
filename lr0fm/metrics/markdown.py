"""Readable Markdown tables of a robustness report.

Units: the report holds fractions (as the results table and the CSVs do); these tables print percent, and every
header that shows a percentage says so with ``(%)``. ``n/a`` is an undefined value (gamma with an HR top-1 of
0), ``–`` a cell the table does not have.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from lr0fm.catalog import DISPLAY_NAMES
from lr0fm.metrics.table import HR

if TYPE_CHECKING:
    from lr0fm.metrics.report import RobustnessReport

#: Per-dataset accuracy tables are printed for at most this many models.
MAX_MODELS_FOR_DATASET_TABLES = 8


#: the unit of the percentage columns, in every such header
PCT = " (%)"
#: an undefined value (NaN); a missing cell is "–"
NOT_AVAILABLE = "n/a"
MISSING = "–"


def _num(value: float | None, digits: int = 1) -> str:
    return NOT_AVAILABLE if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _pct(fraction: float | None) -> str:
    """A fraction printed as percent with one decimal (``n/a`` when undefined)."""
    return _num(None if fraction is None else 100 * fraction)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _res_label(res) -> str:
    return "HR" if res == HR else str(res)


def summary_table(report: RobustnessReport) -> str:
    """One row per model: HR accuracy, then ACC/SAR/WAR at each resolution (percent, ``(%)`` in each header)."""
    resolutions = list(dict.fromkeys(s.resolution for s in report.summary))
    models = list(dict.fromkeys(s.model for s in report.summary))
    hr_acc = {}
    for m in models:
        accs = [d.top1 for d in report.per_dataset if d.model == m and d.resolution == HR]
        hr_acc[m] = sum(accs) / len(accs) if accs else None
    header = ["model", "ACC-HR" + PCT]
    for r in resolutions:
        header += [f"{name}-{_res_label(r)}{PCT}" for name in ("ACC", "SAR", "WAR")]
    rows = []
    for m in models:
        row = [m, _pct(hr_acc[m]) if hr_acc[m] is not None else MISSING]
        for r in resolutions:
            try:
                s = report.summary_for(m, r)
                row += [_pct(s.acc), _pct(s.sar), _pct(s.war)]
            except KeyError:
                row += [MISSING] * 3
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
            [DISPLAY_NAMES.get(d, d)] + [_pct(cells[(d, r)]) if (d, r) in cells else MISSING for r in resolutions]
            for d in datasets
        ]
        header = ["dataset"] + [_res_label(r) + PCT for r in resolutions]
        out.append(f"### {m}: top-1 (%)\n\n" + _table(header, rows))
    return "\n\n".join(out)


def correlation_table(report: RobustnessReport) -> str:
    """Spearman correlation (rho, -1 to 1; not a percentage) of the SAR(Gamma) and WAR rankings with each dataset's."""
    rows = [
        [str(c.resolution), DISPLAY_NAMES.get(c.dataset, c.dataset), _num(c.spearman_sar, 2), _num(c.spearman_war, 2)]
        for c in report.correlations
    ]
    return _table(["resolution (px)", "dataset", "Spearman ρ SAR(Γ)", "Spearman ρ WAR"], rows)


def report_markdown(report: RobustnessReport, *, include_correlations: bool = True) -> str:
    """The whole report as Markdown."""
    parts = [
        "## LR0.FM robustness (ACC, SAR, WAR in %)",
        "Percentages of the report's fractions. SAR and WAR are ratios to the HR accuracy: above 100 % when a model "
        f"is more accurate at low resolution than at HR. {NOT_AVAILABLE}: undefined (HR top-1 of 0); {MISSING}: "
        "not in the table.",
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
