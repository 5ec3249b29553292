"""Data side of the benchmark: one decode per image, every resolution from it, exact DDP sharding."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from lr0fm.datasets.base import CorruptImageError, ZeroShotDataset
from lr0fm.protocols import ViewTransform

#: turns what a batch carries into ``[B, R, 3, S, S]`` float32 model inputs, on the batch's device
ViewMaker = Callable[..., torch.Tensor]


def view_pipeline(
    transform: ViewTransform, *, on_device: bool = False, preprocess_cfg=None
) -> tuple[Callable, ViewMaker | None]:
    """The two halves of making a task's views: what DataLoader workers run, and what runs on the device.

    * exact (default): the workers run the PIL chain up to uint8 views and the device runs ``ToTensor``'s
      scaling and ``Normalize`` (:meth:`~lr0fm.protocols.chains.ViewTransform.split_uint8`): bit-identical
      to the whole transform in the workers, with a quarter of the bytes to move; a model preprocessing that
      cannot be split keeps the whole transform in the workers (``None`` on the device side);
    * ``on_device``: the workers only decode (:class:`~lr0fm.protocols.device.DecodeRGB`) and the device
      makes every view with torch (:class:`~lr0fm.protocols.device.DeviceViews`, not pixel-identical).

    Args:
        transform: the task's exact multi-resolution transform.
        on_device: make the views on the device (``--views_on_device``).
        preprocess_cfg: the model's preprocessing config (``on_device`` only).
    """
    if on_device:
        from lr0fm.protocols.device import DecodeRGB, DeviceViews

        return DecodeRGB(), DeviceViews(transform, preprocess_cfg)
    split = transform.split_uint8()
    return split if split is not None else (transform, None)


class MultiResolutionDataset(Dataset):
    """Wraps a :class:`ZeroShotDataset`: item = (``[R, 3, H, W]`` views, label, index, corrupt).

    An undecodable image never raises inside a DataLoader worker (where the error would come back as a
    wrapped traceback): it yields ``None`` views and ``corrupt = (path, reason)``, and the main process
    decides with :func:`check_corrupt` whether to stop or skip.
    """

    def __init__(self, dataset: ZeroShotDataset, transform: Callable):
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
    """Stack the decodable samples; return ``(views, labels, indices, corrupt, task)``.

    ``corrupt`` lists ``(path, reason)`` of undecodable samples; the tensors are ``None`` when the whole
    batch was undecodable. ``task`` is the index of the dataset the batch comes from (a batch never mixes
    datasets; 0 for a plain :class:`MultiResolutionDataset`).
    """
    task = batch[0][4] if len(batch[0]) > 4 else 0
    kept = [b for b in batch if b[0] is not None]
    corrupt = [b[3] for b in batch if b[0] is None]
    if not kept:
        return None, None, None, corrupt, task
    items = [b[0] for b in kept]
    # decoded images of different sizes (views made on the device) travel as a list
    views = torch.stack(items) if len({tuple(x.shape) for x in items}) == 1 else items
    labels = torch.tensor([b[1] for b in kept], dtype=torch.long)
    indices = torch.tensor([b[2] for b in kept], dtype=torch.long)
    return views, labels, indices, corrupt, task


class TaskDatasets(Dataset):
    """Several :class:`MultiResolutionDataset` behind one index: item ``(task, i)`` is item ``i`` of dataset ``task``.

    With :class:`TaskBatchSampler`, one DataLoader (one set of workers, kept alive) serves every dataset of a
    backbone, and the workers already decode the next dataset while the model scores the current one.
    """

    def __init__(self, datasets: list[MultiResolutionDataset]) -> None:
        self.datasets = datasets

    def __getitem__(self, key: tuple[int, int]):
        task, index = key
        return (*self.datasets[task][index], task)


class TaskBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches of ``(task, index)``, dataset after dataset, each this rank's strided shard with no padding.

    Every sample is seen by exactly one rank (``index % world_size == rank``), so counts summed over ranks
    equal a single-process run; a batch never mixes datasets.
    """

    def __init__(self, lengths: list[int], batch_size: int, rank: int = 0, world_size: int = 1) -> None:
        self.lengths, self.batch_size, self.rank, self.world_size = lengths, batch_size, rank, world_size

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for task, length in enumerate(self.lengths):
            mine = range(self.rank, length, self.world_size)
            for start in range(0, len(mine), self.batch_size):
                yield [(task, i) for i in mine[start : start + self.batch_size]]

    def __len__(self) -> int:
        return sum(-(-len(range(self.rank, n, self.world_size)) // self.batch_size) for n in self.lengths)


def check_corrupt(corrupt: list[tuple[str, str]], skip_corrupt: bool) -> int:
    """Raise :class:`CorruptImageError` for the first undecodable file unless skipping; return the count."""
    if corrupt and not skip_corrupt:
        raise CorruptImageError(*corrupt[0])
    return len(corrupt)


def make_loader(
    datasets: MultiResolutionDataset | list[MultiResolutionDataset],
    *,
    batch_size: int,
    num_workers: int,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
) -> DataLoader:
    """One DataLoader over this rank's shard of every dataset (persistent workers, optional pinned memory).

    Batches come dataset after dataset and carry the dataset's index (:func:`collate`).
    """
    datasets = datasets if isinstance(datasets, list) else [datasets]
    return DataLoader(
        TaskDatasets(datasets),
        batch_sampler=TaskBatchSampler([len(d) for d in datasets], batch_size, rank, world_size),
        num_workers=num_workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        prefetch_factor=4 if num_workers > 0 else None,
    )
