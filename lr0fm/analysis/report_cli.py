"""``lr0fm report``: the paper's table analyses of a results table as figures and one self-contained index.html."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

DESCRIPTION = (
    "Figures (PNG, SVG and the CSV of the data drawn) and one self-contained index.html from a results table: "
    "accuracy vs resolution, SAR/WAR rankings, gamma vs Gamma, the Gamma heatmap, dataset representation, "
    "robustness vs model size, pre-training data and input resolution, and LR-TK0 gains."
)


def build_parser():
    """Parser of ``lr0fm report``."""
    from jsonargparse import ActionYesNo

    from lr0fm.command import command_parser
    from lr0fm.metrics.robustness import DEFAULT_ALPHA

    parser = command_parser("lr0fm report", DESCRIPTION)
    parser.add_argument(
        "results",
        help="an `lr0fm benchmark` output folder, a results table (CSV or JSON Lines), or 'lr0fm66' (the published "
        "table of the paper's 66 backbones, shipped; also examples/lr0fm66_results.csv)",
    )
    parser.add_argument(
        "--backbones",
        type=str | None,
        default=None,
        help="backbone table YAML for the model-property "
        "figures (default: the packaged lr0fm66.yaml, the paper's 66 backbones)",
    )
    parser.add_argument(
        "--output",
        type=str | None,
        default=None,
        help="output folder (default: RESULTS/report for a "
        "benchmark folder, else lightning_logs/report/<results name>)",
    )
    parser.add_argument(
        "--reference",
        nargs="+",
        type=str,
        default=[],
        help="MODEL=BASE: MODEL (e.g. with LR-TK0 "
        "tokens) is relative to BASE's HR accuracy, as `lr0fm metrics`; drawn as LR-TK0 gains",
    )
    parser.add_argument("--weights", type=str | None, default=None, help="WAR weights YAML (default: published)")
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="decay rate of Gamma near chance accuracy")
    parser.add_argument(
        "--num_classes",
        nargs="+",
        type=str,
        default=[],
        help="DATASET=N class counts where the table has no num_classes column; 'paper': the authors' counts",
    )
    parser.add_argument(
        "--allow_missing",
        action=ActionYesNo,
        default=False,
        help="aggregate models that lack some datasets over what exists",
    )
    parser.add_argument("--protocol", type=str | None, default=None, help="use only the rows of this LR protocol")
    parser.add_argument(
        "--allow_mixed_protocols",
        action=ActionYesNo,
        default=False,
        help="rank rows of different LR protocols together",
    )
    parser.add_argument(
        "--resolution",
        type=int,
        default=16,
        help="low resolution of the single-resolution figures "
        "(heatmap, dataset representation, model properties; the paper's 16)",
    )
    parser.add_argument("--top_k", type=int, default=5, help="models drawn thick and named in each accuracy panel")
    parser.add_argument(
        "--analyses",
        nargs="+",
        type=str,
        default=None,
        help="run only these table analyses (default: all); the page keeps the other figures of the folder",
    )
    return parser


def default_output(results: str) -> Path:
    """``RESULTS/report`` for a benchmark folder, else ``lightning_logs/report/<name>``."""
    path = Path(results)
    return path / "report" if path.is_dir() else Path("lightning_logs") / "report" / path.stem


def regenerate_command(args: Any, output: Path) -> str:
    """The ``lr0fm report`` command line that remakes this report (non-default options only)."""
    words = ["lr0fm", "report", str(args.results), "--output", str(output)]
    for flag in ("backbones", "weights", "protocol"):
        if args[flag] is not None:
            words += [f"--{flag}", str(args[flag])]
    for flag in ("reference", "num_classes"):
        if args[flag]:
            words += [f"--{flag}", *args[flag]]
    for flag, default in (("alpha", 200.0), ("resolution", 16), ("top_k", 5)):
        if args[flag] != default:
            words += [f"--{flag}", f"{args[flag]:g}" if isinstance(args[flag], float) else str(args[flag])]
    for flag in ("allow_missing", "allow_mixed_protocols"):
        if args[flag]:
            words.append(f"--{flag}")
    return shlex.join(words)


def options_from(args: Any) -> Any:
    """The :class:`~lr0fm.analysis.report.ReportOptions` of a parse."""
    from lr0fm.analysis.report import ReportOptions, benchmark_weights, results_file
    from lr0fm.command import check_output_folder
    from lr0fm.metrics.cli import _class_counts, _key_value
    from lr0fm.metrics.weights import load_weights

    output = Path(args.output) if args.output else default_output(args.results)
    check_output_folder(output, holds="the report's figures, CSVs and index.html")
    weights = args.weights
    if weights is None:  # a benchmark folder: the WAR weights its summary used
        found = benchmark_weights(results_file(args.results)[1])
        weights = str(found) if found else None
    return ReportOptions(
        results=args.results,
        output=output,
        backbones=args.backbones,
        references=dict(_key_value(r, "MODEL=BASE", "--reference") for r in args.reference),
        weights=load_weights(weights) if weights else None,
        weights_source=weights or "published LR0.FM WAR-16 weights",
        alpha=args.alpha,
        num_classes=_class_counts(args.num_classes),
        allow_missing=args.allow_missing,
        protocol=args.protocol,
        allow_mixed_protocols=args.allow_mixed_protocols,
        resolution=args.resolution,
        top_k=args.top_k,
        analyses=args.analyses,
        command=regenerate_command(args, output),
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lr0fm report``."""
    from lr0fm.command import CONFIG_NAME, parse, save_config

    parser = build_parser()
    args = parse(parser, list(sys.argv[1:] if argv is None else argv))
    from lr0fm.analysis.report import write_report
    from lr0fm.metrics.table import ResultsTableError
    from lr0fm.metrics.weights import WeightsError

    try:
        options = options_from(args)
        done = write_report(options, log=lambda line: print(line, file=sys.stderr))
    except (ResultsTableError, WeightsError, ValueError) as exc:
        print(f"lr0fm report: error: {exc}", file=sys.stderr)
        return 2
    # re-run with `lr0fm report --config OUTPUT/config.yaml` (report_config.yaml when the output is the benchmark
    # folder itself, whose config.yaml is the benchmark's)
    inside_results = any((options.output / f).is_file() for f in ("results.jsonl", "results.csv"))
    save_config(parser, args, options.output, name="report_config.yaml" if inside_results else CONFIG_NAME)
    for note in done["notes"]:
        print(note, file=sys.stderr)
    print(f"wrote {len(done['figures'])} figures and {done['index']} ({done['seconds']:.1f} s)")
    return 0
