"""Data side of the benchmark: one decode per image, every resolution from it, exact DDP sharding."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from lr0fm.datasets.base import CorruptImageError, ZeroShotDataset
from lr0fm.protocols import ViewTransform


class MultiResolutionDataset(Dataset):
    """Wraps a :class:`ZeroShotDataset`: item = (``[R, 3, H, W]`` views, label, index, corrupt).

    An undecodable image never raises inside a DataLoader worker (where the error would come back as a
    wrapped traceback): it yields ``None`` views and ``corrupt = (path, reason)``, and the main process
    decides with :func:`check_corrupt` whether to stop or skip.
    """

    def __init__(self, dataset: ZeroShotDataset, transform: ViewTransform):
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        try:
            image, label = self.dataset[index]
        except CorruptImageError as exc:
            return None, -1, index, (exc.path, exc.reason)
        return self.transform(image), label, index, None


def collate(batch):
    """Stack the decodable samples; return ``(views, labels, indices, corrupt)``.

    ``corrupt`` lists ``(path, reason)`` of undecodable samples; the tensors are ``None`` when the whole
    batch was undecodable.
    """
    kept = [b for b in batch if b[0] is not None]
    corrupt = [b[3] for b in batch if b[0] is None]
    if not kept:
        return None, None, None, corrupt
    views = torch.stack([b[0] for b in kept])
    labels = torch.tensor([b[1] for b in kept], dtype=torch.long)
    indices = torch.tensor([b[2] for b in kept], dtype=torch.long)
    return views, labels, indices, corrupt


def check_corrupt(corrupt: list[tuple[str, str]], skip_corrupt: bool) -> int:
    """Raise :class:`CorruptImageError` for the first undecodable file unless skipping; return the count."""
    if corrupt and not skip_corrupt:
        raise CorruptImageError(*corrupt[0])
    return len(corrupt)


class ShardSampler(Sampler[int]):
    """Deterministic strided sharding ``rank::world_size`` with no padding and no duplicates.

    Every sample is seen by exactly one rank, so summed counts over ranks equal a single-process run.
    """

    def __init__(self, length: int, rank: int = 0, world_size: int = 1) -> None:
        self.length, self.rank, self.world_size = length, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world_size))


def make_loader(
    dataset: MultiResolutionDataset,
    *,
    batch_size: int,
    num_workers: int,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader over this rank's shard (persistent workers, optional pinned memory)."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=ShardSampler(len(dataset), rank, world_size),
        num_workers=num_workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        prefetch_factor=4 if num_workers > 0 else None,
    )
