"""HR images of the ``lrtk0`` split: the offline stand-in for LR-TK0's diffusion-generated training images.

The ``lrtk0`` split shares no attribute combination with ``pretrain`` or ``eval`` (see
:mod:`lr0fm.toy.world`), so LR tokens trained on it never see an evaluation image. :class:`ToyHRImages`
is the LR-TK0 training source ``toy`` / ``toy:N`` (registered by :mod:`lr0fm.toy.plugin`).
"""

from __future__ import annotations

from PIL import Image
from torch.utils.data import Dataset

from lr0fm.datasets.base import DatasetError
from lr0fm.lrtk0.sources import HRImages
from lr0fm.toy.world import render_split, scene_at, split_combinations

#: images of ``toy`` without a count
DEFAULT_NUM_IMAGES = 10_000


class ToyLRTK0Images(Dataset):
    """Map-style dataset of ``num_images`` HR (64x64) RGB PIL images of the ``lrtk0`` split.

    Image ``i`` is rendered on access from ``(seed, "lrtk0", i)``: deterministic, picklable, no files.

    Args:
        num_images: dataset length.
        seed: world seed.
        transform: optional callable applied to each PIL image (e.g. the model preprocessing).

    """

    def __init__(self, num_images: int = DEFAULT_NUM_IMAGES, seed: int = 0, transform=None) -> None:  # noqa: ANN001
        if num_images < 1:
            raise ValueError(f"num_images must be positive, got {num_images}")
        self.num_images = num_images
        self.seed = seed
        self.transform = transform

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, index: int) -> Image.Image:
        if not 0 <= index < self.num_images:
            raise IndexError(f"index {index} out of range for {self.num_images} toy LR-TK0 images")
        images, _ = render_split("lrtk0", [index], self.seed)
        image = Image.fromarray(images[0], mode="RGB")
        return self.transform(image) if self.transform is not None else image


class ToyHRImages(HRImages):
    """The toy world's ``lrtk0`` split as LR-TK0 training images; an image's caption names all its attributes."""

    def __init__(self, num_images: int = DEFAULT_NUM_IMAGES, seed: int = 0) -> None:
        self.images = ToyLRTK0Images(num_images, seed)
        self.seed = seed
        self.combos = split_combinations("lrtk0")
        self.captions = [
            f"a {a.size} {a.color} {a.texture} {a.shape} on a {a.background} background" for a in self.combos
        ]

    def __len__(self) -> int:
        return len(self.images)

    def image(self, index: int) -> Image.Image:
        """Render HR image ``index``."""
        return self.images[index]

    def caption_id(self, index: int) -> int:
        """Index of the image's attribute combination in the split."""
        return self.combos.index(scene_at("lrtk0", index, self.seed).attrs)


def toy_source(argument: str, *, images_per_caption: int | None = None, seed: int = 0) -> ToyHRImages:
    """The LR-TK0 source ``toy`` (10,000 images) or ``toy:N`` (the first N).

    Raises:
        DatasetError: ``N`` is not a positive integer.

    """
    count = argument or str(DEFAULT_NUM_IMAGES)
    if not count.isdigit() or int(count) < 1:
        raise DatasetError(f"bad LR-TK0 source 'toy:{argument}': expected toy or toy:N with N >= 1")
    return ToyHRImages(int(count), seed)
