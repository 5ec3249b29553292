"""Zero-shot text classifiers: class names x prompt templates -> one normalised embedding per class.

Built once per (backbone, class names, templates) and cached on disk by content hash, so every resolution
and every dataset that shares a label space (ImageNet, -V2, -Sketch; -A/-R slice it) reuses it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from open_clip import build_zero_shot_classifier

from lr0fm.atomic import atomic_path
from lr0fm.datasets.base import ZeroShotDataset
from lr0fm.models.base import Backbone


class _TextTower:
    """The face of a :class:`Backbone` that open_clip's ``build_zero_shot_classifier`` calls."""

    def __init__(self, backbone: Backbone) -> None:
        self.backbone = backbone

    def encode_text(self, tokens: Any, normalize: bool = False) -> torch.Tensor:
        embeddings = self.backbone.encode_text(tokens).float()
        return F.normalize(embeddings, dim=-1) if normalize else embeddings


#: prompts (classes x templates) from which a classifier build shows a progress bar (ImageNet: 1000 x 80)
PROGRESS_PROMPTS = 10_000


@torch.no_grad()
def build_classifier(
    backbone: Backbone,
    classnames: Sequence[str],
    templates: Sequence[str],
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 256,
) -> torch.Tensor:
    """CLIP's zero-shot classifier, built by open_clip's ``build_zero_shot_classifier``.

    Per class: normalise each template's text embedding (in fp32), average, renormalise.

    Args:
        backbone: the model (its tokenizer and text encoder).
        classnames: one name per class.
        templates: prompts with ``{c}`` where the class name goes.
        device: where the result goes.
        batch_size: prompts per text forward (whole classes at a time).

    Large class sets (at least :data:`PROGRESS_PROMPTS` prompts) show a progress bar on stderr.

    Returns:
        ``[num_classes, dim]`` float32 tensor on ``device``.
    """
    prompts = [lambda c, t=t: t.format(c=c) for t in templates]  # lr0fm templates name the slot {c}
    weights = build_zero_shot_classifier(
        _TextTower(backbone),
        backbone.tokenizer,
        list(classnames),
        prompts,
        num_classes_per_batch=max(1, batch_size // len(templates)),
        device=backbone.device,
        use_tqdm=len(classnames) * len(templates) >= PROGRESS_PROMPTS,
    )
    return weights.t().contiguous().to(device)


def model_fingerprint(backbone: Backbone) -> str:
    """A cheap content fingerprint of the backbone's weights (spec, shapes and per-tensor sums; LR tokens aside)."""
    h = hashlib.sha256(backbone.spec.encode())
    for name, tensor in backbone.state_dict().items():
        if name.startswith("lr_tokens."):
            continue
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        if tensor.is_floating_point() or tensor.dtype in (torch.int64, torch.int32):
            stats = torch.stack([tensor.double().sum(), tensor.double().abs().sum()])
            h.update(stats.cpu().numpy().tobytes())
    return h.hexdigest()


def classifier_key(fingerprint: str, classnames: Sequence[str], templates: Sequence[str]) -> str:
    """Content hash of a classifier: backbone fingerprint, class names and templates."""
    payload = json.dumps({"model": fingerprint, "classnames": list(classnames), "templates": list(templates)})
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


class ClassifierCache:
    """Build-once text classifiers, kept in memory and (optionally) on disk under ``cache_dir``.

    Attributes:
        builds: how many classifiers were computed by the text encoder.
        disk_hits: how many were read from the disk cache.
    """

    def __init__(self, cache_dir: str | os.PathLike | None = None) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.builds = 0
        self.disk_hits = 0
        self._memory: dict[str, torch.Tensor] = {}
        self._fingerprints: dict[int, str] = {}

    def _fingerprint(self, backbone: Backbone) -> str:
        if id(backbone) not in self._fingerprints:
            self._fingerprints[id(backbone)] = model_fingerprint(backbone)
        return self._fingerprints[id(backbone)]

    def get(
        self, backbone: Backbone, classnames: Sequence[str], templates: Sequence[str], *, device="cpu"
    ) -> torch.Tensor:
        """The classifier for (backbone, classnames, templates), built at most once."""
        key = classifier_key(self._fingerprint(backbone), classnames, templates)
        if key in self._memory:
            return self._memory[key].to(device)
        path = self.cache_dir / f"{key}.pt" if self.cache_dir else None
        if path is not None and path.is_file():
            weights = torch.load(path, map_location="cpu", weights_only=True)
            self.disk_hits += 1
        else:
            weights = build_classifier(backbone, classnames, templates, device=device).cpu()
            self.builds += 1
            if path is not None:
                with atomic_path(path) as tmp:
                    torch.save(weights, tmp)
        self._memory[key] = weights
        return weights.to(device)

    def for_dataset(self, backbone: Backbone, dataset: ZeroShotDataset, *, device="cpu") -> torch.Tensor:
        """The classifier a dataset is scored with; label-subset datasets slice their parent's classifier."""
        if dataset.class_subset is not None and dataset.parent_classifier:
            from lr0fm.datasets.resources import classnames, templates

            parent = self.get(
                backbone, classnames(dataset.parent_classifier), templates(dataset.parent_classifier), device=device
            )
            return parent[torch.as_tensor(dataset.class_subset, device=parent.device)]
        return self.get(backbone, dataset.classnames, dataset.templates, device=device)
