"""Zero-shot text classifiers: class names x prompt templates -> one normalised embedding per class.

Built once per (backbone, class names, templates) and cached on disk by content hash, so every resolution
and every dataset that shares a label space (ImageNet, -V2, -Sketch; -A/-R slice it) reuses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
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


def tensor_sha256(tensor: torch.Tensor, h=None):
    """SHA-256 of a tensor's dtype, shape and bytes (updates ``h`` when given; returns the hash object)."""
    h = h or hashlib.sha256()
    h.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h


def model_fingerprint(backbone: Backbone) -> str:
    """Content hash of the backbone: its spec and every byte of its weights and buffers (LR tokens aside).

    Two models share a classifier only if every parameter is the same (a flipped projection column or a
    fine-tuned text tower gives another key). Hashing runs at about 1 GB/s, once per backbone and process.
    """
    h = hashlib.sha256(backbone.spec.encode())
    for name, tensor in backbone.state_dict().items():
        if name.startswith("lr_tokens."):
            continue
        h.update(name.encode())
        tensor_sha256(tensor, h)
    return h.hexdigest()


def classifier_key(fingerprint: str, classnames: Sequence[str], templates: Sequence[str]) -> str:
    """Content hash of a classifier: backbone fingerprint, class names and templates."""
    payload = json.dumps({"model": fingerprint, "classnames": list(classnames), "templates": list(templates)})
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


#: on-disk format of a cached classifier (a dict; files of other formats are rebuilt)
CACHE_FORMAT = 2


def check_classifier(weights: Any, num_classes: int) -> str | None:
    """Why ``weights`` is not a usable classifier for ``num_classes`` classes (``None``: it is).

    A classifier is a ``[num_classes, D]`` floating tensor of finite, unit-norm rows.
    """
    if not isinstance(weights, torch.Tensor) or not weights.is_floating_point() or weights.ndim != 2:
        return "not a 2-D floating-point tensor"
    if weights.shape[0] != num_classes:
        return f"{weights.shape[0]} rows for {num_classes} classes"
    if not torch.isfinite(weights).all():
        return "non-finite values"
    norms = weights.float().norm(dim=-1)
    if not torch.allclose(norms, torch.ones_like(norms), atol=1e-3):
        return "rows are not unit-norm"
    return None


class ClassifierCache:
    """Build-once text classifiers, kept in memory and (optionally) on disk under ``cache_dir``.

    A disk entry ``KEY.pt`` holds the classifier with its key and the SHA-256 of its bytes; it is used only if
    all three check out (and the tensor is a finite, unit-norm ``[C, D]`` classifier). Anything else -- a file
    of an older format, edited, truncated or made for another model -- is reported and rebuilt.

    Args:
        cache_dir: folder of the disk cache (``None``: memory only).
        log: where the note about a rebuilt file goes.

    Attributes:
        builds: how many classifiers were computed by the text encoder.
        disk_hits: how many were read from the disk cache.
        rejected: disk files that failed the checks (and were rebuilt), with the reason.
    """

    def __init__(self, cache_dir: str | os.PathLike | None = None, log=None) -> None:
        if cache_dir is not None and Path(cache_dir).exists() and not Path(cache_dir).is_dir():
            raise NotADirectoryError(f"classifier cache {cache_dir} is a file; give a folder (or remove the file)")
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.log = log or (lambda message: print(message, file=sys.stderr))
        self.builds = 0
        self.disk_hits = 0
        self.rejected: list[tuple[Path, str]] = []
        self._memory: dict[str, torch.Tensor] = {}
        self._fingerprints: dict[int, str] = {}

    def _fingerprint(self, backbone: Backbone) -> str:
        if id(backbone) not in self._fingerprints:
            self._fingerprints[id(backbone)] = model_fingerprint(backbone)
        return self._fingerprints[id(backbone)]

    def _read(self, path: Path, key: str, num_classes: int) -> torch.Tensor | None:
        """The cached classifier at ``path`` if it passes every check, else ``None`` (and a note)."""
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - unreadable for any reason: rebuild
            reason = f"unreadable ({type(exc).__name__})"
        else:
            if not isinstance(entry, dict) or entry.get("format") != CACHE_FORMAT:
                reason = "not a classifier cache entry of this lr0fm version"
            elif entry.get("key") != key:
                reason = "made for another model, class list or template list"
            else:
                weights = entry.get("weights")
                reason = check_classifier(weights, num_classes)
                if reason is None and tensor_sha256(weights).hexdigest() != entry.get("sha256"):
                    reason = "its contents do not match their checksum (edited or corrupted)"
                if reason is None:
                    return weights
        self.rejected.append((path, reason))
        self.log(f"note: classifier cache file {path} is {reason}; rebuilding it")
        return None

    def get(
        self, backbone: Backbone, classnames: Sequence[str], templates: Sequence[str], *, device="cpu"
    ) -> torch.Tensor:
        """The classifier for (backbone, classnames, templates), built at most once."""
        key = classifier_key(self._fingerprint(backbone), classnames, templates)
        if key in self._memory:
            return self._memory[key].to(device)
        path = self.cache_dir / f"{key}.pt" if self.cache_dir else None
        weights = self._read(path, key, len(classnames)) if path is not None and path.is_file() else None
        if weights is not None:
            self.disk_hits += 1
        else:
            weights = build_classifier(backbone, classnames, templates, device=device).cpu()
            self.builds += 1
            problem = check_classifier(weights, len(classnames))
            if problem is not None:  # e.g. NaN weights: never cache it, never score with it
                raise ValueError(f"the text classifier of {backbone.spec} has {problem}; check the model's weights")
            if path is not None:
                entry = {"format": CACHE_FORMAT, "key": key, "sha256": tensor_sha256(weights).hexdigest()}
                with atomic_path(path) as tmp:
                    torch.save({**entry, "weights": weights}, tmp)
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
