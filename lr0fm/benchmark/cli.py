"""``lr0fm benchmark``: zero-shot top-1 of backbones on datasets at 16-128 px and HR, in one pass per dataset."""

from __future__ import annotations

import os
import sys
from pathlib import Path

EPILOG = """examples:
  lr0fm benchmark --model toyclip --dataset toy-color toy-texture toy-size --resolutions 8 16 32 hr
  lr0fm benchmark --model ViT-B-16:laion2b_s34b_b88k --dataset imagenet=/data/imagenet dtd=/data \\
      --devices 4 --strategy ddp
  lr0fm benchmark --config lr0fm66                      # a packaged preset (or any YAML file)
  lr0fm benchmark --config lr0fm66 --print_config       # the resolved config, as YAML
  lr0fm benchmark --list_models 'EVA02*'
  lr0fm benchmark --list_models siglip2                 # a group: siglip2 metaclip2 pe-core mobileclip2 dfn
  lr0fm benchmark --list_models lr0fm-plus              # the names of a backbone table (or lr0fm66)
  lr0fm benchmark --list_protocols
  lr0fm benchmark --config sr_baselines --data_root /data/lr0fm   # paper Table 3: BSRGAN in front of EVA-02-B/16
  lr0fm benchmark --config toy --sr bicubic:4                     # any backbone, classical x4 upscaling first
  lr0fm benchmark --list_sr
"""

#: help of each option of :class:`~lr0fm.benchmark.config.BenchmarkConfig`
HELP = {
    "models": "backbone specs or paper names (see --list_models)",
    "datasets": "NAME or NAME=ROOT: canonical names, toy-*, folder:/path, wds:/path (see --list_datasets)",
    "resolutions": "low sides in px and/or hr",
    "protocol": "LR protocol: paper (per backbone, the chain the LR0.FM authors ran), shorter-side, square "
    "(see --list_protocols)",
    "output": "output folder (results, predictions, summary, plot, TensorBoard, config.yaml)",
    "data_root": "root folder for datasets given without =ROOT",
    "batch_size": "images per batch (each scored at every resolution)",
    "workers": "DataLoader workers",
    "precision": "auto, 32, bf16-mixed or 16-mixed",
    "accelerator": "auto, cpu, gpu",
    "devices": "number of devices",
    "strategy": "auto or ddp",
    "skip_existing": "skip cells already in the results table (false: re-measure everything)",
    "skip_corrupt": "skip undecodable images (counted in num_skipped) instead of stopping",
    "cache_dir": "text-classifier cache (default: OUTPUT/classifier_cache)",
    "seed": "seed of ARCH:none random weights",
    "lr_tokens": "apply LR-TK0 tokens (.safetensors from lr0fm fit) to the model(s)",
    "download": "let torchvision download the datasets it can",
    "predictions": "write per-sample top-5 predictions (classes, names, scores)",
    "shard": "i/N: measure the i-th of N disjoint parts of the (model, dataset) cells, for N jobs writing one "
    "output folder; slurm-array: i/N from the SLURM job array",
    "log_every": "seconds between progress lines when stdout is not a terminal (a log file)",
    "export_clip_benchmark": "also write the rows as CLIP_benchmark per-run JSON under this folder (for "
    "`clip_benchmark build`)",
    "views_on_device": "decode on the CPU, make the LR views with torch on the accelerator (not pixel-identical "
    "to the exact PIL path; its agreement is measured by benchmarks/benchmark_speed.py)",
    "sr": "super-resolution front-end: a weights file spandrel recognises, a name of the SR table (see --list_sr), "
    "diffusers:ID_OR_DIR, or bicubic|bilinear|lanczos[:K]; rows get protocol sr:<name> (the authors' SR chain)",
    "sr_passes": "SR passes per LR view (default: repeat until the side reaches the model's input side; 1: one "
    "pass, as the authors' script)",
    "sr_kwargs": "keyword arguments of every diffusers SR pipeline call (JSON object), e.g. "
    "'{\"num_inference_steps\": 20}'",
    "sr_batch_size": "images per SR forward (default: the whole batch)",
}


