"""``lr0fm report``: the table analyses of a results table, their figures, the summary tables and ``index.html``.

The results are an ``lr0fm benchmark`` output folder (its ``results.jsonl``/``results.csv`` and
``config.yaml``), a results table, or the shipped published table (``lr0fm66``). The metrics are those of
``lr0fm metrics report`` (:func:`lr0fm.metrics.compute_report`, whose CSVs are written beside the figures);
each table analysis (:data:`lr0fm.analysis.ANALYSES`, ``kind="table"``) draws from them; the page lists every
figure of the folder's ``figures.json``, the model analyses' included.
"""

from __future__ import annotations

import csv
import importlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lr0fm.analysis import ANALYSES
from lr0fm.analysis.context import ReportContext
from lr0fm.analysis.figures import MANIFEST, FigureRecord, read_manifest
from lr0fm.analysis.sections import REPORT_DATA, TABLE_ANALYSIS_MODULES
from lr0fm.atomic import write_text_atomic
from lr0fm.catalog import did_you_mean
from lr0fm.metrics.table import ResultsTableError

#: results-row columns summarised as run metadata
META_COLUMNS = (
    "protocol",
    "chain",
    "precision",
    "device",
    "batch_size",
    "views",
    "seed",
    "lr0fm_version",
    "torch_version",
    "open_clip_torch_version",
    "lightning_version",
    "python_version",
    "run_id",
    "timestamp",
)


@dataclass
class ReportOptions:
    """What ``lr0fm report`` was asked for (the CLI's options, defaults as there).

    Attributes:
        results: a benchmark output folder, a results table, or a published table's name (``lr0fm66``).
        output: output folder.
        backbones: backbone table YAML (``None``: the packaged ``lr0fm66.yaml``).
        references: ``MODEL -> BASE``: MODEL's gamma is relative to BASE's HR accuracy (LR-TK0).
        weights: WAR weights (``None``: the published ones).
        alpha: decay rate of Gamma near chance.
        num_classes: per-dataset class counts where the table has none.
        allow_missing: aggregate models that lack some cells.
        protocol: keep only the rows of this LR protocol.
        allow_mixed_protocols: rank rows of different protocols together.
        resolution: the low resolution of the single-resolution figures.
        top_k: models labelled in the accuracy panels.
        analyses: the table analyses to run (``None``: all).
        command: the command line that regenerates the report.
    """

    results: str
    output: Path
    backbones: str | None = None
    references: dict[str, str] = field(default_factory=dict)
    weights: dict[str, float] | None = None
    weights_source: str = "published LR0.FM WAR-16 weights"
    alpha: float = 200.0
    num_classes: dict[str, int] = field(default_factory=dict)
    allow_missing: bool = False
    protocol: str | None = None
    allow_mixed_protocols: bool = False
    resolution: int = 16
    top_k: int = 5
    analyses: list[str] | None = None
    command: str = "lr0fm report"


def table_analyses() -> list[str]:
    """Names of the registered table analyses, in report order (their modules imported)."""
    for module in TABLE_ANALYSIS_MODULES:
        importlib.import_module(f"lr0fm.analysis.{module}")
    return [entry.name for entry in ANALYSES if entry.meta.get("kind") == "table"]


def results_file(value: str) -> tuple[Path, Path | None]:
    """The results table ``value`` names and the benchmark folder it lies in (``None``: a bare table).

    Raises:
        ResultsTableError: neither a table, a published table's name, nor a folder holding one.
    """
    from lr0fm.presets import RESULTS, resolve_results

    path = Path(resolve_results(value))
    if path.is_dir():
        for name in ("results.jsonl", "results.csv"):
            if (path / name).is_file():
                return path / name, path
        raise ResultsTableError(
            f"results folder {str(path)!r} has no results.jsonl or results.csv; an `lr0fm benchmark --output DIR` "
            "folder holds both (or pass the table file itself)"
        )
    if not path.is_file():
        raise ResultsTableError(
            f"results {value!r} is neither a file nor a folder; pass an `lr0fm benchmark` output folder, a "
            f"results.csv/.jsonl, or a published table: {', '.join(RESULTS)}.{did_you_mean(value, list(RESULTS))}"
        )
    return path, None


def benchmark_weights(folder: Path | None) -> Path | None:
    """The WAR weights file a benchmark folder's ``config.yaml`` names, if it can be found.

    The saved path is as the benchmark was given it: relative to the working directory, to the folder, or to
    the packaged benchmark presets (``weights/toy.yaml`` of ``--config toy``).
    """
    import yaml

    from lr0fm.presets import CONFIGS

    config = folder / "config.yaml" if folder else None
    if config is None or not config.is_file():
        return None
    data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    name = data.get("weights") if isinstance(data, dict) else None
    if not name:
        return None
    for candidate in (Path(name), folder / name, CONFIGS / "benchmark" / name):
        if candidate.is_file():
            return candidate
    return None


