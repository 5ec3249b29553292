"""Compute ACC/SAR/WAR, per-dataset gamma/Gamma and the dataset-representation report of a results table.

Units: every value here is a fraction (top-1 in [0, 1]; gamma, Gamma, SAR and WAR are ratios, 1 = no loss, and
exceed 1 when the low resolution beats HR), as in the results table; only the printed Markdown shows percent.

A cell whose native-resolution accuracy is 0 has no defined gamma or Gamma (``A_n / A_HR`` with ``A_HR = 0``):
they are NaN (written as an empty CSV cell, ``n/a`` in Markdown), and so are the SAR and WAR of that model at
that resolution, unless ``allow_missing`` aggregates over the datasets where they are defined. A NaN WAR has
no rank.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lr0fm.atomic import atomic_path, write_text_atomic
from lr0fm.catalog import NUM_CLASSES, did_you_mean
from lr0fm.metrics.correlation import dataset_correlations, mean_correlation
from lr0fm.metrics.robustness import (
    DEFAULT_ALPHA,
    check_alpha,
    improved_relative_robustness,
    mean_accuracy,
    relative_robustness,
    simple_aggregated_robustness,
    weighted_aggregated_robustness,
)
from lr0fm.metrics.table import HR, Resolution, ResultsTable, ResultsTableError
from lr0fm.metrics.weights import DEFAULT_WAR_WEIGHTS, MISSING_WEIGHT, WeightsError

MEAN_ROW = "mean"


@dataclass(frozen=True)
class DatasetScore:
    """Robustness of one model on one dataset at one resolution (fractions, not percent).

    ``gamma`` and ``Gamma`` are NaN where the reference HR accuracy is 0 (undefined).
    """

    model: str
    dataset: str
    resolution: Resolution
    top1: float
    gamma: float
    Gamma: float  # noqa: N815 (the paper's symbol)
    num_classes: int


@dataclass(frozen=True)
class ModelSummary:
    """ACC/SAR/WAR of one model at one resolution, as fractions (multiply by 100 for percent).

    ``sar``/``war`` are NaN where undefined (a dataset with 0 HR accuracy); ``rank_war`` is then ``None``.
    SAR (a mean of gamma) exceeds 1 when the model is more accurate at low resolution than at HR.
    """

    model: str
    resolution: Resolution
    acc: float
    sar: float
    war: float
    rank_war: int | None
    num_datasets: int


@dataclass(frozen=True)
class DatasetCorrelation:
    """Spearman correlation of the SAR-over-Gamma and WAR model rankings with one dataset's ranking."""

    resolution: int
    dataset: str
    spearman_sar: float
    spearman_war: float


@dataclass
class RobustnessReport:
    """Everything ``lr0fm metrics`` computes from one results table."""

    summary: list[ModelSummary]
    per_dataset: list[DatasetScore]
    correlations: list[DatasetCorrelation]
    weights: dict[str, float]
    alpha: float
    num_classes: dict[tuple[str, str], int]
    notes: list[str] = field(default_factory=list)

    def summary_for(self, model: str, resolution: Resolution) -> ModelSummary:
        """The summary row of ``model`` at ``resolution``."""
        for row in self.summary:
            if row.model == model and row.resolution == resolution:
                return row
        raise KeyError((model, resolution))

    def write(self, output_dir: str | Path) -> dict[str, Path]:
        """Write ``summary.csv``, ``per_dataset.csv``, ``correlations.csv`` (fractions) and ``summary.md`` (percent).

        An undefined value (NaN) is an empty CSV cell.
        """
        from lr0fm.metrics.markdown import report_markdown

        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "summary": _write_csv(
                out / "summary.csv",
                ["model", "resolution", "acc", "sar", "war", "rank_war"],
                [
                    [s.model, s.resolution, _fmt(s.acc), _fmt(s.sar), _fmt(s.war), _rank_cell(s.rank_war)]
                    for s in self.summary
                ],
            ),
            "per_dataset": _write_csv(
                out / "per_dataset.csv",
                ["model", "dataset", "resolution", "top1", "gamma", "Gamma"],
                [
                    [d.model, d.dataset, d.resolution, _fmt(d.top1), _fmt(d.gamma), _fmt(d.Gamma)]
                    for d in self.per_dataset
                ],
            ),
            "correlations": _write_csv(
                out / "correlations.csv",
                ["resolution", "dataset", "spearman_sar", "spearman_war"],
                [[c.resolution, c.dataset, _fmt(c.spearman_sar), _fmt(c.spearman_war)] for c in self.correlations],
            ),
        }
        md = out / "summary.md"
        write_text_atomic(md, report_markdown(self))
        paths["markdown"] = md
        return paths


