"""``lr0fm synth``: generate the diffusion-made HR training set of LR-TK0 (resumable, shardable)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from lr0fm.synth.config import DEFAULT_PIPELINE, IMAGE_FORMATS, SynthConfig, SynthError

#: Command-line option -> SynthConfig field, where the names differ.
_RENAMED = {"steps": "num_inference_steps", "format": "image_format"}


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of ``lr0fm synth`` (unset flags are absent: YAML/defaults fill in)."""
    p = argparse.ArgumentParser(
        prog="lr0fm synth",
        description=(
            "Generate synthetic HR images (several per caption) with a diffusers text-to-image pipeline. "
            "Rerunning the same command resumes; --shard i/N (or torchrun's RANK/WORLD_SIZE) splits the "
            "captions across workers. Layout: OUTPUT/images/<caption_id:05d>/<image_index:03d>.<ext>, "
            "OUTPUT/captions.tsv, OUTPUT/manifest*.jsonl."
        ),
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument("--config", help="YAML file of settings (keys as the options, '_' or '-'); flags override it")
    p.add_argument(
        "--captions",
        help="caption file (one caption per line, or Conceptual Captions caption<TAB>url), or 'paper' / "
        "'paper-2k': the LR0.FM authors' 7,000 / 2,000 captions shipped with lr0fm",
    )
    p.add_argument("--output", help="output directory")
    p.add_argument("--num-captions", type=int, help="captions to sample without replacement (default: all)")
    p.add_argument("--seed", type=int, help="global seed of caption sampling and image seeds (default 0)")
    p.add_argument("--images-per-caption", type=int, help="images per caption (default 30)")
    p.add_argument("--pipeline", help=f"diffusers pipeline id or local save_pretrained dir ({DEFAULT_PIPELINE})")
    p.add_argument("--batch-size", type=int, help="images per pipeline call, one caption at a time (default 10)")
    p.add_argument("--guidance-scale", type=float, help="classifier-free guidance scale (default 4.5)")
    p.add_argument("--steps", type=int, help="denoising steps (default 20)")
    p.add_argument("--dtype", choices=("float16", "bfloat16", "float32"), help="weights dtype (default float16)")
    p.add_argument("--device", help="torch device (default cuda; cuda:$LOCAL_RANK under torchrun)")
    p.add_argument("--height", type=int, help="generated height (default: the pipeline's)")
    p.add_argument("--width", type=int, help="generated width (default: the pipeline's)")
    p.add_argument("--resize-shorter", type=int, help="store images downscaled to this shorter side")
    p.add_argument("--format", choices=sorted(IMAGE_FORMATS), help="image file format (default jpg)")
    p.add_argument("--quality", type=int, help="JPEG/WebP quality (default 95)")
    p.add_argument("--shard", help="this worker's share, i/N (default: torchrun/SLURM rank, else 0/1)")
    p.add_argument("--webdataset", action="store_true", help="also pack finished captions into tar shards")
    p.add_argument("--captions-per-tar", type=int, help="captions per webdataset tar (default 100)")
    p.add_argument("--call-kwargs", help="JSON of extra pipeline call arguments, e.g. '{\"clean_caption\": false}'")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _load_yaml(path: str) -> dict[str, Any]:
    import yaml

    from lr0fm.catalog import did_you_mean

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise SynthError(f"cannot read --config {path!r}: {exc.strerror or exc}") from exc
    if not isinstance(data, dict):
        raise SynthError(f"--config {path!r} must hold a mapping of settings, got {type(data).__name__}.")
    names = {f.name for f in fields(SynthConfig)}
    settings = {}
    for key, value in data.items():
        name = _RENAMED.get(str(key).replace("-", "_"), str(key).replace("-", "_"))
        if name not in names:
            raise SynthError(f"--config {path!r}: unknown setting {key!r}.{did_you_mean(name, sorted(names))}")
        settings[name] = value
    return settings


def _preset(value: str) -> str:
    from lr0fm.presets import resolve_config

    try:
        return resolve_config(value, "synth")
    except FileNotFoundError as exc:
        raise SynthError(f"--config: {exc}") from exc


def config_from_args(argv: list[str]) -> SynthConfig:
    """Merge dataclass defaults, the YAML ``--config`` and the flags (last wins) into a config.

    Raises:
        SynthError: on an unreadable/unknown YAML setting, a bad ``--shard`` or ``--call-kwargs``,
            or a missing ``--captions``/``--output``.

    """
    from lr0fm.synth.sharding import parse_shard

    args = vars(build_parser().parse_args(argv))
    settings = _load_yaml(_preset(args.pop("config"))) if "config" in args else {}
    if args.pop("no_progress", False):
        settings["progress"] = False
    for key, value in args.items():
        settings[_RENAMED.get(key, key)] = value
    if isinstance(settings.get("call_kwargs"), str):
        try:
            settings["call_kwargs"] = json.loads(settings["call_kwargs"])
        except json.JSONDecodeError as exc:
            raise SynthError(f"--call-kwargs is not valid JSON ({exc}); e.g. '{{\"clean_caption\": false}}'.") from exc
        if not isinstance(settings["call_kwargs"], dict):
            raise SynthError("--call-kwargs must be a JSON object, e.g. '{\"clean_caption\": false}'.")
    if settings.get("shard") is not None:
        settings["shard"] = parse_shard(str(settings["shard"]))
    missing = [name for name in ("captions", "output") if not settings.get(name)]
    if missing:
        raise SynthError(
            f"missing {' and '.join('--' + m for m in missing)}: usage "
            "`lr0fm synth --captions FILE --output DIR` (or set them in --config YAML)."
        )
    return SynthConfig(**settings)


def main(argv: list[str] | None = None) -> int:
    """Run ``lr0fm synth``; returns the exit status (2 on bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        config = config_from_args(argv)
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.set_verbosity_error()  # per-call caption-cleaning warnings would flood the log
        from lr0fm.synth.generate import generate

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