def build_parser():
    """Parser of ``lr0fm benchmark``: :class:`~lr0fm.benchmark.config.BenchmarkConfig`'s fields and the listings."""
    from lr0fm.benchmark.config import BenchmarkConfig
    from lr0fm.command import add_dataclass_options, command_parser

    parser = command_parser(
        "lr0fm benchmark",
        "LR0.FM zero-shot benchmark: each image is decoded once and scored at every resolution; results append "
        "to OUTPUT/results.csv as each (model, dataset) finishes, and reruns skip what is done.",
        preset_kind="benchmark",
        epilog=EPILOG,
    )
    add_dataclass_options(
        parser,
        BenchmarkConfig,
        HELP,
        lists={"models": str, "datasets": str, "resolutions": int | str},
        types={"devices": int | str, "sr_kwargs": dict},
        aliases={"models": "--model", "datasets": "--dataset"},
    )
    weights_help = "WAR weights YAML for the summary (default: the published LR0.FM WAR-16 weights)"
    parser.add_argument("--weights", type=str | None, default=None, help=weights_help)
    parser.add_argument(
        "--list_models",
        nargs="?",
        const="*",
        type=str | None,
        help="list backbone specs matching a wildcard or a group (siglip2, metaclip2, pe-core, mobileclip2, dfn, "
        "lr0fm66, lr0fm-plus) and exit",
    )
    parser.add_argument("--list_datasets", nargs="?", const="*", type=str | None, help="list datasets and exit")
    parser.add_argument("--list_protocols", action="store_true", help="list the LR protocols and chains and exit")
    parser.add_argument("--list_sr", action="store_true", help="list the SR table's models (--sr NAME) and exit")
    return parser


#: the folder options, and what each holds (for the message when one is a file)
OUTPUT_FOLDERS = {
    "output": "results, predictions and TensorBoard scalars",
    "cache_dir": "the zero-shot classifier cache",
    "export_clip_benchmark": "CLIP_benchmark JSON records",
}


def _config_relative(path: str, configs: list[Path]) -> str:
    """A relative input path of a ``--config`` file: from the config's folder if it exists there, else as given."""
    for config in reversed(configs):
        candidate = config.parent / path
        if not Path(path).is_absolute() and candidate.is_file():
            return str(candidate)
    return path


def make_config(cfg):
    """The :class:`~lr0fm.benchmark.config.BenchmarkConfig` and WAR weights file of a parse.

    Raises:
        ValueError: no model or no dataset.
        FileNotFoundError: the WAR weights file does not exist.

    """
    from lr0fm.benchmark.config import BenchmarkConfig
    from lr0fm.command import config_files, dataclass_values

    values = dataclass_values(cfg, BenchmarkConfig)
    weights = cfg.weights
    if weights is not None:
        weights = _config_relative(weights, config_files(cfg))
        if not Path(weights).is_file():
            raise FileNotFoundError(
                f"WAR weights file not found: {weights} (expected a YAML written by `lr0fm metrics`)"
            )
    if not values["models"] or not values["datasets"]:
        raise ValueError("give at least one --models and one --datasets (or a --config that lists them)")
    from lr0fm.protocols.resolutions import parse_resolutions

    parse_resolutions(values["resolutions"])  # bad values stop here, before the output folder is made
    _check_sr(values)
    from lr0fm.command import check_output_folder

    for option, holds in OUTPUT_FOLDERS.items():
        if values.get(option):
            check_output_folder(values[option], f"--{option}", holds)
    return BenchmarkConfig(**values), weights


def _check_sr(values: dict) -> None:
    """Refuse SR options that cannot work, before the output folder is made.

    Raises:
        ValueError: an unreadable ``--sr`` spec, SR options without ``--sr``, ``--sr_passes`` or
            ``--sr_batch_size`` below 1, or ``--sr_kwargs`` that is not a JSON object.

    """
    sr = values.get("sr")
    if not sr:
        given = [f"--{k}" for k in ("sr_passes", "sr_kwargs", "sr_batch_size") if values.get(k)]
        if given:
            raise ValueError(f"{', '.join(given)} only apply with --sr SPEC (a super-resolution front-end)")
        return
    from lr0fm.sr.upscalers import parse_sr_spec

    parse_sr_spec(sr)
    for option in ("sr_passes", "sr_batch_size"):
        if values.get(option) is not None and values[option] < 1:
            raise ValueError(f"--{option} {values[option]} must be at least 1")
    if not isinstance(values.get("sr_kwargs") or {}, dict):
        raise ValueError(f"--sr_kwargs {values['sr_kwargs']!r} is not valid: expected a JSON object, e.g. '{{}}'")


