"""``lr0fm analyze``: the paper's model analyses of one backbone on one dataset, as report figures.

Each subcommand loads the backbone (with ``--lr_tokens`` also without them, so both are drawn), picks
``--images`` images of the dataset spread over its classes, makes their LR views with the benchmark's
protocol, and writes PNG/SVG/CSV figures plus their records in ``OUTPUT/figures.json`` -- the manifest
``lr0fm report`` builds ``index.html`` from, so analyses written into a report folder appear in its page.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

#: subcommand -> (module whose import registers it in ``lr0fm.analysis.ANALYSES``, help, default --images)
MODEL_ANALYSES: dict[str, tuple[str, str, int]] = {
    "layer-similarity": (
        "lr0fm.analysis.layer_similarity",
        "per block, cosine and CKA of LR features with HR features (paper Fig. 7 right)",
        256,
    ),
    "tsne": ("lr0fm.analysis.feature_tsne", "t-SNE of image embeddings at HR and low resolutions (paper Fig. 8)", 500),
    "gradcam": ("lr0fm.analysis.grad_cam", "Grad-CAM on the last block at each resolution (paper Fig. 16)", 4),
    "mispredictions": (
        "lr0fm.analysis.mispredictions",
        "images right at HR, wrong at low resolution, and how semantically close the mistakes are (paper Fig. 2)",
        12,
    ),
    "sr-samples": (
        "lr0fm.analysis.sr_samples",
        "LR images through SR front-ends (--sr) next to the plain chain, with the model's top-1 (paper Fig. 9)",
        4,
    ),
}
DEFAULT_OUTPUT = "lightning_logs/analysis"

EPILOG = """examples:
  lr0fm analyze layer-similarity --model toyclip --dataset toy-color --resolutions 8 16 32 --images 64
  lr0fm analyze gradcam --model toyclip --lr_tokens tokens.safetensors --dataset toy-shape --resolutions 8 16
  lr0fm analyze tsne --model EVA02-B-16:merged2b_s8b_b131k --dataset food101=/data --device cuda
  lr0fm benchmark --model toyclip --dataset toy-shape --resolutions 8 16 hr --output runs/toy
  lr0fm analyze mispredictions --model toyclip --dataset toy-shape --resolutions 8 16 --predictions runs/toy
  lr0fm analyze sr-samples --model toyclip --dataset toy-texture --resolutions 8 16 \\
      --sr bicubic lr0fm/resources/toyclip/toy_sr_compact_x4.safetensors
