"""LR-TK0 training data: HR images served with K multi-scale LR versions, deterministic and DDP-aware.

The HR images come from a source string (:mod:`lr0fm.lrtk0.sources`: ``folder:/path``, ``wds:/path``,
the toy world's ``toy:N``, or any plug-in's).

Each item is ``{"hr": [3,H,W], "lr": [K,3,H,W], "index": int, "caption": int}``, made as the LR0.FM
authors' ``LR_Robust_Dataset`` (``EVA/EVA-CLIP/rei/training/data_train.py``) makes it: LR view ``k`` draws
its side ``n`` uniformly from the half-open bucket ``[low, high)`` (their ``random.choice(range(16, 32))``),
squashes the HR image to ``n x n`` (PIL bicubic) and resizes it back to the HR image's own size (bicubic);
then every view -- the HR one included -- goes through the training transform: with ``crop_scale`` set,
the authors' ``RandomResizedCrop(S, scale=crop_scale)`` (bicubic), drawn independently per view, then RGB,
``ToTensor`` and the backbone's normalisation; without it, the backbone's own evaluation preprocessing.
All draws come from ``numpy.random.default_rng((seed, epoch, index))``, so an item depends only on the
seed, the epoch and the image, never on the rank or worker that loads it.

Sharding: :class:`EpochBatchSampler` shuffles with ``(seed, epoch)`` and gives rank ``r`` the ``r``-th
slice of each global batch, so ``devices x batch_size`` on several processes sees exactly the global
batches of one process with the global batch size. With ``caption_group = K > 1`` it forms batches of
whole groups of ``K`` images of one caption, as the authors' ``DistributedRandomIdentitySampler``
(``num_instances=4``): each caption's images are shuffled and cut into groups of ``K`` (a remainder is left
out that epoch), and the groups are shuffled. It replaces Lightning's distributed sampler, so the trainer
needs ``use_distributed_sampler: false`` (the ``lr0fm fit`` CLI sets it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import lightning as L
import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from lr0fm.datasets.base import DatasetError
from lr0fm.lrtk0.sources import HRImages, build_hr_images

#: default LR buckets of the paper: side ``n`` of the square LR view, half-open ranges ``[low, high)``
DEFAULT_BUCKETS: tuple[tuple[int, int], ...] = ((16, 32), (32, 64), (64, 128))
#: the authors' train-time ``RandomResizedCrop`` scale range
AUTHORS_CROP_SCALE = (0.9, 1.0)
#: the authors' images of one caption per batch (``DistributedRandomIdentitySampler(num_instances=4)``)
AUTHORS_CAPTION_GROUP = 4


def draw_lr_sizes(buckets: Sequence[Sequence[int]], seed: int, epoch: int, index: int) -> list[int]:
    """Side ``n`` of each square LR view: a uniform integer of bucket ``k`` = ``[low, high)`` for view ``k``."""
    rng = np.random.default_rng((seed, epoch, index))
    return [int(rng.integers(lo, hi)) for lo, hi in buckets]


def square_lr_view(image: Image.Image, n: int) -> Image.Image:
    """The authors' LR view: squash to ``n x n`` (bicubic), then back to the image's own size (bicubic)."""
    return image.resize((n, n), Image.BICUBIC).resize(image.size, Image.BICUBIC)


class RandomCropTransform:
    """The authors' training transform: ``RandomResizedCrop(size, scale)`` bicubic, RGB, ToTensor, Normalize.

    The crop is drawn from a given seed (``torchvision``'s own sampler under a forked RNG), so a view does not
    depend on the process or worker that makes it.
    """

    def __init__(self, size: int, scale: Sequence[float], mean: Sequence[float], std: Sequence[float]) -> None:
        self.crop = T.RandomResizedCrop(size, scale=tuple(scale), interpolation=T.InterpolationMode.BICUBIC)
        self.finish = T.Compose([T.ToTensor(), T.Normalize(list(mean), list(std))])

    def __call__(self, image: Image.Image, seed: int) -> torch.Tensor:
        """Crop ``image`` with the crop drawn from ``seed``; normalise."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            image = self.crop(image)
        return self.finish(image.convert("RGB") if image.mode != "RGB" else image)


class LRViewsDataset(Dataset):
    """Map-style dataset over ``(epoch, index)`` keys: HR image and its K LR versions, preprocessed.

    Args:
        images: the HR images.
        preprocess: the backbone's PIL -> tensor preprocessing (native size), used without ``crop``.
        buckets: one half-open ``[low, high)`` range of the LR side per LR view.
        seed: seed of the LR size and crop draws.
        indices: the images of ``images`` this dataset exposes (default all).
        crop: the training transform (random crop per view); ``None``: ``preprocess`` for every view.

    """

    def __init__(
        self,
        images: HRImages,
        preprocess: Callable[[Image.Image], torch.Tensor],
        buckets: Sequence[Sequence[int]],
        seed: int = 0,
        indices: Sequence[int] | None = None,
        crop: RandomCropTransform | None = None,
    ) -> None:
        self.images = images
        self.preprocess = preprocess
        self.crop = crop
        self.buckets = [tuple(int(v) for v in b) for b in buckets]
        self.seed = seed
        self.indices = list(range(len(images))) if indices is None else list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor | int]:
        epoch, position = key
        index = self.indices[position]
        image = self.images.image(index)
        sizes = draw_lr_sizes(self.buckets, self.seed, epoch, index)
        views = [image, *(square_lr_view(image, n) for n in sizes)]
        if self.crop is None:
            tensors = [self.preprocess(view) for view in views]
        else:
            seeds = np.random.default_rng((self.seed, epoch, index, 1)).integers(0, 2**62, len(views))
            tensors = [self.crop(view, int(s)) for view, s in zip(views, seeds)]
        return {
            "hr": tensors[0],
            "lr": torch.stack(tensors[1:]) if sizes else torch.empty(0),
            "index": index,
            "caption": self.images.caption_id(index),
        }