def sr_listing() -> list[str]:
    """Lines of ``--list_sr``: each model of the SR table with its original file and URL (or why it cannot run)."""
    from lr0fm.sr.upscalers import SR_TABLE, sr_table

    lines = [f"SR models (--sr NAME; {SR_TABLE}):"]
    for name, entry in sr_table().items():
        if "no_loader" in entry:
            lines.append(f"  {name:<12} no loader: {entry['no_loader']} ({entry['url']})")
        else:
            lines.append(f"  {name:<12} {entry['file']}  x{entry['scale']}  {entry['url']}")
    lines.append("also: any weights file spandrel recognises, diffusers:ID_OR_DIR, bicubic|bilinear|lanczos[:K]")
    return lines


def model_listing(pattern: str) -> list[str]:
    """Lines of ``--list_models``: loadable specs, and each paper name with its spec and its LR chain."""
    from lr0fm.models import list_models
    from lr0fm.models.registry import backbone_table

    paper = backbone_table()
    by_spec = {str(e["spec"]): name for name, e in paper.items() if e.get("spec")}
    lines = []
    for name in list_models(pattern):
        entry = paper.get(name)
        if entry is None:
            paper_name = by_spec.get(name)
            chain = f"  [paper: {paper_name}, protocol {paper[paper_name].get('protocol')}]" if paper_name else ""
            lines.append(name + chain)
            continue
        spec = entry.get("spec") or f"(no loader yet: {entry.get('note', 'needs an adapter')})"
        lines.append(f"{name}  ->  {spec}  [paper protocol: {entry.get('protocol', '?')}]")
    return lines


def protocol_listing() -> list[str]:
    """Lines of ``--list_protocols``: the protocols, then the authors' chains with their source files."""
    from lr0fm.protocols import PAPER_CHAINS, PAPER_TEXT_CHAIN, get_protocol, list_protocols

    lines = ["protocols:"]
    lines += [f"  {name:<13} {get_protocol(name).summary}" for name in list_protocols()]
    lines += ["", "chains of the paper protocol (the authors' evaluation scripts):"]
    for chain in [*PAPER_CHAINS.values(), PAPER_TEXT_CHAIN]:
        lines += [f"  {chain.name}: {chain.describe()}", f"      source: {chain.source}"]
    return lines


def share_cores_with_workers(workers: int) -> None:
    """Let torch's OpenMP threads sleep rather than spin while they wait (``OMP_WAIT_POLICY=PASSIVE``).

    With DataLoader workers making views on the same cores as the model's forward, spinning OpenMP threads
    take CPU time from the workers; on the CPU case of ``benchmarks/benchmark_sweep.py --vs-naive`` the
    whole process is about 10-15 % faster without them. Set before torch is imported (OpenMP reads it once);
    a value the user set is kept.
    """
    if workers > 0 and "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _print_listing(lines: list[str], kind: str, pattern: str, option: str) -> int:
    """Print a listing; a pattern that matches nothing is an error (status 1) saying how to list everything."""
    if not lines:
        print(
            f"lr0fm benchmark: no {kind} matches {pattern!r} (patterns are case-insensitive shell wildcards; "
            f"`lr0fm benchmark {option}` lists them all)",
            file=sys.stderr,
        )
        return 1
    print("\n".join(lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lr0fm benchmark``."""
    from lr0fm.command import parse, save_config

    parser = build_parser()
    cfg = parse(parser, list(sys.argv[1:] if argv is None else argv), preset_kind="benchmark")
    if cfg.list_models is not None:
        return _print_listing(model_listing(cfg.list_models), "backbone", cfg.list_models, "--list_models")
    if cfg.list_protocols:
        print("\n".join(protocol_listing()))
        return 0
    if cfg.list_sr:
        print("\n".join(sr_listing()))
        return 0
    if cfg.list_datasets is not None:
        from lr0fm.datasets import list_datasets

        return _print_listing(list_datasets(cfg.list_datasets), "dataset", cfg.list_datasets, "--list_datasets")
    share_cores_with_workers(cfg.workers or 0)
    from lr0fm.benchmark.runner import finalize, run_benchmark
    from lr0fm.datasets.base import DatasetError
    from lr0fm.models.errors import WeightsUnavailableError

    try:
        config, weights = make_config(cfg)
        save_config(parser, cfg, config.output)
        run_benchmark(config)
    except (DatasetError, WeightsUnavailableError, ValueError, FileNotFoundError) as exc:
        print(f"lr0fm benchmark: error: {exc}", file=sys.stderr)
        return 2
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    if getattr(rank_zero_only, "rank", 0) == 0:
        markdown = finalize(config, weights=weights)
        if markdown:
            print(markdown)
    return 0
