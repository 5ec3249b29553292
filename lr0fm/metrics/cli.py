"""``lr0fm metrics report``: robustness metrics of a results table; ``lr0fm metrics optimize-weights``."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from lr0fm.metrics.robustness import DEFAULT_ALPHA, check_alpha

REPORT, OPTIMIZE = "report", "optimize-weights"
#: ``--num_classes paper``: the class counts of the authors' MetaData/generate_SAR_WAR.py
PAPER_CLASS_COUNTS = "paper"


def _key_value(text: str, what: str, flag: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise ValueError(f"{flag} {text!r}: expected {what}")
    return key.strip(), value.strip()


def _class_counts(values: list[str]) -> dict[str, int]:
    """``--num_classes`` values as a mapping (``paper`` expands to the authors' counts; later values win).

    Raises:
        ValueError: a value is neither ``paper`` nor ``DATASET=N`` with ``N >= 1``.

    """
    from lr0fm.catalog import AUTHORS_NUM_CLASSES

    counts: dict[str, int] = {}
    for text in values:
        if text == PAPER_CLASS_COUNTS:
            counts.update(AUTHORS_NUM_CLASSES)
            continue
        name, value = _key_value(text, "DATASET=N or paper", "--num_classes")
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"--num_classes {text!r}: N must be an integer >= 1")
        counts[name] = int(value)
    return counts


def _common(parser) -> None:
    from jsonargparse import ActionYesNo

    parser.add_argument(
        "results",
        help="results table (CSV or JSON Lines): model,dataset,resolution,top1[,protocol,top5,num_samples,"
        "num_classes]; 'lr0fm66' is the published table of the paper's 66 backbones (shipped)",
    )
    parser.add_argument(
        "--alpha", type=float, default=DEFAULT_ALPHA, help="decay rate of Gamma near chance accuracy (finite, > 0)"
    )
    parser.add_argument(
        "--num_classes",
        nargs="+",
        type=str,
        default=[],
        help="DATASET=N class counts where the table has no num_classes column; 'paper' sets the counts of the "
        "authors' generate_SAR_WAR.py (102 for caltech101, food101, fgvc-aircraft and flowers102)",
    )
    parser.add_argument("--allow_missing", action=ActionYesNo, default=False, help="aggregate models that lack some "
                        "datasets over what exists")  # fmt: skip
    parser.add_argument("--protocol", type=str | None, default=None, help="use only the rows of this LR protocol")
    parser.add_argument(
        "--allow_mixed_protocols",
        action=ActionYesNo,
        default=False,
        help="rank rows of different LR protocols together (a model under several is named 'MODEL [protocol]')",
    )


def _report_parser():
    from jsonargparse import ActionYesNo

    from lr0fm.command import command_parser

    report = command_parser(
        f"lr0fm metrics {REPORT}",
        "ACC/SAR/WAR, gamma and Gamma per dataset, and the dataset-representation report of a results table.",
    )
    _common(report)
    report.add_argument("--weights", type=str | None, default=None, help="WAR weights YAML (default: published)")
    report.add_argument(
        "--output", type=str | None, default=None, help="output folder (default: lightning_logs/metrics/<results>)"
    )
    report.add_argument(
        "--reference",
        nargs="+",
        type=str,
        default=[],
        help="MODEL=BASE: compute MODEL's gamma against BASE's HR accuracy, as the paper does for LR-TK0",
    )
    report.add_argument("--quiet", action=ActionYesNo, default=False, help="do not print the Markdown report")
    return report


def _optimize_parser():
    from lr0fm.command import command_parser
    from lr0fm.metrics.optimize import DEFAULT_BOUNDS, PAPER_OBJECTIVE

    optimize = command_parser(
        f"lr0fm metrics {OPTIMIZE}",
        "Optimise WAR dataset weights with Ax so the WAR model ranking represents chosen datasets.",
    )
    _common(optimize)
    optimize.add_argument("--resolution", type=int, default=16, help="resolution whose Gamma is used")
    optimize.add_argument("--bounds", nargs=2, type=float, default=list(DEFAULT_BOUNDS), help="LO HI of each weight")
    optimize.add_argument(
        "--objective",
        type=str,
        default=PAPER_OBJECTIVE,
        help=f"sum of [coef*]dataset terms over Spearman correlations, or 'mean' (paper eq. 2: {PAPER_OBJECTIVE})",
    )
    optimize.add_argument("--trials", type=int, default=60, help="Ax trials after the start")
    optimize.add_argument("--batch_size", type=int, default=6, help="candidates per Ax round")
    optimize.add_argument("--refine_steps", type=int, default=3000, help="seeded local refinement steps (0: off)")
    optimize.add_argument("--seed", type=int, default=0)
    optimize.add_argument(
        "--start", type=str, default="published", help="starting weights: published, uniform, or a weights YAML"
    )
    optimize.add_argument("--output", type=str, required=True, help="where to write the weights YAML")
    return optimize


def build_parser():
    """Parser of ``lr0fm metrics`` with its subcommands ``report`` and ``optimize-weights``."""
    from lr0fm.command import add_subcommands, command_parser

    parser = command_parser(
        "lr0fm metrics",
        "LR0.FM robustness metrics (ACC, SAR, WAR, gamma, Gamma) of a results table, and WAR weight fitting.",
    )
    add_subcommands(
        parser,
        {
            REPORT: (_report_parser(), "robustness metrics of a results table"),
            OPTIMIZE: (_optimize_parser(), "fit WAR weights with Ax"),
        },
    )
    return parser


def _load_table(args):
    from lr0fm.metrics.table import load_results
    from lr0fm.presets import resolve_results

    return load_results(
        resolve_results(args.results), protocol=args.protocol, allow_mixed_protocols=args.allow_mixed_protocols
    )


def _report_output(args) -> Path:
    return Path(args.output) if args.output else Path("lightning_logs") / "metrics" / Path(args.results).stem


def check_output_file(path: Path, flag: str = "--output") -> None:
    """Refuse an output file path that is a folder or lies below a file, before any work.

    Raises:
        ValueError: naming the path and what is expected there.

    """
    if path.is_dir():
        raise ValueError(
            f"{flag} {str(path)!r} is a folder; expected the weights YAML file to write, e.g. "
            f"{str(path / 'weights.yaml')!r}"
        )
    from lr0fm.command import file_blocking

    blocker = file_blocking(path.parent)
    if blocker is not None:
        raise ValueError(
            f"{flag} {str(path)!r}: {str(blocker)!r} is a file, not a folder; expected a writable YAML path"
        )


def run_metrics(args: Any) -> int:
    """Compute and write the report."""
    from lr0fm.metrics.markdown import report_markdown
    from lr0fm.metrics.report import compute_report
    from lr0fm.metrics.weights import load_weights

    check_alpha(args.alpha, "--alpha")
    counts = _class_counts(args.num_classes)
    output = _report_output(args)
    from lr0fm.command import check_output_folder

    check_output_folder(output, holds="summary.csv, per_dataset.csv, correlations.csv, summary.md and config.yaml")
    table = _load_table(args)
    weights = load_weights(args.weights) if args.weights else None
    references = dict(_key_value(r, "MODEL=BASE", "--reference") for r in args.reference)
    report = compute_report(
        table,
        weights=weights,
        alpha=args.alpha,
        num_classes=counts,
        allow_missing=args.allow_missing,
        references=references,
    )
    paths = report.write(output)
    if not args.quiet:
        print(report_markdown(report))
    else:
        for note in report.notes:
            print(note, file=sys.stderr)
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def _check_optimizer_flags(args: Any) -> None:
    """Refuse optimiser settings that cannot give meaningful weights, naming the flag (before any work).

    Raises:
        ValueError: non-finite or unordered ``--bounds``, ``--trials``/``--batch_size`` < 1, ``--refine_steps``
            < 0, or a ``--seed`` outside [0, 2**32).

    """
    import math

    lo, hi = args.bounds
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi):
        raise ValueError(f"--bounds {lo:g} {hi:g}: expected finite LO HI with 0 <= LO < HI (default 0.01 1)")
    for flag, value, least in (("--trials", args.trials, 1), ("--batch_size", args.batch_size, 1),
                               ("--refine_steps", args.refine_steps, 0)):  # fmt: skip
        if value < least:
            raise ValueError(f"{flag} {value}: must be >= {least}")
    if not 0 <= args.seed < 2**32:
        raise ValueError(f"--seed {args.seed}: must be an integer in [0, 2**32)")


def run_optimize(args: Any) -> int:
    """Fit WAR weights and write them as YAML."""
    from lr0fm.metrics.optimize import optimize_weights, parse_objective
    from lr0fm.metrics.report import compute_report, gamma_matrix
    from lr0fm.metrics.weights import DEFAULT_WAR_WEIGHTS, load_weights, save_weights

    check_alpha(args.alpha, "--alpha")
    _check_optimizer_flags(args)
    check_output_file(Path(args.output))
    counts = _class_counts(args.num_classes)
    table = _load_table(args)
    if args.resolution not in table.resolutions:
        raise ValueError(f"--resolution {args.resolution}: the table has resolutions {table.resolutions}")
    report = compute_report(table, alpha=args.alpha, num_classes=counts, allow_missing=args.allow_missing)
    datasets = table.datasets
    by_cell = {(s.model, s.dataset, s.resolution): s for s in report.per_dataset}
    models, gammas = gamma_matrix(by_cell, table.models, datasets, args.resolution)
    if len(models) < 3:
        raise ValueError(
            f"weight optimisation needs >= 3 models with every dataset at {args.resolution} px, Gamma defined "
            f"(have {len(models)})"
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
    from lr0fm.command import parse, save_config
    from lr0fm.metrics.table import ResultsTableError
    from lr0fm.metrics.weights import WeightsError

    parser = build_parser()
    cfg = parse(parser, list(sys.argv[1:] if argv is None else argv))
    args = cfg[cfg.command]
    try:
        code = run_optimize(args) if cfg.command == OPTIMIZE else run_metrics(args)
    except (ResultsTableError, WeightsError, ValueError) as exc:
        print(f"lr0fm metrics {cfg.command}: error: {exc}", file=sys.stderr)
        return 2
    if cfg.command == REPORT:  # re-run with `lr0fm metrics report --config OUTPUT/config.yaml`
        save_config(_report_parser(), args, _report_output(args))
    return code