def _fmt(value: float | None) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else repr(float(value))


def _rank_cell(rank: int | None) -> str:
    return "" if rank is None else str(rank)


def _write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def resolve_num_classes(
    table: ResultsTable, model: str, dataset: str, overrides: Mapping[str, int] | None = None
) -> int:
    """Class count of ``dataset`` for ``model``.

    The table's ``num_classes`` column wins, then the override, then the dataset's true count.
    """
    for res in [HR, *table.resolutions]:
        row = table.get(model, dataset, res)
        if row is not None and row.num_classes is not None:
            return row.num_classes
    if overrides and dataset in overrides:
        return int(overrides[dataset])
    if dataset in NUM_CLASSES:
        return NUM_CLASSES[dataset]
    raise ResultsTableError(
        f"unknown dataset {dataset!r} has no class count: add a num_classes column to the results table or "
        f"pass --num_classes {dataset}=N.{did_you_mean(dataset, list(NUM_CLASSES))}"
    )


def _resolve_weights(datasets: list[str], weights: Mapping[str, float] | None, notes: list[str]) -> dict[str, float]:
    source = DEFAULT_WAR_WEIGHTS if weights is None else dict(weights)
    unused = [d for d in source if d not in datasets]
    if weights is not None and unused:
        notes.append(f"warning: the WAR weights name datasets absent from the table (ignored): {', '.join(unused)}")
    missing = [d for d in datasets if d not in source]
    if missing:
        notes.append(
            f"warning: no WAR weight for {', '.join(missing)}; using weight {MISSING_WEIGHT:g} "
            "(pass --weights FILE to set them)"
        )
    resolved = {d: float(source.get(d, MISSING_WEIGHT)) for d in datasets}
    bad = {d: w for d, w in resolved.items() if not math.isfinite(w) or w < 0}
    if bad:
        listed = ", ".join(f"{d}={w!r}" for d, w in bad.items())
        raise WeightsError(
            f"WAR weights must be finite numbers >= 0 (0 leaves a dataset out), got {listed}; a negative weight "
            "is not the same as its absolute value, which the WAR formula would silently use"
        )
    if all(w == 0 for w in resolved.values()):
        raise WeightsError(f"the WAR weights of the table's datasets ({', '.join(datasets)}) are all zero")
    return resolved


def _rank_desc(values: list[float]) -> list[int | None]:
    """Competition ranks (1 = highest; ties share the best rank); a NaN value has no rank (``None``)."""
    defined = [v for v in values if not math.isnan(v)]
    return [None if math.isnan(v) else 1 + sum(other > v for other in defined) for v in values]


def compute_report(
    table: ResultsTable,
    *,
    weights: Mapping[str, float] | None = None,
    alpha: float = DEFAULT_ALPHA,
    num_classes: Mapping[str, int] | None = None,
    allow_missing: bool = False,
    references: Mapping[str, str] | None = None,
) -> RobustnessReport:
    """Compute the LR0.FM robustness report of a results table.

    Args:
        table: validated results.
        weights: WAR dataset weights (default: the published LR0.FM WAR-16 weights, for every resolution).
        alpha: decay rate of Gamma near chance accuracy (a finite number > 0; the paper uses 200).
        num_classes: per-dataset class counts used where the table has no ``num_classes`` column.
        allow_missing: aggregate models that lack some (dataset, resolution) cells over what exists instead
            of failing, and SAR/WAR over the datasets where gamma is defined (the report notes both).
        references: ``model -> reference model`` whose HR accuracy defines gamma and the accuracy gap, as the
            paper does for LR-TK0 (vanilla model's HR accuracy); such models also get an ``hr`` summary row.

    Raises:
        ResultsTableError: missing HR rows, unknown class counts, no low resolution, or (without
            ``allow_missing``) models missing some datasets/resolutions.
        WeightsError: negative, non-finite or all-zero weights.
        ValueError: ``alpha`` is not a finite number > 0.
    """
    alpha = check_alpha(alpha)
    references = dict(references or {})
    notes: list[str] = []
    if alpha < 1:
        notes.append(
            f"warning: alpha = {alpha:g} < 1: the paper's eq. 1 assumes alpha >> 1 (it uses {DEFAULT_ALPHA:g}); "
            "Gamma is then far below gamma even far from chance accuracy"
        )
    _check_references(table, references)
    if not table.resolutions and not references:
        raise ResultsTableError(
            f"{table.source}: every row is at resolution hr; ACC/SAR/WAR-n compare a low resolution n with HR: add "
            "rows at a low resolution (e.g. 16, as `lr0fm benchmark --resolutions 16 32 64 128 hr` writes)"
        )
    hr_acc, classes = _hr_accuracies(table, references, num_classes)
    _check_missing_cells(table, references, allow_missing, notes)
    _note_undefined(table, references, hr_acc, allow_missing, notes)
    war_weights = _resolve_weights(table.datasets, weights, notes)
    per_dataset = [
        _score_cell(m, d, r, row.top1, hr_acc[(m, d)], classes[(m, d)], alpha)
        for m in table.models
        for d in table.datasets
        for r in [*table.resolutions, HR]
        if (row := table.get(m, d, r)) is not None and (m, d) in hr_acc
    ]
    by_cell = {(s.model, s.dataset, s.resolution): s for s in per_dataset}
    summary = _summaries(by_cell, table, references, war_weights, allow_missing)
    correlations = _correlations(by_cell, table.models, table.datasets, table.resolutions, war_weights, notes)
    return RobustnessReport(summary, per_dataset, correlations, war_weights, alpha, classes, notes)


