"""Image files of the output folder: paths, atomic writes and validation by full decoding."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from lr0fm.atomic import atomic_path
from lr0fm.synth.config import IMAGE_FORMATS, writing

#: Folder of the images inside the output directory.
IMAGES_DIR = "images"


def relative_image_path(caption_id: int, image_index: int, image_format: str) -> str:
    """``images/<caption_id:05d>/<image_index:03d>.<ext>``, relative to the output directory."""
    return f"{IMAGES_DIR}/{caption_id:05d}/{image_index:03d}.{image_format}"


def is_valid_image(path: str | Path) -> bool:
    """Whether ``path`` exists and decodes completely (a truncated file from a killed run does not)."""
    try:
        with Image.open(path) as img:
            img.load()
    except (OSError, SyntaxError, ValueError):
        return False
    return True


def resize_shorter_side(image: Image.Image, shorter: int | None) -> Image.Image:
    """Downscale ``image`` so its shorter side is ``shorter`` pixels (never upscales; ``None``: unchanged)."""
    if shorter is None or min(image.size) <= shorter:
        return image
    scale = shorter / min(image.size)
    size = (max(shorter, round(image.width * scale)), max(shorter, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def save_image_atomic(image: Image.Image, path: str | Path, image_format: str, quality: int) -> None:
    """Write ``image`` to a temporary file next to ``path`` and rename it into place.

    A process killed mid-write leaves only a ``.tmp`` file, never a partial file under the final name; a
    failed write (disk full) removes it.

    Raises:
        SynthError: the file cannot be written, naming it.

    """
    options = {"quality": quality} if image_format in ("jpg", "webp") else {}
    with writing(path), atomic_path(path) as tmp:
        image.convert("RGB").save(tmp, format=IMAGE_FORMATS[image_format], **options)