def _raw_records(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson") or text.lstrip()[:1] == "{":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return list(csv.DictReader(text.splitlines()))


def run_metadata(path: Path, folder: Path | None) -> list[tuple[str, str]]:
    """``(key, value)`` pairs describing the run: the benchmark's ``config.yaml``, then the rows' columns."""
    import yaml

    items: list[tuple[str, str]] = []
    config = folder / "config.yaml" if folder else None
    if config is not None and config.is_file():
        data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        for key, value in data.items() if isinstance(data, dict) else []:
            if value not in (None, "", [], {}):
                text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
                items.append((f"config: {key}", text))
    records = _raw_records(path)
    for column in META_COLUMNS:
        values = sorted({str(r[column]) for r in records if r.get(column) not in (None, "")})
        if not values:
            continue
        if column == "timestamp":
            text = values[0] if len(values) == 1 else f"{values[0]} .. {values[-1]}"
        elif len(values) <= 4:
            text = ", ".join(values)
        else:
            text = f"{len(values)} distinct ({values[0]} .. {values[-1]})"
        items.append((f"rows: {column}", text))
    return items


def _focus_resolution(requested: int, available: Sequence[int], notes: list[str]) -> int:
    if not available:
        raise ResultsTableError("the results table has no low-resolution rows (only hr): nothing to analyse")
    if requested in available:
        return requested
    chosen = min(available)
    notes.append(f"note: --resolution {requested} is not in the table ({list(available)}); using {chosen} px")
    return chosen


def build_context(options: ReportOptions) -> tuple[ReportContext, Path, Path | None]:
    """Read the table, compute the metrics and the models' properties."""
    from lr0fm.analysis.lrtk0_gains import token_pairs
    from lr0fm.analysis.properties import model_properties, read_gflops
    from lr0fm.analysis.sr_tradeoff import front_ends
    from lr0fm.metrics import compute_report, load_results
    from lr0fm.models.paper_backbones import read_paper_backbones

    path, folder = results_file(options.results)
    table = load_results(path, protocol=options.protocol, allow_mixed_protocols=options.allow_mixed_protocols)
    report = compute_report(
        table,
        weights=options.weights,
        alpha=options.alpha,
        num_classes=options.num_classes,
        allow_missing=options.allow_missing,
        references=options.references,
    )
    try:
        backbones = read_paper_backbones(options.backbones)
    except (FileNotFoundError, ValueError) as exc:
        raise ResultsTableError(f"--backbones: {exc}") from None
    notes = list(report.notes)
    ctx = ReportContext(
        table=table,
        report=report,
        properties=model_properties(table.models, backbones, read_gflops()),
        resolution=_focus_resolution(options.resolution, table.resolutions, notes),
        pairs=token_pairs(table.models, options.references),
        references=dict(options.references),
        command=options.command,
        top_k=options.top_k,
        notes=notes,
        front_ends=front_ends(_raw_records(path), table.models),
    )
    return ctx, path, folder


def _prune_manifest(out: Path, analyses: set[str]) -> None:
    """Drop the records (and files) of ``analyses`` about to be redrawn, and records whose image is gone."""
    records = read_manifest(out)
    kept = []
    for record in records:
        if record.analysis in analyses:
            for name in record.files:
                (out / name).unlink(missing_ok=True)
        elif any((out / f).is_file() for f in record.files if f.endswith(".png")):
            kept.append(record)
    if len(kept) != len(records):
        write_text_atomic(out / MANIFEST, json.dumps([asdict(r) for r in kept], indent=1) + "\n")


def _fmt(value: float | None, digits: int = 1) -> float | None:
    return None if value is None or value != value else round(float(value), digits)


def summary_tables(ctx: ReportContext) -> list[dict[str, Any]]:
    """The report's sortable tables: models (ACC/SAR/WAR), dataset representation, backbone properties."""
    from lr0fm.analysis.properties import format_count
    from lr0fm.analysis.style import dataset_label

    lows, n = ctx.resolutions, ctx.resolution
    by_key = {(s.model, s.resolution): s for s in ctx.report.summary}
    ranked = sorted(ctx.models, key=lambda m: by_key[(m, n)].rank_war if (m, n) in by_key else 10**9)
    columns = ["model", "family"] + [f"{k}-{r}" for r in lows for k in ("ACC", "SAR", "WAR")] + [f"rank WAR-{n}"]
    rows = []
    for m in ranked:
        values: list[Any] = [m, ctx.family(m)]
        for r in lows:
            s = by_key.get((m, r))
            values += [_fmt(100 * s.acc), _fmt(100 * s.sar), _fmt(100 * s.war)] if s else [None, None, None]
        values.append(by_key[(m, n)].rank_war if (m, n) in by_key else None)
        rows.append(values)
    tables = [
        {
            "id": "models",
            "title": "Models: ACC, SAR and WAR (%)",
            "caption": f"ACC-n: mean top-1; SAR-n: mean gamma; WAR-n: weighted mean of Gamma; ranked by WAR-{n} "
            "(as `lr0fm metrics report`, summary.csv). Click a heading to sort.",
            "columns": columns,
            "rows": rows,
        }
    ]
    corr = {(c.resolution, c.dataset): c for c in ctx.report.correlations}
    corr_res = sorted({c.resolution for c in ctx.report.correlations})
    if corr_res:
        names = list(dict.fromkeys(c.dataset for c in ctx.report.correlations))
        tables.append(
            {
                "id": "datasets",
                "title": "Datasets: representation in the SAR and WAR rankings (Spearman)",
                "caption": "Spearman correlation of the SAR-n (over Gamma) and WAR-n model rankings with each "
                "dataset's Gamma ranking (correlations.csv).",
                "columns": ["dataset"] + [f"{k}-{r}" for r in corr_res for k in ("SAR", "WAR")],
                "rows": [
                    [dataset_label(d)]
                    + [
                        v
                        for r in corr_res
                        for v in (
                            [_fmt(corr[(r, d)].spearman_sar, 3), _fmt(corr[(r, d)].spearman_war, 3)]
                            if (r, d) in corr
                            else [None, None]
                        )
                    ]
                    for d in names
                ],
            }
        )
    known = [ctx.properties[m] for m in ctx.models if ctx.properties[m].entry]
    if known:
        tables.append(
            {
                "id": "backbones",
                "title": "Backbones: size, pre-training data, input resolution, GFLOPs",
                "caption": "From the backbone table; image GFLOPs measured with torch.utils.flop_counter (empty: "
                "not measurable offline).",
                "columns": [
                    "model",
                    "family",
                    "params (M)",
                    "pre-training data",
                    "pairs",
                    "input (px)",
                    "image GFLOPs",
                ],
                "rows": [
                    [
                        p.model,
                        p.family,
                        p.params_m,
                        p.pretrain_data,
                        format_count(p.pretrain_pairs),
                        p.input_resolution,
                        p.image_gflops,
                    ]
                    for p in known
                ],
            }
        )
    return tables


def display_path(path: Path) -> str:
    """``path`` relative to the working directory, or to the installed package's parent, else absolute."""
    import lr0fm

    path = path.resolve()
    for base in (Path.cwd(), Path(lr0fm.__file__).resolve().parents[1]):
        if path.is_relative_to(base):
            return str(path.relative_to(base))
    return str(path)


def report_metadata(ctx: ReportContext, options: ReportOptions, path: Path, folder: Path | None) -> list[list[str]]:
    """The report's own settings, then the run's metadata."""
    from lr0fm import __version__

    items = [
        ("results", options.results if str(path) == options.results else f"{options.results} ({display_path(path)})"),
        ("rows / models / datasets", f"{len(ctx.table.rows)} / {len(ctx.models)} / {len(ctx.datasets)}"),
        ("resolutions", ", ".join(map(str, ctx.resolutions)) + ", hr"),
        ("figures at", f"{ctx.resolution} px"),
        ("WAR weights", options.weights_source),
        ("alpha", f"{options.alpha:g}"),
    ]
    if options.num_classes:
        items.append(("class counts (--num_classes)", ", ".join(f"{k}={v}" for k, v in options.num_classes.items())))
    if ctx.references:
        items.append(("references", ", ".join(f"{k}={v}" for k, v in ctx.references.items())))
    items += run_metadata(path, folder)
    items += [("lr0fm", __version__), ("generated", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))]
    return [[k, v] for k, v in items]


def write_report(options: ReportOptions, log: Any = None) -> dict[str, Any]:
    """Run the table analyses into ``options.output`` and write ``index.html``.

    Args:
        options: what to report.
        log: ``callable(str)`` for progress lines (``None``: quiet).

    Returns:
        ``{"index": Path, "figures": [FigureRecord], "notes": [str], "seconds": float}``.

    Raises:
        ResultsTableError: unreadable results, bad ``--backbones`` or an unknown analysis name.
    """
    from lr0fm.analysis.html import write_index

    t0 = time.perf_counter()
    names = table_analyses()
    selected = names if options.analyses is None else list(options.analyses)
    for name in selected:
        if name not in names:
            raise ResultsTableError(
                f"--analyses: unknown table analysis {name!r}.{did_you_mean(name, names)} Known: {', '.join(names)}"
            )
    ctx, path, folder = build_context(options)
    out = Path(options.output)
    out.mkdir(parents=True, exist_ok=True)
    ctx.report.write(out)
    _prune_manifest(out, set(selected))
    figures: list[FigureRecord] = []
    for name in selected:
        t1 = time.perf_counter()
        made = ANALYSES.get(name)(ctx, out)
        figures += made
        if log:
            log(f"  {name}: {len(made)} figure(s) in {time.perf_counter() - t1:.1f} s")
    data = {
        "title": f"lr0fm report: {folder.name if folder else path.name}",
        "metadata": report_metadata(ctx, options, path, folder),
        "tables": summary_tables(ctx),
        "notes": ctx.notes,
        "command": options.command,
    }
    write_text_atomic(out / REPORT_DATA, json.dumps(data, indent=1) + "\n")
    index = write_index(out)
    return {"index": index, "figures": figures, "notes": ctx.notes, "seconds": time.perf_counter() - t0}
