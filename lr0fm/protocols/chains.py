"""LR chains: how the view of an image at a low resolution ``n`` (or at HR) is made, pixel by pixel.

A :class:`Chain` is one concrete recipe, built from the steps the LR0.FM authors' evaluation scripts use
(all torchvision transforms on PIL images, so PIL's antialiased resampling):

1. **down** to the low resolution ``n``: ``"shorter"`` = ``Resize(n)`` (shorter side ``n``, aspect kept,
   longer side truncated) or ``"square"`` = ``Resize((n, n))`` (an ``n x n`` squash); always bicubic;
2. **up** to the native size ``S``: ``"model"`` = the backbone's own preprocessing (whatever travels with
   the weights), ``"squash"`` = ``Resize((S, S))`` with no crop, or ``"shorter-crop"`` = ``Resize(S)`` then
   ``CenterCrop(S)``;
3. RGB conversion, ``ToTensor`` and ``Normalize`` with the chain's mean/std (or the model's own).

As in every chain of the authors' code (and in open_clip's own preprocessing), the resizes act on the
image in the mode it was decoded in and the RGB conversion comes after them: a palette (``P``) or
bilevel (``1``) image is resampled with PIL's forced nearest filter, a greyscale one in ``L``.

``hr`` is the native chain (``Resize((S, S))``, ``Resize(S)`` + ``CenterCrop(S)``, or the model's own
preprocessing) unless :attr:`Chain.hr_resolution` names a low resolution whose view stands for HR: the
authors' scripts compare the requested resolution with ``S`` and run their published "224" row through
the LR chain at ``n = 224`` -- for a model whose ``S`` is not 224 that row is ``224 -> S``, not native.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import Compose, InterpolationMode, Normalize, ToTensor

from lr0fm.protocols.resolutions import HR, Resolution, parse_resolutions

#: Normalisations the authors' scripts hard-code, by name: ``(mean, std)``, or ``None`` for ``ToTensor`` only.
NORMALIZATIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]] | None] = {
    "openai": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "siglip": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "none": None,
}
#: The LR step: shorter side ``n`` (aspect kept) or an ``n x n`` squash.
DOWN_MODES = ("shorter", "square")
#: The step back to the native size ``S``.
UP_MODES = ("model", "squash", "shorter-crop")
_INTERPOLATIONS = {
    "bicubic": InterpolationMode.BICUBIC,
    "bilinear": InterpolationMode.BILINEAR,
    "nearest": InterpolationMode.NEAREST,
}


@dataclass(frozen=True)
class Chain:
    """One concrete LR chain (see the module docstring for the steps).

    Attributes:
        name: short identifier, recorded in every results row (``chain`` column).
        down: ``"shorter"`` or ``"square"`` (bicubic).
        up: ``"model"``, ``"squash"`` or ``"shorter-crop"``.
        hr_resolution: ``None``: ``hr`` is the native chain; ``n``: ``hr`` is this chain at ``n`` (the
            authors' "224" row).
        interpolation: filter of the explicit up/native steps (``"model"`` uses the model's own).
        normalize: a key of :data:`NORMALIZATIONS`, or ``None`` for the model's own mean/std.
        source: where the chain comes from (the authors' file, or the paper's text).
    """

    name: str
    down: str = "shorter"
    up: str = "model"
    hr_resolution: int | None = None
    interpolation: str = "bicubic"
    normalize: str | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if self.down not in DOWN_MODES:
            raise ValueError(f"chain {self.name!r}: down={self.down!r} is not one of {DOWN_MODES}")
        if self.up not in UP_MODES:
            raise ValueError(f"chain {self.name!r}: up={self.up!r} is not one of {UP_MODES}")
        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(
                f"chain {self.name!r}: interpolation={self.interpolation!r} is not one of {tuple(_INTERPOLATIONS)}"
            )
        if self.normalize is not None and self.normalize not in NORMALIZATIONS:
            raise ValueError(f"chain {self.name!r}: normalize={self.normalize!r} is not one of {tuple(NORMALIZATIONS)}")
        if self.up == "model" and self.normalize is not None:
            raise ValueError(f"chain {self.name!r}: up='model' uses the model's own normalisation; drop normalize")

    def describe(self) -> str:
        """One line: the steps of the chain."""
        down = "Resize(n) bicubic (shorter side n)" if self.down == "shorter" else "Resize((n, n)) bicubic (square)"
        up = {
            "model": "the model's own preprocessing",
            "squash": f"Resize((S, S)) {self.interpolation}, no crop",
            "shorter-crop": f"Resize(S) {self.interpolation} + CenterCrop(S)",
        }[self.up]
        norm = "" if self.up == "model" else f"; normalise: {self.normalize or 'the model own mean/std'}"
        hr = "native" if self.hr_resolution is None else f"the chain at n = {self.hr_resolution}"
        return f"{down} -> {up}{norm}; hr = {hr}"

    def transform(
        self,
        resolutions: Sequence[Resolution],
        *,
        size: int,
        mean: Sequence[float],
        std: Sequence[float],
        preprocess: Callable[[Image.Image], torch.Tensor],
    ) -> ViewTransform:
        """The multi-resolution transform of this chain for a model.

        Args:
            resolutions: low resolutions and/or ``"hr"``.
            size: the model's native input side ``S``.
            mean: the model's own normalisation mean (used when :attr:`normalize` is ``None``).
            std: the model's own normalisation std.
            preprocess: the model's own PIL -> tensor preprocessing (used by ``up="model"``).

        """
        if self.normalize is None:
            norm: tuple[tuple[float, ...], tuple[float, ...]] | None = (tuple(mean), tuple(std))
        else:
            norm = NORMALIZATIONS[self.normalize]
        return ViewTransform(self, resolutions, size=size, normalization=norm, preprocess=preprocess)


class ViewTransform:
    """PIL image -> ``[R, 3, S, S]`` tensor: the image at every requested resolution, from one decode.

    Picklable (DataLoader workers receive a copy) as long as ``preprocess`` is.

    Args:
        chain: the LR chain.
        resolutions: low resolutions and/or ``"hr"``.
        size: the native input side ``S``.
        normalization: ``(mean, std)`` of the explicit steps, or ``None`` for ``ToTensor`` only.
        preprocess: the model's own preprocessing (``up="model"`` and its native view).

    """

    def __init__(
        self,
        chain: Chain,
        resolutions: Sequence[Resolution],
        *,
        size: int,
        normalization: tuple[Sequence[float], Sequence[float]] | None,
        preprocess: Callable[[Image.Image], torch.Tensor],
    ) -> None:
        self.chain = chain
        self.resolutions = parse_resolutions(resolutions)
        self.size = int(size)
        self.normalization = normalization
        self.preprocess = preprocess
        self._filter = _INTERPOLATIONS[chain.interpolation]
        #: views as uint8 (``split_uint8``'s first half) instead of normalised float32
        self.uint8 = False
        self._pil_steps: Callable[[Image.Image], Image.Image] | None = None

    def split_uint8(self) -> tuple[ViewTransform, FloatViews] | None:
        """This transform in two halves: PIL steps to uint8 views (workers), float conversion (accelerator).

        The first half makes the same pixels as this transform and stops before ``ToTensor``: it returns
        ``[R, 3, S, S]`` uint8 views, a quarter of the bytes to move between processes and to the device. The
        second half, :class:`FloatViews`, is ``ToTensor``'s division by 255 and ``Normalize`` as the same
        float32 operations on a whole batch, so the model inputs are bit-identical to this transform's.

        Returns:
            ``(uint8 transform, FloatViews)``, or ``None`` when the model's own preprocessing (``up="model"``)
            is not a torchvision ``Compose`` ending in an RGB conversion, ``ToTensor`` and ``Normalize``.
        """
        half = copy.copy(self)
        half.uint8 = True
        normalization = self.normalization
        if self.chain.up == "model":
            split = split_preprocess(self.preprocess)
            if split is None:
                return None
            half._pil_steps, normalization = split
        return half, FloatViews(normalization)

    def down(self, image: Image.Image, n: int) -> Image.Image:
        """The LR image at resolution ``n`` (bicubic, in the image's own mode)."""
        size = [n] if self.chain.down == "shorter" else [n, n]
        return TF.resize(image, size, interpolation=InterpolationMode.BICUBIC)

    def native(self, image: Image.Image) -> torch.Tensor:
        """The model input made from ``image`` by the chain's step to the native size."""
        if self.chain.up == "model":
            if self.uint8:
                return TF.pil_to_tensor(self._pil_steps(image))
            return self.preprocess(image)
        if self.chain.up == "squash":
            image = TF.resize(image, [self.size, self.size], interpolation=self._filter)
        else:
            image = TF.center_crop(TF.resize(image, [self.size], interpolation=self._filter), [self.size, self.size])
        if image.mode != "RGB":
            image = image.convert("RGB")
        if self.uint8:
            return TF.pil_to_tensor(image)
        tensor = TF.to_tensor(image)
        if self.normalization is not None:
            tensor = TF.normalize(tensor, list(self.normalization[0]), list(self.normalization[1]))
        return tensor

    def view(self, image: Image.Image, resolution: Resolution) -> torch.Tensor:
        """The model input of ``image`` at one resolution (``"hr"`` or a low side in pixels)."""
        if resolution == HR:
            if self.chain.hr_resolution is None:
                return self.native(image)
            resolution = self.chain.hr_resolution
        return self.native(self.down(image, int(resolution)))

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """Every requested resolution of ``image``, stacked in order."""
        return torch.stack([self.view(image, r) for r in self.resolutions])


def split_preprocess(
    preprocess: Callable[[Image.Image], torch.Tensor],
) -> tuple[Compose, tuple[tuple[float, ...], tuple[float, ...]]] | None:
    """A model's own preprocessing as its PIL steps and its ``(mean, std)``, when it has that shape.

    open_clip's evaluation transform (every backbone's ``preprocess``) is ``Compose([resize, crop, RGB
    conversion, ToTensor, Normalize])``. Returns ``None`` for anything else: a transform that is not a
    ``Compose``, whose last PIL step is not a conversion to RGB, or that does not end in ``ToTensor`` (open_clip's
    ``MaybeToTensor`` is one) and ``Normalize``.
    """
    steps = list(getattr(preprocess, "transforms", None) or [])
    if not isinstance(preprocess, Compose) or len(steps) < 3:
        return None
    *pil, to_tensor, normalize = steps
    last = pil[-1] if pil else None
    to_rgb = getattr(last, "mode", None) == "RGB" or getattr(last, "__name__", "") == "_convert_to_rgb"
    if not (to_rgb and isinstance(to_tensor, ToTensor) and isinstance(normalize, Normalize)):
        return None
    return Compose(pil), (tuple(map(float, normalize.mean)), tuple(map(float, normalize.std)))


class FloatViews:
    """uint8 views ``[..., 3, S, S]`` -> float32 model inputs: ``ToTensor``'s ``/ 255``, then ``Normalize``.

    The same float32 operations, element by element, as ``TF.to_tensor`` and ``TF.normalize`` on one PIL
    image (:meth:`ViewTransform.split_uint8`), run on a whole batch on the batch's device.

    Args:
        normalization: ``(mean, std)``, or ``None`` for the division by 255 only.
    """

    def __init__(self, normalization: tuple[Sequence[float], Sequence[float]] | None) -> None:
        self.normalization = normalization

    def __call__(self, views: torch.Tensor) -> torch.Tensor:
        """Float32 model inputs of the uint8 ``views`` (on their device)."""
        tensor = views.to(dtype=torch.float32).div(255)
        if self.normalization is not None:
            mean, std = (torch.as_tensor(v, dtype=torch.float32, device=views.device) for v in self.normalization)
            tensor.sub_(mean.view(-1, 1, 1)).div_(std.view(-1, 1, 1))
        return tensor
