"""Quick zero-shot evaluation on the toy tasks, following the LR0.FM low-resolution protocol exactly.

Low resolution ``n``: PIL bicubic resize so that the shorter side is ``n``, then the model's own
preprocessing (bicubic resize to 64, centre crop, normalise). HR (``resolution=None``): preprocessing alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from lr0fm.datasets.base import ZeroShotDataset
from lr0fm.models.base import Backbone
from lr0fm.toy.datasets import TOY_DATASETS, build_toy_dataset


def downsample_shortest(image: Image.Image, n: int) -> Image.Image:
    """Bicubic PIL resize so that the shorter side becomes ``n`` (aspect ratio kept)."""
    w, h = image.size
    scale = n / min(w, h)
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC)


@torch.no_grad()
def text_classifier(backbone: Backbone, classnames: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    """Per-class mean of the L2-normalised template embeddings, re-normalised: [num_classes, dim]."""
    rows = []
    for name in classnames:
        emb = F.normalize(backbone.encode_text(backbone.tokenizer([t.format(c=name) for t in templates])), dim=-1)
        rows.append(F.normalize(emb.mean(0), dim=-1))
    return torch.stack(rows)


@torch.no_grad()
def zero_shot_accuracy(
    backbone: Backbone,
    dataset: ZeroShotDataset,
    resolution: int | None = None,
    batch_size: int = 200,
    classifier: torch.Tensor | None = None,
) -> float:
    """Top-1 zero-shot accuracy (%) of ``backbone`` on ``dataset`` at ``resolution`` (``None`` = HR).

    Args:
        backbone: the model (its ``preprocess`` is the HR preprocessing).
        dataset: a zero-shot dataset.
        resolution: LR side ``n`` (downsample, then preprocess), or ``None`` for native resolution.
        batch_size: images per forward pass.
        classifier: precomputed :func:`text_classifier` (computed when ``None``).

    """
    backbone.eval()
    if classifier is None:
        classifier = text_classifier(backbone, dataset.classnames, dataset.templates)
    correct = 0
    for start in range(0, len(dataset), batch_size):
        images, labels = [], []
        for i in range(start, min(start + batch_size, len(dataset))):
            image, label = dataset[i]
            if resolution is not None:
                image = downsample_shortest(image, resolution)
            images.append(backbone.preprocess(image))
            labels.append(label)
        feats = F.normalize(backbone.encode_image(torch.stack(images)), dim=-1)
        correct += int(((feats @ classifier.t()).argmax(1) == torch.tensor(labels)).sum())
    return 100.0 * correct / len(dataset)


def evaluate_toy(
    backbone: Backbone,
    tasks: Sequence[str] = TOY_DATASETS,
    resolutions: Sequence[int | None] = (None, 32, 16, 8),
    num_per_class: int = 100,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Top-1 (%) per task and resolution: ``{task: {"hr" | "32" | ...: accuracy}}``."""
    results: dict[str, dict[str, float]] = {}
    for task in tasks:
        dataset = build_toy_dataset(task, num_per_class=num_per_class, seed=seed)
        classifier = text_classifier(backbone, dataset.classnames, dataset.templates)
        results[task] = {
            ("hr" if r is None else str(r)): zero_shot_accuracy(backbone, dataset, r, classifier=classifier)
            for r in resolutions
        }
    return results