def _check_references(table: ResultsTable, references: Mapping[str, str]) -> None:
    for model, ref in references.items():
        if model not in table.models or ref not in table.models:
            absent = model if model not in table.models else ref
            raise ResultsTableError(
                f"reference pair {model}={ref}: model {absent!r} is not in the table."
                f"{did_you_mean(absent, table.models)}"
            )


def _hr_accuracies(
    table: ResultsTable, references: Mapping[str, str], num_classes: Mapping[str, int] | None
) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], int]]:
    """HR accuracy (of the reference model) and class count of every (model, dataset) that has any row."""
    hr_acc: dict[tuple[str, str], float] = {}
    classes: dict[tuple[str, str], int] = {}
    for m in table.models:
        ref = references.get(m, m)
        for d in table.datasets:
            if not any(table.get(m, d, r) is not None for r in [*table.resolutions, HR]):
                continue
            row = table.get(ref, d, HR)
            if row is None:
                present = [r for r in table.resolutions if table.get(m, d, r) is not None]
                raise ResultsTableError(
                    f"missing HR row for model {ref!r} on dataset {d!r}: add a row with resolution=hr (the "
                    f"native-resolution accuracy every gamma is relative to); rows present at {present}"
                )
            hr_acc[(m, d)] = row.top1
            classes[(m, d)] = resolve_num_classes(table, ref, d, num_classes)
    return hr_acc, classes


def _note_undefined(
    table: ResultsTable,
    references: Mapping[str, str],
    hr_acc: Mapping[tuple[str, str], float],
    allow_missing: bool,
    notes: list[str],
) -> None:
    """Note the (model, dataset) pairs whose HR accuracy is 0: gamma = A_n / A_HR is undefined there."""
    zero = [(m, d) for (m, d), a in hr_acc.items() if a == 0]
    if not zero:
        return
    cells = "; ".join(
        f"{m} / {d}"
        + (f" (reference {references[m]})" if m in references else "")
        + f" [{table.get(references.get(m, m), d, HR).where}]"
        for m, d in zero[:8]
    )
    more = f" (and {len(zero) - 8} more)" if len(zero) > 8 else ""
    consequence = (
        "their SAR/WAR aggregate the other datasets"
        if allow_missing
        else "SAR/WAR of those models are n/a (pass --allow_missing to aggregate over the datasets where gamma is "
        "defined)"
    )
    notes.append(
        f"warning: HR top-1 is 0 for {cells}{more}: gamma and Gamma (A_n / A_HR) are undefined there (n/a); "
        f"{consequence}. Check the native-resolution evaluation of those datasets."
    )


def _check_missing_cells(
    table: ResultsTable, references: Mapping[str, str], allow_missing: bool, notes: list[str]
) -> None:
    missing = [
        (m, d, r)
        for m in table.models
        for d in table.datasets
        for r in [*table.resolutions, HR]
        if table.get(m, d, r) is None and not (r == HR and m in references)
    ]
    if not missing:
        return
    listed = "; ".join(f"{m} / {d} / {r}" for m, d, r in missing[:8])
    more = f" (and {len(missing) - 8} more)" if len(missing) > 8 else ""
    if not allow_missing:
        raise ResultsTableError(
            f"{len(missing)} (model / dataset / resolution) cell(s) missing: {listed}{more}. "
            "Complete the table, or pass --allow_missing to aggregate each model over the datasets it has."
        )
    notes.append(f"note: aggregated over the datasets present; {len(missing)} cell(s) missing: {listed}{more}")


