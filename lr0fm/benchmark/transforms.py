"""The LR protocol of LR0.FM, exactly as the paper's code does it.

For a low resolution ``n``: decode the image, PIL-bicubic resize it so its *shorter* side is ``n`` (aspect
ratio kept), then apply the backbone's own preprocessing (resize to the native size, centre crop,
normalise). ``hr`` is the backbone's preprocessing alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image

HR = "hr"
Resolution = int | str


def parse_resolutions(values: Sequence[Any]) -> list[Resolution]:
    """Normalise ``["16", 32, "HR"]`` to ``[16, 32, "hr"]`` (order kept, duplicates removed)."""
    out: list[Resolution] = []
    for v in values:
        text = str(v).strip().lower()
        if text in (HR, "native"):
            res: Resolution = HR
        else:
            try:
                res = int(text)
            except ValueError:
                raise ValueError(f"resolution {v!r} is neither a positive integer pixel size nor 'hr'") from None
            if res <= 0:
                raise ValueError(f"resolution {v!r} must be a positive integer pixel size or 'hr'")
        if res not in out:
            out.append(res)
    return out


def lr_size(width: int, height: int, size: int) -> tuple[int, int]:
    """Output ``(width, height)`` when the shorter side becomes ``size``.

    The longer side is ``int(size * long / short)`` (truncated), the rule of torchvision's ``Resize(size)``
    that the paper's CLIP-style evaluation scripts use.
    """
    if width <= height:
        return size, max(1, int(size * height / width))
    return max(1, int(size * width / height)), size


def lr_resize(image: Image.Image, size: int) -> Image.Image:
    """PIL bicubic resize so that the shorter side is ``size`` (aspect ratio kept)."""
    return image.resize(lr_size(*image.size, size), Image.BICUBIC)


class MultiResolutionTransform:
    """PIL image -> ``[R, 3, H, W]`` tensor: the image at every requested resolution, from one decode.

    Args:
        preprocess: the backbone's own PIL -> tensor preprocessing (native size).
        resolutions: low resolutions (ints) and/or ``"hr"``.
    """

    def __init__(self, preprocess: Callable[[Image.Image], torch.Tensor], resolutions: Sequence[Resolution]) -> None:
        self.preprocess = preprocess
        self.resolutions = parse_resolutions(resolutions)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """Apply the LR protocol for every resolution and stack the results."""
        views = [self.preprocess(image if r == HR else lr_resize(image, int(r))) for r in self.resolutions]
        return torch.stack(views)