"""


def _subparser(name: str):
    from lr0fm.command import command_parser

    module, help_text, images = MODEL_ANALYSES[name]
    parser = command_parser(f"lr0fm analyze {name}", help_text[0].upper() + help_text[1:] + ".", epilog=EPILOG)
    parser.add_argument("--model", type=str, required=True, help="backbone spec or paper name (as lr0fm benchmark)")
    parser.add_argument("--dataset", type=str, required=True, help="NAME or NAME=ROOT (as lr0fm benchmark)")
    parser.add_argument("--data_root", type=str | None, default=None, help="root folder for a dataset without =ROOT")
    parser.add_argument("--lr_tokens", type=str | None, default=None,
                        help="LR-TK0 tokens file (export-tokens): draw the model with and without them")  # fmt: skip
    parser.add_argument("--resolutions", nargs="+", type=int | str, default=[16, 32],
                        help="low resolutions in px (HR is always added as the reference)")  # fmt: skip
    parser.add_argument("--images", type=int, default=images, help="images to look at, spread over the classes")
    parser.add_argument("--protocol", type=str, default="paper", help="LR protocol of the views (as lr0fm benchmark)")
    parser.add_argument("--output", type=str, default=DEFAULT_OUTPUT,
                        help="folder of the figures and their figures.json (a report folder)")  # fmt: skip
    parser.add_argument("--device", type=str, default="auto", help="auto (CUDA when there is one), cpu, cuda, cuda:N")
    parser.add_argument("--batch_size", type=int, default=32, help="images per forward pass (each at every resolution)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers decoding the images")
    parser.add_argument("--seed", type=int | None, default=None, help="seed of ARCH:none random weights")
    if name == "tsne":
        parser.add_argument("--perplexity", type=float, default=30.0, help="t-SNE perplexity (capped below images/3)")
        parser.add_argument("--tsne_seed", type=int, default=0, help="t-SNE random state")
    if name == "sr-samples":
        parser.add_argument("--sr", nargs="+", type=str, required=True,
                            help="SR front-ends, as lr0fm benchmark --sr (see lr0fm benchmark --list_sr)")  # fmt: skip
        parser.add_argument("--sr_passes", type=int | None, default=None,
                            help="SR passes per LR view (default: until the side reaches the input size)")  # fmt: skip
        parser.add_argument("--sr_kwargs", type=dict | None, default=None,
                            help="JSON call arguments of diffusers: pipelines (as lr0fm benchmark)")  # fmt: skip
    if name == "mispredictions":
        parser.add_argument("--predictions", type=str, required=True,
                            help="a `lr0fm benchmark` output folder, or one of its predictions/*.jsonl")  # fmt: skip
    return parser


def build_parser():
    """Parser of ``lr0fm analyze`` and its subcommands (one per model analysis)."""
    from lr0fm.command import add_subcommands, command_parser

    parser = command_parser(
        "lr0fm analyze",
        "The paper's model analyses (need a backbone and images) as report figures: PNG, SVG, CSV and figures.json.",
    )
    add_subcommands(parser, {name: (_subparser(name), text) for name, (_, text, _) in MODEL_ANALYSES.items()})
    return parser


#: options that change what a figure shows (runtime options -- device, batch size, workers -- do not)
_RECORDED = ("model", "lr_tokens", "dataset", "data_root", "resolutions", "images", "protocol", "seed",
             "perplexity", "tsne_seed", "predictions", "sr", "sr_passes", "output")  # fmt: skip


def command_line(name: str, args: Any) -> str:
    """The ``lr0fm analyze`` command that regenerates a run's figures (recorded in ``figures.json``)."""
    words = ["lr0fm", "analyze", name]
    for key in _RECORDED:
        value = args.get(key) if hasattr(args, "get") else getattr(args, key, None)
        if value is None:
            continue
        words += [f"--{key}", *(str(v) for v in value)] if isinstance(value, list) else [f"--{key}", str(value)]
    return shlex.join(words)


def run(name: str, args: Any) -> list:
    """Load what the analysis needs, run it and return its figure records."""
    import importlib

    from lr0fm.analysis import ANALYSES
    from lr0fm.analysis.model_inputs import ModelAnalysisInputs, analysis_resolutions, load_dataset, load_model

    importlib.import_module(MODEL_ANALYSES[name][0])  # registers the analysis
    analysis = ANALYSES.get(name)
    resolutions = analysis_resolutions(args.resolutions)
    if args.images < 1:
        raise ValueError(f"--images must be >= 1, got {args.images}")
    from lr0fm.command import check_output_folder

    check_output_folder(args.output, holds="the figures, their CSVs and figures.json")
    dataset = load_dataset(args.dataset, args.data_root)  # a bad dataset fails before the model loads
    model = load_model(args.model, lr_tokens=args.lr_tokens, device=args.device, seed=args.seed,
                       protocol=args.protocol)  # fmt: skip
    options = {
        key: args.get(key)
        for key in ("perplexity", "tsne_seed", "predictions", "sr", "sr_passes", "sr_kwargs")
        if key in args
    }
    inputs = ModelAnalysisInputs(
        model, dataset, resolutions, args.images, Path(args.output), command_line(name, args),
        batch_size=args.batch_size, workers=args.workers, options=options,
    )  # fmt: skip
    return analysis(inputs)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lr0fm analyze``."""
    from lr0fm.command import parse, save_config

    parser = build_parser()
    cfg = parse(parser, list(sys.argv[1:] if argv is None else argv))
    name, args = cfg.command, cfg[cfg.command]
    from lr0fm.analysis.mispredictions import PredictionsError
    from lr0fm.datasets.base import DatasetError
    from lr0fm.lrtk0.towers import TowerError
    from lr0fm.models.errors import WeightsUnavailableError

    try:
        records = run(name, args)
    except (DatasetError, WeightsUnavailableError, PredictionsError, TowerError, ValueError, FileNotFoundError) as exc:
        print(f"lr0fm analyze {name}: error: {exc}", file=sys.stderr)
        return 2
    output = Path(args.output)
    save_config(_subparser(name), args, output, name=f"{records[0].name}.yaml")
    for record in records:
        print(f"wrote {output / record.name}.{{png,svg,csv}}: {record.title}")
    print(f"figures listed in {output / 'figures.json'}")
    return 0