def _score_cell(
    model: str, dataset: str, resolution: Resolution, top1: float, a_hr: float, n_cls: int, alpha: float
) -> DatasetScore:
    """Per-(model, dataset, resolution) metrics: a new per-cell metric is a field of DatasetScore set here.

    With ``a_hr == 0`` gamma (``top1 / a_hr``) and so Gamma are undefined: NaN.
    """
    defined = a_hr > 0
    return DatasetScore(
        model=model,
        dataset=dataset,
        resolution=resolution,
        top1=top1,
        gamma=float(relative_robustness(a_hr, top1)) if defined else math.nan,
        Gamma=float(improved_relative_robustness(a_hr, top1, n_cls, alpha)) if defined else math.nan,
        num_classes=n_cls,
    )


def _summaries(
    by_cell: Mapping[tuple[str, str, Resolution], DatasetScore],
    table: ResultsTable,
    references: Mapping[str, str],
    war_weights: Mapping[str, float],
    allow_missing: bool = False,
) -> list[ModelSummary]:
    """Per-(model, resolution) aggregates, ranked by WAR: a new aggregate is a field of ModelSummary set here.

    All fractions. ACC averages every dataset present; SAR and WAR are NaN when a dataset's gamma is undefined,
    or with ``allow_missing`` average the datasets where it is defined.
    """
    summary: list[ModelSummary] = []
    for r in [*table.resolutions, HR] if references else list(table.resolutions):
        rows: list[tuple[str, float, float, float, int]] = []
        for m in table.models:
            if r == HR and m not in references:
                continue
            scores = [by_cell[(m, d, r)] for d in table.datasets if (m, d, r) in by_cell]
            if not scores:
                continue
            acc = mean_accuracy([s.top1 for s in scores])
            defined = [s for s in scores if math.isfinite(s.gamma)]
            if defined and (allow_missing or len(defined) == len(scores)):
                w = [war_weights[s.dataset] for s in defined]
                war = weighted_aggregated_robustness([s.Gamma for s in defined], w) if any(w) else math.nan
                sar = simple_aggregated_robustness([s.gamma for s in defined])
            else:
                sar = war = math.nan
            rows.append((m, acc, sar, war, len(scores)))
        ranks = _rank_desc([x[3] for x in rows])
        summary += [ModelSummary(m, r, acc, sar, war, rank, n) for (m, acc, sar, war, n), rank in zip(rows, ranks)]
    return summary


def gamma_matrix(
    by_cell: Mapping[tuple[str, str, Resolution], DatasetScore], models: list[str], datasets: list[str], resolution: int
) -> tuple[list[str], np.ndarray]:
    """``[models, datasets]`` Gamma at one resolution, over the models that have every dataset (Gamma defined)."""
    complete = [
        m
        for m in models
        if all((m, d, resolution) in by_cell and math.isfinite(by_cell[(m, d, resolution)].Gamma) for d in datasets)
    ]
    matrix = np.array([[by_cell[(m, d, resolution)].Gamma for d in datasets] for m in complete], dtype=float)
    return complete, matrix.reshape(len(complete), len(datasets))


def _correlations(by_cell, models, datasets, lr_res, war_weights, notes) -> list[DatasetCorrelation]:
    out: list[DatasetCorrelation] = []
    w = np.array([war_weights[d] for d in datasets])
    for r in lr_res:
        complete, g = gamma_matrix(by_cell, models, datasets, r)
        if len(complete) < 3:
            if len(models) >= 3:  # with fewer models a ranking correlation is meaningless: say nothing
                notes.append(
                    f"note: dataset correlations at {r} px need >= 3 models with every dataset, Gamma defined (have "
                    f"{len(complete)})"
                )
            continue
        if len(complete) < len(models):
            notes.append(
                f"note: dataset correlations at {r} px use the {len(complete)} models with every dataset, Gamma defined"
            )
        sar_c = dataset_correlations(g)
        war_c = dataset_correlations(g, w)
        out += [DatasetCorrelation(r, d, float(s), float(v)) for d, s, v in zip(datasets, sar_c, war_c)]
        out.append(DatasetCorrelation(r, MEAN_ROW, mean_correlation(sar_c), mean_correlation(war_c)))
    return out