class EpochBatchSampler(Sampler):
    """Yields this rank's ``(epoch, position)`` keys: rank ``r`` gets slice ``r`` of every global batch.

    Incomplete global batches are dropped (the contrastive loss needs full batches).

    Args:
        length: dataset length.
        batch_size: per-rank batch size.
        rank: this process's rank.
        world_size: number of processes.
        seed: shuffle seed (the order of epoch ``e`` comes from ``(seed, e)``).
        shuffle: shuffle (training) or keep the order (validation).
        captions: caption id of each dataset position (needed when ``caption_group > 1``).
        caption_group: images of one caption that travel together (the authors' 4); 1 = plain shuffle.

    Raises:
        DatasetError: the data cannot fill one global batch, or ``batch_size`` is not a multiple of
            ``caption_group``.

    """

    def __init__(
        self,
        length: int,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        shuffle: bool = True,
        captions: Sequence[int] | None = None,
        caption_group: int = 1,
    ) -> None:
        self.length, self.batch_size, self.rank, self.world_size = length, batch_size, rank, world_size
        self.seed, self.shuffle, self.epoch = seed, shuffle, 0
        self.caption_group = int(caption_group)
        self._groups: list[list[int]] = []
        self._usable = length
        if self.caption_group > 1:
            if captions is None or len(captions) != length:
                raise ValueError("caption_group > 1 needs the caption id of every dataset position")
            if batch_size % self.caption_group:
                raise DatasetError(
                    f"data.batch_size={batch_size} must be a multiple of data.caption_group={self.caption_group} "
                    "(each batch holds whole groups of images of one caption)"
                )
            by_caption: dict[int, list[int]] = {}
            for position, caption in enumerate(captions):
                by_caption.setdefault(int(caption), []).append(position)
            self._groups = [by_caption[c] for c in sorted(by_caption)]
            self._usable = sum(len(g) - len(g) % self.caption_group for g in self._groups)
        if len(self) == 0:
            what = (
                f"{length} images"
                if self.caption_group == 1
                else (f"{self._usable} images in whole groups of {self.caption_group} per caption")
            )
            raise DatasetError(
                f"{what} cannot fill one global batch of {world_size} x {batch_size}; "
                "lower data.batch_size or add images"
            )

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at every epoch start."""
        self.epoch = epoch

    def __len__(self) -> int:
        return (self._usable // (self.batch_size * self.world_size)) * self.batch_size

    def _order(self) -> np.ndarray:
        """Dataset positions in this epoch's order (whole caption groups when ``caption_group > 1``)."""
        rng = np.random.default_rng((self.seed, self.epoch))
        if self.caption_group == 1:
            return rng.permutation(self.length) if self.shuffle else np.arange(self.length)
        chunks = []
        for positions in self._groups:
            group = np.asarray(positions)
            if self.shuffle:
                group = group[rng.permutation(len(group))]
            usable = len(group) - len(group) % self.caption_group
            chunks += [group[i : i + self.caption_group] for i in range(0, usable, self.caption_group)]
        if self.shuffle:
            chunks = [chunks[i] for i in rng.permutation(len(chunks))]
        return np.concatenate(chunks)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = self._order()
        global_batch = self.batch_size * self.world_size
        epoch = self.epoch if self.shuffle else 0  # validation: the same LR draws every epoch
        for start in range(0, len(self) // self.batch_size * global_batch, global_batch):
            first = start + self.rank * self.batch_size
            for position in order[first : first + self.batch_size]:
                yield epoch, int(position)


class LRTK0DataModule(L.LightningDataModule):
    """HR + K x LR batches for LR-TK0 training; the preprocessing comes from the model being trained.

    Args:
        source: where the HR images come from (``toy``, ``toy:N``, ``folder:/path``, ``wds:/path``).
        buckets: one half-open ``[low, high)`` range of the square LR side per LR view (K = number of
            buckets; the paper's ``[16, 32] [32, 64] [64, 128]`` are the authors' ``range(16, 32)`` ...).
        batch_size: images per process and step.
        num_workers: DataLoader worker processes.
        seed: seed of the shuffle, the LR sizes and the crops.
        val_images: images held out (the last ones) for ``validate``/``test`` (distillation loss at
            fixed draws, the same every epoch); 0: no validation set.
        images_per_caption: keep at most this many images per caption (folder and shard sources).
        crop_scale: ``[low, high]`` area range of the authors' per-view ``RandomResizedCrop`` (their
            ``[0.9, 1.0]``); ``None``: no augmentation (the backbone's evaluation preprocessing).
        caption_group: images of one caption that share a batch (the authors' 4); 1: plain shuffle.

    """

    def __init__(
        self,
        source: str = "toy",
        buckets: list[list[int]] | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
        seed: int = 0,
        val_images: int = 0,
        images_per_caption: int | None = None,
        crop_scale: list[float] | None = None,
        caption_group: int = 1,
    ) -> None:
        super().__init__()
        self.source = source
        self.buckets = [list(b) for b in (buckets if buckets is not None else DEFAULT_BUCKETS)]
        for bucket in self.buckets:
            if len(bucket) != 2 or not 1 <= bucket[0] < bucket[1]:
                raise ValueError(f"bad LR bucket {bucket}: expected a half-open [low, high) with 1 <= low < high")
        if crop_scale is not None and (len(crop_scale) != 2 or not 0 < crop_scale[0] <= crop_scale[1] <= 1):
            raise ValueError(f"bad crop_scale {crop_scale}: expected [low, high] with 0 < low <= high <= 1")
        if caption_group < 1:
            raise ValueError(f"caption_group must be >= 1, got {caption_group}")
        least = {"batch_size": 1, "num_workers": 0, "val_images": 0, "images_per_caption": 1}
        values = {"batch_size": batch_size, "num_workers": num_workers, "val_images": val_images}
        values["images_per_caption"] = images_per_caption
        for name, value in values.items():
            if value is None and name == "images_per_caption":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < least[name]:
                raise ValueError(f"data.{name}={value!r} is not valid: expected an integer >= {least[name]}")
        self.crop_scale = None if crop_scale is None else [float(v) for v in crop_scale]
        self.caption_group = int(caption_group)
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.val_images, self.images_per_caption = val_images, images_per_caption
        self.images: HRImages | None = None

    def setup(self, stage: str) -> None:
        """Open the source and take the preprocessing from the LightningModule's backbone."""
        if self.images is None:
            self.images = build_hr_images(self.source, images_per_caption=self.images_per_caption, seed=self.seed)
        if not 0 <= self.val_images < len(self.images):
            raise ValueError(f"val_images={self.val_images} must be in [0, {len(self.images)}) for {self.source!r}")
        backbone = self.trainer.lightning_module.backbone
        crop = None
        if self.crop_scale is not None:
            cfg = backbone.preprocess_cfg
            crop = RandomCropTransform(cfg.size, self.crop_scale, cfg.mean, cfg.std)
        split = len(self.images) - self.val_images
        self.train_set = LRViewsDataset(self.images, backbone.preprocess, self.buckets, self.seed, range(split), crop)
        self.val_set = LRViewsDataset(
            self.images, backbone.preprocess, self.buckets, self.seed, range(split, len(self.images)), crop
        )

    @property
    def captions(self) -> list[str]:
        """Caption texts of the source (after :meth:`setup`)."""
        return self.images.captions

    def _loader(self, dataset: LRViewsDataset, shuffle: bool) -> DataLoader:
        group = self.caption_group if shuffle else 1
        captions = [self.images.caption_id(i) for i in dataset.indices] if group > 1 else None
        sampler = EpochBatchSampler(
            len(dataset),
            self.batch_size,
            self.trainer.global_rank,
            self.trainer.world_size,
            self.seed,
            shuffle,
            captions=captions,
            caption_group=group,
        )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            drop_last=True,
            persistent_workers=False,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled, rank-sliced global batches of whole caption groups (see :class:`EpochBatchSampler`)."""
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        """The held-out images in order (empty list when ``val_images`` is 0)."""
        return self._loader(self.val_set, shuffle=False) if self.val_images else []

    def test_dataloader(self) -> DataLoader | list:
        """Same as :meth:`val_dataloader`."""
        return self.val_dataloader()
