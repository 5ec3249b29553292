"""The zero-shot dataset interface every loader (real, webdataset, folder, toy) implements."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np
from PIL import Image


class DatasetError(ValueError):
    """A dataset is missing or malformed; the message states the expected layout and how to get it."""


class CorruptImageError(DatasetError):
    """An image file could not be decoded; ``path`` names it."""

    def __init__(self, path: str, reason: str = "") -> None:
        self.path = path
        self.reason = reason
        super().__init__(
            f"corrupt image file {path!r}{': ' + reason if reason else ''}. "
            "Fix or delete the file, or pass --skip_corrupt to skip such files (the results record how many)."
        )


@dataclass
class ZeroShotDataset:
    """A labelled evaluation set with the class names and prompt templates of zero-shot classification.

    Map-style and picklable (DataLoader workers receive a copy). ``__getitem__`` returns the decoded image
    (``PIL.Image``, in the mode it is stored in: the LR protocol resizes first and converts to RGB after,
    as the LR0.FM authors' chains and open_clip's preprocessing do) and its integer label; the benchmark
    engine applies its own multi-resolution transform to the PIL image, so datasets never resize.

    Attributes:
        name: registry name (a canonical name such as ``"dtd"``, a toy name, or ``"folder:/path"``).
        classnames: one natural-language name per class, index = label.
        templates: prompt templates, each containing ``{c}`` where the class name goes.
        samples: per-sample ``(source, label)``; ``source`` identifies the sample (usually a file path).
        loader: turns a ``source`` into a PIL image; raises :class:`CorruptImageError` when it cannot.
        class_subset: for datasets that are label subsets of a larger classifier (ImageNet-A/-R), the
            indices of their classes within ``parent_classifier`` (else ``None``).
        parent_classifier: name of the dataset whose text classifier this one slices (e.g. ``"imagenet"``).
    """

    name: str
    classnames: list[str]
    templates: list[str]
    samples: Sequence[tuple[Any, int]]
    loader: Callable[[Any], Image.Image]
    class_subset: list[int] | None = None
    parent_classifier: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        """Number of classes (the size of the classifier this dataset is scored with)."""
        return len(self.classnames)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        source, label = self.samples[index]
        return self.loader(source), label

    def sample_id(self, index: int) -> str:
        """A stable identifier of sample ``index`` (its path or shard key) for per-sample outputs."""
        return str(self.samples[index][0])


#: Pillow modes of 16-bit greyscale images (PNG/TIFF); their values run to 65535
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


def to_8bit(image: Image.Image) -> Image.Image:
    """A 16-bit greyscale image as 8-bit ``L`` (value / 257, rounded); any other image unchanged.

    Pillow's own ``convert("RGB")`` clips 16-bit values at 255, so a mid-grey 32768 would turn white. ``I``
    (32-bit) images are scaled the same way when they hold values above 255 (16-bit data), else kept.
    """
    if image.mode not in (*SIXTEEN_BIT_MODES, "I"):
        return image
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "I" and values.max(initial=0) <= 255:
        return Image.fromarray(values.clip(0, 255).astype(np.uint8), "L")
    return Image.fromarray(np.clip(np.rint(values / 257), 0, 255).astype(np.uint8), "L")


def decode_image(source: str | os.PathLike | BinaryIO, name: str) -> Image.Image:
    """Decode an image in its stored mode (16-bit greyscale made 8-bit), or raise :class:`CorruptImageError`.

    Args:
        source: a path or a binary file object.
        name: how the error names the image (its path, or ``shard#key``).

    Raises:
        CorruptImageError: truncated or garbage data, or more pixels than Pillow's decompression-bomb limit
            (``PIL.Image.MAX_IMAGE_PIXELS``); ``--skip_corrupt`` skips such images.
    """
    try:
        with Image.open(source) as img:
            img.load()  # the pixels stay usable after the file is closed
    except Image.DecompressionBombError as exc:
        raise CorruptImageError(
            name, f"{exc} If the image is genuine, raise PIL.Image.MAX_IMAGE_PIXELS; --skip_corrupt skips it."
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:  # PIL raises these for truncated/garbage files
        raise CorruptImageError(name, str(exc)) from exc
    return to_8bit(img)


def load_image(path: str) -> Image.Image:
    """Decode an image file (:func:`decode_image`), naming the file on failure."""
    return decode_image(path, str(path))
