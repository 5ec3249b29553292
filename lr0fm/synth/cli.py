"""``lr0fm synth``: generate the diffusion-made HR training set of LR-TK0 (resumable, shardable)."""

from __future__ import annotations

import sys

from lr0fm.synth.config import DEFAULT_PIPELINE, IMAGE_FORMATS, SynthConfig, SynthError, writing

#: help of each option (a field of :class:`~lr0fm.synth.config.SynthConfig`)
HELP = {
    "captions": "caption file (one caption per line, or Conceptual Captions caption<TAB>url), or 'paper' / "
    "'paper-2k': the LR0.FM authors' 7,000 / 2,000 captions shipped with lr0fm",
    "output": "output directory",
    "num_captions": "captions to sample without replacement (default: all, in file order)",
    "seed": "global seed of caption sampling and image seeds",
    "images_per_caption": "images per caption",
    "pipeline": f"diffusers pipeline id or local save_pretrained dir ({DEFAULT_PIPELINE})",
    "batch_size": "images per pipeline call, one caption at a time",
    "guidance_scale": "classifier-free guidance scale",
    "num_inference_steps": "denoising steps",
    "dtype": "weights dtype: float16, bfloat16 or float32",
    "device": "torch device (cuda: cuda:$LOCAL_RANK under torchrun)",
    "height": "generated height (default: the pipeline's)",
    "width": "generated width (default: the pipeline's)",
    "resize_shorter": "store images downscaled to this shorter side",
    "image_format": f"image file format: {', '.join(sorted(IMAGE_FORMATS))}",
    "quality": "JPEG/WebP quality",
    "shard": "this worker's share, i/N (default: torchrun/SLURM rank, else 0/1)",
    "webdataset": "also pack finished captions into webdataset tar shards",
    "captions_per_tar": "captions per webdataset tar",
    "call_kwargs": "extra pipeline call arguments (JSON object), e.g. '{\"clean_caption\": false}'",
    "progress": "show a progress bar",
}


def build_parser():
    """Parser of ``lr0fm synth``: one option per :class:`~lr0fm.synth.config.SynthConfig` field."""
    from lr0fm.command import add_dataclass_options, command_parser

    parser = command_parser(
        "lr0fm synth",
        "Generate synthetic HR images (several per caption) with a diffusers text-to-image pipeline. Rerunning the "
        "same command resumes; --shard i/N (or torchrun's RANK/WORLD_SIZE) splits the captions across workers. "
        "Layout: OUTPUT/images/<caption_id:05d>/<image_index:03d>.<ext>, OUTPUT/captions.tsv, "
        "OUTPUT/manifest*.jsonl, OUTPUT/config.yaml.",
        preset_kind="synth",
    )
    add_dataclass_options(
        parser,
        SynthConfig,
        HELP,
        types={"captions": str | None, "output": str | None, "shard": str | None, "call_kwargs": dict},
    )
    return parser


def config_from_args(argv: list[str]) -> SynthConfig:
    """The resolved :class:`SynthConfig` of ``argv`` (defaults, ``--config`` files, flags; last wins).

    Raises:
        SynthError: a bad ``--shard`` or setting, or a missing ``--captions``/``--output``.

    """
    return _config(build_parser(), argv)[1]


def _config(parser, argv: list[str]):
    from lr0fm.command import dataclass_values, parse
    from lr0fm.synth.sharding import parse_shard

    cfg = parse(parser, argv, preset_kind="synth")
    settings = dataclass_values(cfg, SynthConfig)
    if settings.get("shard") is not None:
        settings["shard"] = parse_shard(str(settings["shard"]))
    missing = [name for name in ("captions", "output") if not settings.get(name)]
    if missing:
        raise SynthError(
            f"missing {' and '.join('--' + m for m in missing)}: usage "
            "`lr0fm synth --captions FILE --output DIR` (or set them in a --config YAML)."
        )
    return cfg, SynthConfig(**settings)


def main(argv: list[str] | None = None) -> int:
    """Run ``lr0fm synth``; returns the exit status (2 on bad input)."""
    from lr0fm.command import save_config

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        cfg, config = _config(parser, argv)
        from lr0fm.synth.generation import prepare_output

        output = prepare_output(config)  # a usable output folder first, or a clear error
        with writing(output / "config.yaml"):
            save_config(parser, cfg, output)
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.set_verbosity_error()  # per-call caption-cleaning warnings would flood the log
        if not config.progress:  # --no_progress: no loading bars either (logs of batch jobs stay readable)
            from transformers.utils import logging as transformers_logging

            diffusers_logging.disable_progress_bar()
            transformers_logging.disable_progress_bar()
        from lr0fm.synth.generation import generate

        report = generate(config)
    except SynthError as exc:
        print(f"lr0fm synth: error: {exc}", file=sys.stderr)
        return 2
    index, count = report.shard
    print(
        f"shard {index}/{count}: {report.shard_captions} of {report.num_captions} captions, "
        f"{report.total_images} images: {report.generated} generated, {report.skipped} already present"
        + (f" ({report.images_per_second:.2f} images/s)" if report.generated else "")
        + f". Output: {report.output}"
    )
    if report.webdataset is not None:
        pack = report.webdataset
        print(
            f"webdataset: {len(pack.written)} tar(s) written, {len(pack.existing)} already present, "
            f"{len(pack.incomplete)} waiting for images (rerun with --webdataset once every shard is done)."
        )
    return 0
