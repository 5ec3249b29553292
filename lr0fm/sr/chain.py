"""The SR LR chain: the LR image made square, super-resolved on the accelerator, then the backbone's input.

It follows the LR0.FM authors' SR evaluation (``EVA/EVA-CLIP/rei/zero_shot_classification_SR.py`` with
``create_dataset_zero_shot(..., enable_resize=False)`` of ``EVA/EVA-CLIP/rei/data/__init__.py``):

1. the LR image: ``Resize(n)`` bicubic (shorter side ``n``) + ``CenterCrop(n)``, an ``n x n`` square, in RGB;
2. the SR model, in batches on the accelerator; by default its passes repeat until the side reaches or
   exceeds the backbone's input side ``S`` (``passes=None``; a x4 model takes 16 px to 64 then 256 for
   ``S = 224``); ``passes=N`` runs exactly ``N`` (the authors' script runs one: 16 -> 64 for Table 3);
3. the output clamped to ``[0, 1]`` and rounded to uint8 levels (the authors go through ``to_pil_image``);
4. ``Resize(S)`` bicubic + ``CenterCrop(S)``, then the backbone's own normalisation.

``hr`` rows are the native view without SR (``Resize(S)`` + ``CenterCrop(S)``), the authors' HR transform, so
a folder's ``sr:<name>`` rows carry their own HR accuracy for SAR/WAR.

Differences from the authors' script, kept on purpose: the SR input is the LR image's own pixels in ``[0, 1]``
(they min-max normalise the whole normalised batch, so the input depends on the batch), the output is clamped
rather than min-max normalised per image, and steps 3-4 run in torch (antialiased bicubic, rounded to uint8
levels between steps) instead of PIL, as ``--views_on_device`` does.

The workers make steps 1 and the native view with PIL (:class:`SRInputs`, uint8, one decode per image); the
accelerator runs the rest (:class:`SRViews`, the benchmark's view maker for the task).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
import torchvision.transforms.functional as TF
from PIL import Image

from lr0fm.protocols.chains import Chain, FloatViews, ViewTransform
from lr0fm.protocols.device import center_crop, resize_levels, shorter_side
from lr0fm.protocols.resolutions import HR, Resolution
from lr0fm.sr.upscalers import Upscaler

#: the PIL half of the chain: shorter side ``n`` (then the centre crop of :class:`SRInputs`), native ``S``
SR_CHAIN = Chain(
    "sr-square-crop",
    down="shorter",
    up="shorter-crop",
    source="EVA/EVA-CLIP/rei/zero_shot_classification_SR.py, data/__init__.py (enable_resize=False)",
)


def sr_protocol_name(name: str, passes: int | None = None) -> str:
    """The ``protocol`` column of SR rows: ``sr:<name>``, or ``sr:<name>@<N>pass`` for a fixed number of passes."""
    return f"sr:{name}" + (f"@{passes}pass" if passes else "")


def describe_sr_chain(upscaler: Upscaler, passes: int | None) -> str:
    """One line: the steps of the SR chain with this model."""
    repeat = f"{passes} pass{'es' if passes > 1 else ''}" if passes else "passes until the side >= S"
    return (
        f"Resize(n) bicubic + CenterCrop(n) -> {upscaler.name} ({repeat}) -> clamp, uint8 levels -> Resize(S) "
        "bicubic + CenterCrop(S); normalise: the model's own mean/std; hr = native, no SR"
    )


class SRInputs:
    """PIL image -> ``[R, 3, C, C]`` uint8: each view top-left in a ``C x C`` canvas (``C = max(S, n...)``).

    A low resolution ``n`` is the ``n x n`` LR image (step 1 of the module docstring), ``hr`` the native
    ``S x S`` view; the canvas lets views of different sizes travel as one tensor (one per image, stacked per
    batch); :class:`SRViews` cuts each view out by its known size. Picklable (DataLoader workers).

    Args:
        transform: the uint8 half of :data:`SR_CHAIN`'s transform for the backbone.
    """

    def __init__(self, transform: ViewTransform) -> None:
        self.transform = transform
        lows = [int(r) for r in transform.resolutions if r != HR]
        self.canvas = max([transform.size, *lows])

    def view(self, image: Image.Image, resolution: Resolution) -> torch.Tensor:
        """The uint8 view of one resolution (``[3, n, n]`` LR, or ``[3, S, S]`` native)."""
        if resolution == HR:
            return self.transform.view(image, HR)
        n = int(resolution)
        low = TF.center_crop(self.transform.down(image, n), [n, n])
        return TF.pil_to_tensor(low if low.mode == "RGB" else low.convert("RGB"))

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """Every view of ``image``, in the canvas."""
        views = self.transform.resolutions
        out = torch.zeros(len(views), 3, self.canvas, self.canvas, dtype=torch.uint8)
        for j, r in enumerate(views):
            view = self.view(image, r)
            out[j, :, : view.shape[-2], : view.shape[-1]] = view
        return out


class SRViews:
    """The accelerator half: LR views -> SR passes -> ``Resize(S)`` + ``CenterCrop(S)`` -> normalised inputs.

    Takes what the batch carries -- ``[B, R, 3, C, C]`` uint8 canvases from :class:`SRInputs`, or, with
    ``on_device``, the decoded uint8 images (:class:`~lr0fm.protocols.device.DecodeRGB`), whose LR and native
    views it makes with torch -- and returns ``[B, R, 3, S, S]`` float32 model inputs. It times the SR
    passes of every resolution (synchronising CUDA around them) and reports, per resolution, the columns
    :meth:`record_columns` adds to the results rows.

    Args:
        upscaler: the SR model (moved to the batch's device on first use).
        resolutions: the task's resolutions, in view order.
        size: the backbone's input side ``S``.
        float_views: ``ToTensor`` scaling and the backbone's normalisation.
        passes: SR passes per LR view (``None``: until the side reaches ``size``).
        batch_size: images per SR forward (``None``: the whole batch).
        on_device: the batch carries decoded images, not canvases.
    """

    def __init__(
        self,
        upscaler: Upscaler,
        resolutions: Sequence[Resolution],
        size: int,
        float_views: FloatViews,
        *,
        passes: int | None = None,
        batch_size: int | None = None,
        on_device: bool = False,
    ) -> None:
        self.upscaler = upscaler
        self.resolutions = list(resolutions)
        self.size = int(size)
        self.float_views = float_views
        self.passes, self.batch_size, self.on_device = passes, batch_size, on_device
        self.seconds = dict.fromkeys(self.resolutions, 0.0)
        self.images = dict.fromkeys(self.resolutions, 0)
        self.passes_run: dict[Resolution, int] = {}
        self._warm = False

    def _native(self, levels: torch.Tensor) -> torch.Tensor:
        """``Resize(S)`` bicubic + ``CenterCrop(S)`` of float uint8 levels ``[B, 3, h, w]``."""
        return center_crop(resize_levels(levels, shorter_side(levels, self.size), "bicubic"), self.size)

    def _inputs(self, views, j: int, resolution: Resolution) -> torch.Tensor:
        """Float uint8 levels of view ``j`` of every image: ``[B, 3, n, n]`` (LR) or ``[B, 3, S, S]`` (hr)."""
        side = self.size if resolution == HR else int(resolution)
        if not self.on_device:
            return views[:, j, :, :side, :side].float()
        out = []
        for image in views:
            image = image.float()
            if resolution != HR:
                image = center_crop(resize_levels(image, shorter_side(image, side), "bicubic"), side)
            out.append(self._native(image[None])[0] if resolution == HR else image)
        return torch.stack(out)

    def super_resolve(self, images: torch.Tensor) -> tuple[torch.Tensor, int]:
        """SR passes over ``[B, 3, n, n]`` images in ``[0, 1]``; returns the result (clamped) and the pass count."""
        upscaler = self.upscaler.to(images.device)
        done, side = 0, images.shape[-1]
        while True:
            chunks = images.split(self.batch_size or len(images))
            images = torch.cat([upscaler(chunk).clamp(0, 1) for chunk in chunks])
            done += 1
            if images.shape[-1] <= side:
                raise RuntimeError(
                    f"--sr {upscaler.spec!r}: a pass took a {side} px image to {images.shape[-1]} px; an SR model must "
                    "enlarge (scale >= 2)"
                )
            side = images.shape[-1]
            if (self.passes is not None and done >= self.passes) or (self.passes is None and side >= self.size):
                return images, done

    def _timed(self, images: torch.Tensor, resolution: Resolution) -> tuple[torch.Tensor, int]:
        """:meth:`super_resolve`, timed into the resolution's totals (after one untimed warm-up batch)."""
        cuda = images.device.type == "cuda"
        if not self._warm:  # kernels, autotuning and allocations of the first forward are not the model's cost
            self.super_resolve(images[:1])
            self._warm = True
        if cuda:
            torch.cuda.synchronize(images.device)
        start = time.perf_counter()
        out, passes = self.super_resolve(images)
        if cuda:
            torch.cuda.synchronize(images.device)
        self.seconds[resolution] += time.perf_counter() - start
        self.images[resolution] += len(images)
        self.passes_run[resolution] = passes
        return out, passes

    def __call__(self, views) -> torch.Tensor:
        """``[B, R, 3, S, S]`` float32 model inputs of a batch (on the batch's device)."""
        out = []
        for j, r in enumerate(self.resolutions):
            levels = self._inputs(views, j, r)
            if r != HR:
                sr, _ = self._timed(levels / 255, r)
                levels = self._native(sr.mul(255).round())
            out.append(self.float_views(levels))
        return torch.stack(out, dim=1)

    def record_columns(self, resolution: Resolution) -> dict:
        """The SR columns of the row of ``resolution``: model, content key, size, passes and time per image."""
        images = self.images.get(resolution, 0)
        return {
            "sr": self.upscaler.name,
            "sr_spec": self.upscaler.spec,
            "sr_key": self.upscaler.key,
            "sr_params": self.upscaler.params,
            "sr_scale": self.upscaler.scale,
            "sr_passes": self.passes_run.get(resolution, 0),
            "sr_ms_per_image": round(1000 * self.seconds[resolution] / images, 4) if images else None,
        }


def sr_view_pipeline(
    backbone,
    resolutions: Sequence[Resolution],
    upscaler: Upscaler,
    *,
    passes: int | None = None,
    batch_size: int | None = None,
    on_device: bool = False,
) -> tuple[object, SRViews]:
    """The two halves of a task's SR views: what DataLoader workers run, and the accelerator's :class:`SRViews`.

    Args:
        backbone: the model (its input side, mean/std and preprocessing).
        resolutions: the task's resolutions.
        upscaler: the SR model.
        passes: SR passes (``None``: until the side reaches ``S``).
        batch_size: images per SR forward (``None``: the whole batch).
        on_device: workers only decode; the LR and native views are made with torch on the accelerator.
    """
    cfg = backbone.preprocess_cfg
    transform = SR_CHAIN.transform(
        resolutions, size=cfg.size, mean=cfg.mean, std=cfg.std, preprocess=backbone.preprocess
    )
    uint8_half, float_views = transform.split_uint8()
    if on_device:
        from lr0fm.protocols.device import DecodeRGB

        workers = DecodeRGB()
    else:
        workers = SRInputs(uint8_half)
    views = SRViews(
        upscaler,
        transform.resolutions,
        transform.size,
        float_views,
        passes=passes,
        batch_size=batch_size,
        on_device=on_device,
    )
    return workers, views
