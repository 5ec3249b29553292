"""In-process zero-shot evaluation of a backbone (used inside training loops, e.g. the LR-TK0 callback).

``lr0fm benchmark`` runs :class:`~lr0fm.benchmark.module.ZeroShotModule` through ``Trainer.validate``
(:mod:`lr0fm.benchmark.runner`); this function drives the same module's steps itself, for when a Trainer is
already running and the model is already placed. There is one scoring code path; only its driver differs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.distributed as dist

from lr0fm.benchmark.classifier import ClassifierCache
from lr0fm.benchmark.data import MultiResolutionDataset, make_loader, view_pipeline
from lr0fm.benchmark.module import ZeroShotModule, ZeroShotTask
from lr0fm.datasets.base import ZeroShotDataset
from lr0fm.models.base import Backbone
from lr0fm.protocols import DEFAULT_PROTOCOL, get_protocol, parse_resolutions


def _dist() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@torch.no_grad()
def evaluate_backbone(
    backbone: Backbone,
    datasets: Mapping[str, ZeroShotDataset],
    resolutions: Sequence[int | str],
    *,
    protocol: str = DEFAULT_PROTOCOL,
    model_name: str | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    forward_context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    cache_dir: str | None = None,
    cache: ClassifierCache | None = None,
    skip_corrupt: bool = False,
) -> list[dict]:
    """Zero-shot top-1/top-5 of ``backbone`` on every dataset at every resolution (one pass per dataset).

    The backbone is used as it is (mode and placement are the caller's: call ``backbone.eval()`` first).
    Under ``torch.distributed`` each rank evaluates its own shard (no padding) and the counts are summed
    across ranks, so every rank returns the same records.

    Args:
        backbone: the model.
        datasets: evaluation sets by name.
        resolutions: low resolutions and/or ``"hr"``.
        protocol: the LR protocol (:func:`lr0fm.protocols.list_protocols`).
        model_name: ``model`` column (default: the backbone's spec).
        batch_size: images per batch.
        num_workers: DataLoader workers.
        device: where the classifier and the batches go (the backbone must already be there).
        forward_context: the context of every forward, e.g. a Trainer's ``precision_plugin.forward_context``
            (autocast under mixed precision); default: none.
        cache_dir: text-classifier cache folder.
        cache: an existing classifier cache (overrides ``cache_dir``).
        skip_corrupt: skip undecodable images instead of stopping.

    Returns:
        results-table records: ``model, dataset, resolution, protocol, chain, top1, top5, num_samples,
        num_classes``.
    """
    device = torch.device(device)
    resolutions = parse_resolutions(resolutions)
    cache = cache or ClassifierCache(cache_dir)
    lr_protocol = get_protocol(protocol)
    transform = lr_protocol.transform(backbone, resolutions)
    worker_half, device_half = view_pipeline(transform)
    rank, world = _dist()
    tasks = [ZeroShotTask(name, dataset, resolutions, transform.chain.name) for name, dataset in datasets.items()]
    # the same LightningModule as `lr0fm benchmark`, driven without a Trainer (one is already running)
    module = ZeroShotModule(
        backbone,
        tasks,
        lambda b, dataset, dev: cache.for_dataset(b, dataset, device=dev),
        model_name=model_name or backbone.spec,
        protocol=protocol,
        keep_predictions=False,
        skip_corrupt=skip_corrupt,
        view_makers=[device_half] * len(tasks),
    )
    module.counts.to(device)
    module.classifiers = [cache.for_dataset(backbone, t.dataset, device=device) for t in tasks]
    module.on_validation_epoch_start()
    loader = make_loader(
        [MultiResolutionDataset(task.dataset, worker_half) for task in tasks],
        batch_size=batch_size,
        num_workers=num_workers,
        rank=rank,
        world_size=world,
        pin_memory=device.type == "cuda",
    )
    for step, (views, labels, indices, corrupt, task) in enumerate(loader):
        if views is not None:
            views, labels, indices = (x.to(device, non_blocking=True) for x in (views, labels, indices))
        with forward_context():
            module.validation_step((views, labels, indices, corrupt, task), step)
    module.on_validation_epoch_end()
    return module.records


__all__ = ["evaluate_backbone"]
