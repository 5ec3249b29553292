"""``lr0fm metrics``: robustness metrics of a results table, and ``lr0fm metrics optimize-weights``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lr0fm.metrics.robustness import DEFAULT_ALPHA

OPTIMIZE = "optimize-weights"
#: ``--num-classes paper``: the class counts of the authors' MetaData/generate_SAR_WAR.py
PAPER_CLASS_COUNTS = "paper"


def _key_value(text: str, what: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return key.strip(), value.strip()


def _num_classes_arg(text: str) -> tuple[str, int]:
    if text == PAPER_CLASS_COUNTS:
        return text, 0
    name, value = _key_value(text, "DATASET=N")
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--num-classes {text!r}: N must be an integer") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"--num-classes {text!r}: N must be >= 1")
    return name, count


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results",
        help="results table (CSV or JSON Lines): model,dataset,resolution,top1[,top5,num_samples,num_classes]; "
        "'lr0fm66' is the published table of the paper's 66 backbones (shipped)",
    )
    parser.add_argument(
        "--alpha", type=float, default=DEFAULT_ALPHA, help="decay rate of Gamma near chance accuracy (default 200)"
    )
    parser.add_argument(
        "--num-classes",
        type=_num_classes_arg,
        action="append",
        default=[],
        metavar="DATASET=N",
        help="class count of a dataset where the table has no num_classes column (repeatable); 'paper' sets the "
        "counts of the authors' generate_SAR_WAR.py (102 for caltech101, food101, fgvc-aircraft and flowers102)",
    )
    parser.add_argument("--protocol", help="use only the rows measured with this LR protocol (e.g. paper)")
    parser.add_argument(
        "--allow-mixed-protocols",
        action="store_true",
        help="rank rows of different LR protocols together "
        "(a model measured under several is named 'MODEL [protocol]')",
    )
    parser.add_argument(
        "--allow-missing", action="store_true", help="aggregate models that lack some datasets over what exists"
    )


def build_parser() -> argparse.ArgumentParser:
    """Parser of ``lr0fm metrics``."""
    parser = argparse.ArgumentParser(
        prog="lr0fm metrics",
        description="LR0.FM robustness metrics (ACC, SAR, WAR, gamma, Gamma) and dataset-representation report. "
        f"`lr0fm metrics {OPTIMIZE} --help` fits WAR weights.",
    )
    _common(parser)
    parser.add_argument("--weights", help="WAR weights YAML (default: the published LR0.FM WAR-16 weights)")
    parser.add_argument("--output", help="output folder (default: lightning_logs/metrics/<results name>)")
    parser.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="MODEL=BASE",
        help="compute MODEL's gamma against BASE's HR accuracy, as the paper does for LR-TK0 (repeatable)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not print the Markdown report")
    return parser


def build_optimize_parser() -> argparse.ArgumentParser:
    """Parser of ``lr0fm metrics optimize-weights``."""
    from lr0fm.metrics.optimize import DEFAULT_BOUNDS, PAPER_OBJECTIVE

    parser = argparse.ArgumentParser(
        prog=f"lr0fm metrics {OPTIMIZE}",
        description="Optimise WAR dataset weights with Ax so the WAR model ranking represents chosen datasets.",
    )
    _common(parser)
    parser.add_argument("--resolution", type=int, default=16, help="resolution whose Gamma is used (default 16)")
    parser.add_argument("--bounds", type=float, nargs=2, default=list(DEFAULT_BOUNDS), metavar=("LO", "HI"))
    parser.add_argument(
        "--objective",
        default=PAPER_OBJECTIVE,
        help="sum of [coef*]dataset terms over Spearman correlations, or 'mean' "
        f"(default: paper eq. 2: {PAPER_OBJECTIVE})",
    )
    parser.add_argument("--trials", type=int, default=60, help="Ax trials after the start (default 60)")
    parser.add_argument("--batch-size", type=int, default=6, help="candidates per Ax round (default 6)")
    parser.add_argument(
        "--refine-steps", type=int, default=3000, help="seeded local refinement steps after Ax (default 3000; 0: off)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--start",
        default="published",
        help="starting weights: 'published' (LR0.FM WAR-16), 'uniform', or a weights YAML (default: published)",
    )
    parser.add_argument("--output", required=True, help="where to write the weights YAML")
    return parser


def _load_table(args):
    from lr0fm.metrics.table import load_results
    from lr0fm.presets import resolve_results

    return load_results(
        resolve_results(args.results), protocol=args.protocol, allow_mixed_protocols=args.allow_mixed_protocols
    )


def _class_counts(pairs: list[tuple[str, int]]) -> dict[str, int]:
    """``--num-classes`` values as a mapping (``paper`` expands to the authors' counts; later flags win)."""
    from lr0fm.catalog import AUTHORS_NUM_CLASSES

    counts: dict[str, int] = {}
    for name, value in pairs:
        counts.update(AUTHORS_NUM_CLASSES if name == PAPER_CLASS_COUNTS else {name: value})
    return counts


def run_metrics(args: argparse.Namespace) -> int:
    """Compute and write the report."""
    from lr0fm.metrics.markdown import report_markdown
    from lr0fm.metrics.report import compute_report
    from lr0fm.metrics.weights import load_weights

    table = _load_table(args)
    weights = load_weights(args.weights) if args.weights else None
    references = dict(_key_value(r, "MODEL=BASE") for r in args.reference)
    report = compute_report(
        table,
        weights=weights,
        alpha=args.alpha,
        num_classes=_class_counts(args.num_classes),
        allow_missing=args.allow_missing,
        references=references,
    )
    output = Path(args.output) if args.output else Path("lightning_logs") / "metrics" / Path(args.results).stem
    paths = report.write(output)
    if not args.quiet:
        print(report_markdown(report))
    else:
        for note in report.notes:
            print(note, file=sys.stderr)
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def run_optimize(args: argparse.Namespace) -> int:
    """Fit WAR weights and write them as YAML."""
    from lr0fm.metrics.optimize import optimize_weights, parse_objective
    from lr0fm.metrics.report import compute_report, gamma_matrix
    from lr0fm.metrics.weights import DEFAULT_WAR_WEIGHTS, load_weights, save_weights

    table = _load_table(args)
    if args.resolution not in table.resolutions:
        raise ValueError(f"--resolution {args.resolution}: the table has resolutions {table.resolutions}")
    report = compute_report(
        table, alpha=args.alpha, num_classes=_class_counts(args.num_classes), allow_missing=args.allow_missing
    )
    datasets = table.datasets
    by_cell = {(s.model, s.dataset, s.resolution): s for s in report.per_dataset}
    models, gammas = gamma_matrix(by_cell, table.models, datasets, args.resolution)
    if len(models) < 3:
        raise ValueError(
            f"weight optimisation needs >= 3 models with every dataset at {args.resolution} px (have {len(models)})"
        )
    objective = parse_objective(args.objective, datasets)
    if args.start == "published":
        start = DEFAULT_WAR_WEIGHTS
    elif args.start == "uniform":
        start = {d: 1.0 for d in datasets}
    else:
        start = load_weights(args.start)

    t0 = time.perf_counter()

    def progress(trial: int, value: float, best: float) -> None:
        print(f"  trial {trial}/{args.trials}: objective {value:.4f} (best {best:.4f})", file=sys.stderr)

    result = optimize_weights(
        gammas,
        datasets,
        objective,
        bounds=tuple(args.bounds),
        trials=args.trials,
        batch_size=args.batch_size,
        refine_steps=args.refine_steps,
        seed=args.seed,
        start=start,
        progress=progress,
    )
    elapsed = time.perf_counter() - t0
    save_weights(
        args.output,
        result.weights,
        resolution=args.resolution,
        objective=objective.text,
        objective_value=round(result.objective_value, 6),
        start=args.start,
        start_objective_value=round(result.start_objective, 6),
        ax_objective_value=round(result.ax_objective_value, 6),
        trials=args.trials,
        refine_steps=args.refine_steps,
        seed=args.seed,
        bounds=list(args.bounds),
        models=len(models),
        source=str(args.results),
    )
    print(f"objective ({objective.text}) at {args.resolution} px over {len(models)} models:")
    print(f"  start ({args.start}): {result.start_objective:.4f}")
    print(f"  best Ax trial:      {result.ax_objective_value:.4f}  ({args.trials} trials)")
    print(
        f"  optimised:          {result.objective_value:.4f}  "
        f"(after {args.refine_steps} refinement steps; {elapsed:.1f} s in all)"
    )
    print("  dataset      SC(start)  SC(optimised)  weight")
    for d in datasets:
        print(
            f"  {d:<14} {result.start_correlations[d]:>7.3f}  {result.correlations[d]:>11.3f}  {result.weights[d]:.4f}"
        )
    print(f"wrote {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lr0fm metrics``."""
    from lr0fm.metrics.table import ResultsTableError
    from lr0fm.metrics.weights import WeightsError

    argv = list(sys.argv[1:] if argv is None else argv)
    optimize = bool(argv) and argv[0] == OPTIMIZE
    parser = build_optimize_parser() if optimize else build_parser()
    args = parser.parse_args(argv[1:] if optimize else argv)
    try:
        return run_optimize(args) if optimize else run_metrics(args)
    except (ResultsTableError, WeightsError, ValueError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
