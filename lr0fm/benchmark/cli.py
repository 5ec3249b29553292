"""``lr0fm benchmark``: zero-shot top-1 of backbones on datasets at 16-128 px and HR, in one pass per dataset."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

EPILOG = """examples:
  lr0fm benchmark --model toyclip --dataset toy-color toy-texture toy-size --resolutions 8 16 32 hr
  lr0fm benchmark --model ViT-B-16:laion2b_s34b_b88k --dataset imagenet=/data/imagenet dtd=/data \\
      --devices 4 --strategy ddp
  lr0fm benchmark --config lr0fm66                      # a packaged preset (or any YAML file)
  lr0fm benchmark --list-models 'EVA02*'
  lr0fm benchmark --list-protocols
"""


def build_parser() -> argparse.ArgumentParser:
    """Parser of ``lr0fm benchmark`` (every option can also come from ``--config FILE.yaml``)."""
    p = argparse.ArgumentParser(
        prog="lr0fm benchmark",
        description="LR0.FM zero-shot benchmark: each image is decoded once and scored at every resolution; "
        "results append to OUTPUT/results.csv as each (model, dataset) finishes, and reruns skip what is done.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        help="YAML file with any of the options below (command-line flags win), or a packaged preset: toy, "
        "lr0fm66, example",
    )
    p.add_argument("--list-models", nargs="?", const="*", metavar="PATTERN", help="list backbone specs and exit")
    p.add_argument("--list-datasets", nargs="?", const="*", metavar="PATTERN", help="list dataset names and exit")
    p.add_argument("--model", "--models", dest="models", nargs="+", action="extend", metavar="SPEC")
    p.add_argument("--dataset", "--datasets", dest="datasets", nargs="+", action="extend", metavar="NAME[=ROOT]")
    p.add_argument("--resolutions", nargs="+", metavar="N|hr", help="default: 16 32 64 128 hr")
    p.add_argument(
        "--protocol",
        help="LR protocol (default paper: per backbone, the chain the LR0.FM authors ran; shorter-side; square); "
        "see --list-protocols",
    )
    p.add_argument("--list-protocols", action="store_true", help="list the LR protocols and chains and exit")
    p.add_argument("--data-root", help="root folder for datasets given without =ROOT")
    p.add_argument("--output", help="output folder (default: lightning_logs/benchmark)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--workers", type=int, help="DataLoader workers (default: min(8, CPUs))")
    p.add_argument("--precision", help="auto (default), 32, bf16-mixed or 16-mixed")
    p.add_argument("--accelerator", help="auto (default), cpu, gpu")
    p.add_argument("--devices", help="number of devices (default 1)")
    p.add_argument("--strategy", help="auto (default) or ddp")
    p.add_argument("--seed", type=int, help="seed of ARCH:none random weights")
    p.add_argument("--lr-tokens", help="apply LR-TK0 tokens (.safetensors from lr0fm fit) to the model(s)")
    p.add_argument("--cache-dir", help="text-classifier cache (default: OUTPUT/classifier_cache)")
    p.add_argument("--weights", help="WAR weights YAML for the summary (default: published LR0.FM WAR-16)")
    p.add_argument("--skip-existing", dest="skip_existing", action="store_true", default=None)
    p.add_argument("--no-skip-existing", dest="skip_existing", action="store_false", help="re-measure everything")
    p.add_argument("--skip-corrupt", action="store_true", default=None, help="skip undecodable images (counted)")
    p.add_argument("--download", action="store_true", default=None, help="let torchvision download datasets")
    p.add_argument("--no-predictions", dest="predictions", action="store_false", default=None)
    return p


def _load_yaml(path: str) -> dict:
    import yaml

    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: expected a mapping of options")
    return {k.replace("-", "_"): v for k, v in data.items()}


def _config_relative(path: str, config: str) -> str:
    """A relative input path of a ``--config`` file: from the config's folder if it exists there, else as given."""
    candidate = Path(config).parent / path
    return str(candidate) if not Path(path).is_absolute() and candidate.is_file() else path


def make_config(args: argparse.Namespace):
    """Merge ``--config`` YAML and flags into a :class:`BenchmarkConfig`."""
    from lr0fm.benchmark.runner import BenchmarkConfig
    from lr0fm.catalog import did_you_mean
    from lr0fm.presets import resolve_config

    names = [f.name for f in fields(BenchmarkConfig)] + ["weights"]
    if args.config:
        args.config = resolve_config(args.config, "benchmark")
    values = _load_yaml(args.config) if args.config else {}
    unknown = [k for k in values if k not in names]
    if unknown:
        raise ValueError(f"--config {args.config}: unknown option {unknown[0]!r}.{did_you_mean(unknown[0], names)}")
    for key in names:
        flag = getattr(args, key, None)
        if flag is not None:
            values[key] = flag
    weights = values.pop("weights", None)
    if weights is not None and args.weights is None and args.config:
        weights = _config_relative(weights, args.config)
    if weights is not None and not Path(weights).is_file():
        raise FileNotFoundError(f"WAR weights file not found: {weights} (expected a YAML written by `lr0fm metrics`)")
    if not values.get("models") or not values.get("datasets"):
        raise ValueError("give at least one --model and one --dataset (or a --config that lists them)")
    if "devices" in values and str(values["devices"]).isdigit():
        values["devices"] = int(values["devices"])
    for key in ("models", "datasets", "resolutions"):
        if key in values and isinstance(values[key], str):
            values[key] = values[key].split()
    return BenchmarkConfig(**values), weights


def model_listing(pattern: str) -> list[str]:
    """Lines of ``--list-models``: loadable specs, and each paper name with its spec and its LR chain."""
    from lr0fm.models import list_models
    from lr0fm.models.paper_backbones import read_paper_backbones

    paper = read_paper_backbones()
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
    """Lines of ``--list-protocols``: the protocols, then the authors' chains with their source files."""
    from lr0fm.protocols import PAPER_CHAINS, PAPER_TEXT_CHAIN, get_protocol, list_protocols

    lines = ["protocols:"]
    lines += [f"  {name:<13} {get_protocol(name).summary}" for name in list_protocols()]
    lines += ["", "chains of the paper protocol (the authors' evaluation scripts):"]
    for chain in [*PAPER_CHAINS.values(), PAPER_TEXT_CHAIN]:
        lines += [f"  {chain.name}: {chain.describe()}", f"      source: {chain.source}"]
    return lines


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lr0fm benchmark``."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.list_models is not None:
        print("\n".join(model_listing(args.list_models)))
        return 0
    if args.list_protocols:
        print("\n".join(protocol_listing()))
        return 0
    if args.list_datasets is not None:
        from lr0fm.datasets import list_datasets

        print("\n".join(list_datasets(args.list_datasets)))
        return 0
    from lr0fm.benchmark.runner import finalize, run_benchmark
    from lr0fm.datasets.base import DatasetError
    from lr0fm.models.errors import WeightsUnavailableError

    try:
        config, weights = make_config(args)
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
