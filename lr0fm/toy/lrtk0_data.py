"""HR images of the ``lrtk0`` split: the offline stand-in for LR-TK0's diffusion-generated training images.

The ``lrtk0`` split shares no attribute combination with ``pretrain`` or ``eval`` (see
:mod:`lr0fm.toy.world`), so LR tokens trained on it never see an evaluation image.
"""

from __future__ import annotations

from PIL import Image
from torch.utils.data import Dataset

from lr0fm.toy.world import render_split


class ToyLRTK0Images(Dataset):
    """Map-style dataset of ``num_images`` HR (64x64) RGB PIL images of the ``lrtk0`` split.

    Image ``i`` is rendered on access from ``(seed, "lrtk0", i)``: deterministic, picklable, no files.

    Args:
        num_images: dataset length.
        seed: world seed.
        transform: optional callable applied to each PIL image (e.g. the model preprocessing).

    """

    def __init__(self, num_images: int = 10_000, seed: int = 0, transform=None) -> None:  # noqa: ANN001
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
