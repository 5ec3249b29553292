"""LR views made with torch on the accelerator: decode once on the CPU, move the uint8 image once.

:class:`DeviceViews` follows a :class:`~lr0fm.protocols.chains.ViewTransform` step for step — antialiased
bicubic down to ``n`` (square or shorter side, torchvision's size rule), back up to ``S`` (squash, or shorter
side + centre crop; the model's own preprocessing when it is open_clip's ``shortest`` or ``squash`` resize),
rounding to uint8 between steps as PIL does, then normalisation. It is not pixel-identical to PIL's resampler
(different kernels at the borders, float arithmetic), so it is opt-in (``lr0fm benchmark --views_on_device``)
and its agreement with the exact PIL path is measured (``tests/test_protocols.py``,
``benchmarks/benchmark_speed.py``). Images are converted to RGB before the resizes (the exact path resizes in
the stored mode first).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from lr0fm.protocols.chains import ViewTransform
from lr0fm.protocols.resolutions import HR

#: open_clip ``resize_mode`` values the device path reproduces for ``up="model"``
MODEL_RESIZE_MODES = ("shortest", "squash")


def resize_levels(image: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """``[3, H, W]`` or ``[B, 3, H, W]`` float in 0..255 -> side ``size``, antialiased when shrinking, uint8 levels."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    batch = image if image.dim() == 4 else image[None]
    out = F.interpolate(batch, size=tuple(size), mode=mode, antialias=mode in ("bicubic", "bilinear"))
    out = out.clamp_(0, 255).round_()
    return out if image.dim() == 4 else out[0]


def shorter_side(image: torch.Tensor, n: int) -> tuple[int, int]:
    """Torchvision ``Resize(n)``: shorter side ``n``, longer side truncated."""
    h, w = image.shape[-2:]
    return (n, int(n * w / h)) if h <= w else (int(n * h / w), n)


def center_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    """Torchvision ``CenterCrop(size)`` for an image (or a batch) at least ``size`` on both sides."""
    h, w = image.shape[-2:]
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return image[..., top : top + size, left : left + size]


class DeviceViews:
    """uint8 RGB images (``[3, H, W]``, any sizes, on any device) -> ``[B, R, 3, S, S]`` model inputs.

    Args:
        transform: the exact PIL transform whose chain, resolutions, size and normalisation are followed.
        preprocess_cfg: the model's preprocessing config (open_clip ``PreprocessCfg``: ``resize_mode``,
            ``interpolation``, ``mean``, ``std``), used by chains whose up step is the model's own.

    Raises:
        ValueError: the model's own preprocessing is one the device path cannot reproduce.
    """

    def __init__(self, transform: ViewTransform, preprocess_cfg) -> None:
        self.chain = transform.chain
        self.resolutions = list(transform.resolutions)
        self.size = transform.size
        self.filter = self.chain.interpolation
        norm = transform.normalization
        if self.chain.up == "model":
            mode = getattr(preprocess_cfg, "resize_mode", "shortest")
            if mode not in MODEL_RESIZE_MODES:
                raise ValueError(
                    f"--views_on_device: the model's preprocessing resizes with {mode!r}; the device path "
                    f"reproduces {', '.join(MODEL_RESIZE_MODES)} (run without --views_on_device)"
                )
            self.model_mode = mode
            self.filter = getattr(preprocess_cfg, "interpolation", "bicubic")
            norm = (preprocess_cfg.mean, preprocess_cfg.std)
        self.mean = torch.tensor(norm[0]).view(3, 1, 1) * 255 if norm else None
        self.std = torch.tensor(norm[1]).view(3, 1, 1) * 255 if norm else None

    def _native(self, image: torch.Tensor) -> torch.Tensor:
        up = self.chain.up
        if up == "squash" or (up == "model" and self.model_mode == "squash"):
            image = resize_levels(image, (self.size, self.size), self.filter)
        else:
            image = center_crop(resize_levels(image, shorter_side(image, self.size), self.filter), self.size)
        if self.mean is None:
            return image / 255
        return (image - self.mean.to(image.device)) / self.std.to(image.device)

    def _view(self, image: torch.Tensor, resolution) -> torch.Tensor:
        if resolution == HR:
            if self.chain.hr_resolution is None:
                return self._native(image)
            resolution = self.chain.hr_resolution
        n = int(resolution)
        low = resize_levels(image, shorter_side(image, n) if self.chain.down == "shorter" else (n, n), "bicubic")
        return self._native(low)

    def __call__(self, images: Sequence[torch.Tensor]) -> torch.Tensor:
        """Every requested resolution of every image, ``[B, R, 3, S, S]`` float32 on the images' device."""
        return torch.stack([torch.stack([self._view(img.float(), r) for r in self.resolutions]) for img in images])


class DecodeRGB:
    """PIL image -> ``[3, H, W]`` uint8 RGB tensor (what the workers send when views are made on the device)."""

    def __call__(self, image) -> torch.Tensor:
        """The image's pixels, converted to RGB first when stored in another mode."""
        from torchvision.transforms.functional import pil_to_tensor

        return pil_to_tensor(image if image.mode == "RGB" else image.convert("RGB"))
