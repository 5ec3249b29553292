"""Settings of one ``lr0fm synth`` run and the error type of the package."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: The paper's generator (LR0.FM, section 5.2).
DEFAULT_PIPELINE = "PixArt-alpha/PixArt-XL-2-1024-MS"

#: Image file formats the writer supports, with the PIL format name of each.
IMAGE_FORMATS: dict[str, str] = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}


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
            if int(value) < 1:
                raise SynthError(f"{name} must be a positive integer, got {value!r}.")
        if self.image_format not in IMAGE_FORMATS:
            raise SynthError(f"image_format {self.image_format!r} is not one of {sorted(IMAGE_FORMATS)}.")
        if self.dtype not in ("float16", "bfloat16", "float32"):
            raise SynthError(f"dtype {self.dtype!r} is not one of float16, bfloat16, float32.")

    def pixel_settings(self) -> dict[str, Any]:
        """Return the settings that change the stored pixels; a rerun into the same output must match them.

        ``batch_size`` and ``device`` are left out: they only change floating-point rounding.
        """
        keys = (
            "pipeline", "seed", "guidance_scale", "num_inference_steps", "dtype", "height", "width",
            "resize_shorter", "image_format", "quality", "call_kwargs",
        )  # fmt: skip
        return {key: value for key, value in asdict(self).items() if key in keys}
