"""Settings of one ``lr0fm synth`` run and the error type of the package."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lr0fm.atomic import DISK_FULL_ERRNOS

#: The paper's generator (LR0.FM, section 5.2).
DEFAULT_PIPELINE = "PixArt-alpha/PixArt-XL-2-1024-MS"

#: Image file formats the writer supports, with the PIL format name of each.
IMAGE_FORMATS: dict[str, str] = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
#: Generated sides are multiples of this (every diffusers text-to-image pipeline checks ``side % 8 == 0``).
SIDE_STEP = 8
#: Largest ``--height``/``--width`` accepted (PixArt-alpha makes 1024 px; larger sides only exhaust memory).
MAX_SIDE = 8192


class SynthError(ValueError):
    """Bad input or output of ``lr0fm synth``; the message names the wrong thing and the fix."""


@dataclass
class SynthConfig:
    """Everything that defines a synthetic-image run.

    Attributes:
        captions: caption file: one caption per line, or a Conceptual Captions TSV
            (``caption<TAB>url``; only the text before the first tab is used); or ``paper`` /
            ``paper-2k``, the LR0.FM authors' 7,000 / 2,000 captions shipped with lr0fm.
        output: output directory (created if missing).
        num_captions: how many captions to sample without replacement; ``None`` keeps all, in file order.
        seed: global seed of caption sampling and of every image's seed.
        images_per_caption: images generated per caption.
        pipeline: diffusers pipeline id on the Hugging Face Hub or a local ``save_pretrained`` directory.
        batch_size: images per pipeline call (never mixes captions; see ``docs/synth.md``).
        guidance_scale: classifier-free guidance scale.
        num_inference_steps: denoising steps.
        dtype: ``float16``, ``bfloat16`` or ``float32``.
        device: torch device; ``cuda`` picks ``cuda:$LOCAL_RANK`` under torchrun/SLURM.
        height: generated image height (``None``: the pipeline default).
        width: generated image width (``None``: the pipeline default).
        resize_shorter: if set, images are stored downscaled so the shorter side is this many pixels.
        image_format: ``jpg``, ``png`` or ``webp``.
        quality: JPEG/WebP quality.
        shard: ``(index, count)`` of this worker; ``None`` reads torchrun/SLURM variables, else ``(0, 1)``.
        webdataset: also pack finished captions into webdataset tar shards under ``output/webdataset``.
        captions_per_tar: captions per webdataset tar shard.
        call_kwargs: extra keyword arguments of the pipeline call (e.g. ``use_resolution_binning``).
        progress: show a progress bar.

    """

    captions: str
    output: str
    num_captions: int | None = None
    seed: int = 0
    images_per_caption: int = 30
    pipeline: str = DEFAULT_PIPELINE
    batch_size: int = 10
    guidance_scale: float = 4.5
    num_inference_steps: int = 20
    dtype: str = "float16"
    device: str = "cuda"
    height: int | None = None
    width: int | None = None
    resize_shorter: int | None = None
    image_format: str = "jpg"
    quality: int = 95
    shard: tuple[int, int] | None = None
    webdataset: bool = False
    captions_per_tar: int = 100
    call_kwargs: dict[str, Any] = field(default_factory=dict)
    progress: bool = True

    def __post_init__(self) -> None:
        positive = {
            "images_per_caption": self.images_per_caption,
            "batch_size": self.batch_size,
            "num_inference_steps": self.num_inference_steps,
            "captions_per_tar": self.captions_per_tar,
        }
        for name in ("num_captions", "height", "width", "resize_shorter"):
            if getattr(self, name) is not None:
                positive[name] = getattr(self, name)
        for name, value in positive.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SynthError(f"--{name} {value!r} is not valid: expected a positive integer (1, 2, ...).")
        for name in ("height", "width"):
            side = getattr(self, name)
            if side is not None and (side % SIDE_STEP or side > MAX_SIDE):
                raise SynthError(
                    f"--{name} {side} is not valid: expected a multiple of {SIDE_STEP} from {SIDE_STEP} to {MAX_SIDE} "
                    f"(diffusers pipelines generate sides in steps of {SIDE_STEP}; PixArt-alpha's default is 1024), "
                    "or leave it unset for the pipeline's default."
                )
        if self.image_format not in IMAGE_FORMATS:
            raise SynthError(
                f"--image_format {self.image_format!r} is not valid: expected one of "
                f"{', '.join(sorted(IMAGE_FORMATS))}."
            )
        if self.dtype not in ("float16", "bfloat16", "float32"):
            raise SynthError(f"--dtype {self.dtype!r} is not valid: expected one of float16, bfloat16, float32.")
        if isinstance(self.quality, bool) or not isinstance(self.quality, int) or not 1 <= self.quality <= 100:
            raise SynthError(f"--quality {self.quality!r} is not valid: expected an integer from 1 to 100 (JPEG/WebP).")
        if not isinstance(self.guidance_scale, (int, float)) or not math.isfinite(self.guidance_scale):
            raise SynthError(
                f"--guidance_scale {self.guidance_scale!r} is not valid: expected a finite number (the paper: 4.5; "
                "1 or less turns classifier-free guidance off)."
            )
        if not isinstance(self.call_kwargs, dict):
            raise SynthError(f"--call_kwargs {self.call_kwargs!r} is not valid: expected a JSON object, e.g. '{{}}'.")

    def pixel_settings(self) -> dict[str, Any]:
        """Return the settings that change the stored pixels; a rerun into the same output must match them.

        ``batch_size`` and ``device`` are left out: they only change floating-point rounding.
        """
        keys = (
            "pipeline", "seed", "guidance_scale", "num_inference_steps", "dtype", "height", "width",
            "resize_shorter", "image_format", "quality", "call_kwargs",
        )  # fmt: skip
        return {key: value for key, value in asdict(self).items() if key in keys}


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Turn an ``OSError`` raised while writing ``path`` into a :class:`SynthError` naming the file and the fix."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc)
        hint = (
            "the disk, a quota or a file size limit is full: free space, then rerun the same command"
            if exc.errno in DISK_FULL_ERRNOS
            else "check that the output folder is writable, then rerun the same command"
        )
        raise SynthError(
            f"could not write {str(path)!r} ({reason}); {hint} (finished images are kept and the run resumes)."
        ) from exc
