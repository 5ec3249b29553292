"""What every model analysis starts from: a backbone (with and without LR tokens), some images, their LR views.

Everything is loaded with the code the benchmark uses -- :class:`~lr0fm.benchmark.sweep.BenchmarkModel` (the
backbone and its ``--lr_tokens``), :func:`lr0fm.datasets.build_dataset`, the LR protocol's
:class:`~lr0fm.protocols.ViewTransform` (the exact views the benchmark scores) and the zero-shot text
classifier -- so an analysis looks at the very inputs and embeddings behind the results table.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lr0fm.benchmark.outputs import slug
from lr0fm.datasets.base import ZeroShotDataset
from lr0fm.models.base import Backbone
from lr0fm.protocols import HR, ViewTransform, get_protocol, parse_resolutions

#: the two variants of a backbone an analysis compares when LR tokens are given
BASE, WITH_TOKENS = "base", "lr-tokens"
#: how each variant is named in figures
VARIANT_TITLES = {BASE: "without LR tokens", WITH_TOKENS: "with LR tokens"}


def resolve_device(device: str) -> torch.device:
    """``auto`` -> the first CUDA device when there is one, else the CPU; other names as torch reads them.

    Raises:
        ValueError: a CUDA device is asked for on a machine without one, or the name is not a device.

    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"--device {device!r} is not a torch device (use auto, cpu, cuda or cuda:N)") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device!r}: this machine has no CUDA device (use --device cpu or auto)")
    return resolved


def analysis_resolutions(values: Sequence[int | str]) -> list[int | str]:
    """The low resolutions of ``values`` (ascending), then ``"hr"``: HR is every analysis's reference.

    Raises:
        ValueError: no low resolution, or a value that is neither a side in pixels nor ``hr``.

    """
    lows = sorted({r for r in parse_resolutions(list(values)) if r != HR})
    if not lows:
        raise ValueError("--resolutions needs at least one low resolution in px (HR is always added)")
    return [*lows, HR]


def pick_images(dataset: ZeroShotDataset, count: int) -> list[int]:
    """``count`` sample indices spread over the classes: class by class in turn, each class in dataset order.

    Deterministic (no randomness), so a rerun looks at the same images.

    Raises:
        ValueError: ``count`` < 1.

    """
    if count < 1:
        raise ValueError(f"--images must be >= 1, got {count}")
    by_class: dict[int, list[int]] = {}
    for index, (_, label) in enumerate(dataset.samples):
        by_class.setdefault(int(label), []).append(index)
    queues = [by_class[c] for c in sorted(by_class)]
    picked: list[int] = []
    depth = 0
    while len(picked) < count and any(depth < len(q) for q in queues):
        picked += [q[depth] for q in queues if depth < len(q)][: count - len(picked)]
        depth += 1
    return sorted(picked)


@dataclass
class AnalysisModel:
    """A loaded backbone and what an analysis needs around it.

    Attributes:
        spec: the backbone spec as given.
        label: the ``model`` column the benchmark writes for it (spec, plus the token file when given).
        backbone: the backbone in eval mode on :attr:`device`.
        tokens: its LR tokens (``None`` without ``--lr_tokens``), switched off for the base variant.
        device: where it runs.
        protocol: name of the LR protocol whose views are used.
    """

    spec: str
    label: str
    backbone: Backbone
    tokens: nn.Module | None
    device: torch.device
    protocol: str
    _classifiers: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def variants(self) -> list[str]:
        """``["base"]``, plus ``"lr-tokens"`` when tokens are loaded."""
        return [BASE] + ([WITH_TOKENS] if self.tokens is not None else [])

    @contextlib.contextmanager
    def variant(self, name: str) -> Iterator[None]:
        """Context in which the backbone runs as variant ``name`` (tokens off for ``"base"``)."""
        if name == BASE and self.tokens is not None:
            with self.tokens.disabled():
                yield
        else:
            yield

    def transform(self, resolutions: Sequence[int | str]) -> ViewTransform:
        """The protocol's view transform for this backbone: PIL image -> ``[R, 3, S, S]``."""
        return get_protocol(self.protocol).transform(self.backbone, resolutions)

    def classifier(self, dataset: ZeroShotDataset) -> torch.Tensor:
        """The zero-shot text classifier of ``dataset`` (``[classes, dim]``, unit rows, on :attr:`device`)."""
        if dataset.name not in self._classifiers:
            from lr0fm.benchmark.classifier import ClassifierCache

            with torch.no_grad():
                self._classifiers[dataset.name] = ClassifierCache().for_dataset(
                    self.backbone, dataset, device=self.device
                )
        return self._classifiers[dataset.name]

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-norm float32 image embeddings of a batch of model inputs."""
        return F.normalize(self.backbone.encode_image(images.to(self.device)).float(), dim=-1)


@dataclass
class ModelAnalysisInputs:
    """Everything a model analysis (an :data:`lr0fm.analysis.ANALYSES` entry of kind ``"model"``) is called with.

    Attributes:
        model: the loaded backbone.
        dataset: the dataset the images come from.
        resolutions: low resolutions then ``"hr"`` (:func:`analysis_resolutions`).
        images: how many images to look at.
        output: folder of the figures and their ``figures.json`` manifest.
        command: the command that regenerates the figures (recorded in the manifest).
        batch_size: images per forward pass.
        workers: DataLoader workers.
        options: options of one analysis (e.g. ``predictions``, ``perplexity``).
    """

    model: AnalysisModel
    dataset: ZeroShotDataset
    resolutions: list[int | str]
    images: int
    output: Path
    command: str
    batch_size: int = 32
    workers: int = 0
    options: dict[str, Any] = field(default_factory=dict)


def load_model(
    spec: str,
    *,
    lr_tokens: str | None = None,
    device: str = "auto",
    seed: int | None = None,
    protocol: str = "paper",
) -> AnalysisModel:
    """Load a backbone as ``lr0fm benchmark`` does, tokens attached when given.

    Raises:
        ValueError: unknown spec, protocol or device.
        FileNotFoundError: the tokens file does not exist.
        lr0fm.lrtk0.TowerError: the tokens do not fit the backbone.

    """
    from lr0fm.benchmark.sweep import BenchmarkModel

    resolved = resolve_device(device)
    get_protocol(protocol)  # an unknown protocol fails before the model loads
    if lr_tokens is not None and not Path(lr_tokens).is_file():
        raise FileNotFoundError(f"LR tokens file not found: {lr_tokens} (expected a .safetensors from export-tokens)")
    model = BenchmarkModel(spec, seed, lr_tokens)
    backbone = model.load().to(resolved)
    tokens = getattr(backbone, "lr_tokens", None) if lr_tokens else None
    return AnalysisModel(spec, model.label, backbone, tokens, resolved, protocol)


def load_dataset(text: str, data_root: str | None = None) -> ZeroShotDataset:
    """``NAME`` or ``NAME=ROOT`` (as ``lr0fm benchmark --dataset``) -> the dataset.

    Raises:
        lr0fm.datasets.DatasetError: unknown name or missing/malformed files (the message says what is expected).

    """
    from lr0fm.benchmark.runner import split_dataset_arg
    from lr0fm.datasets import build_dataset

    name, root = split_dataset_arg(text, data_root)
    return build_dataset(name, root)


def iter_views(
    model: AnalysisModel,
    dataset: ZeroShotDataset,
    indices: Sequence[int],
    resolutions: Sequence[int | str],
    *,
    batch_size: int = 32,
    workers: int = 0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Batches ``(views [B, R, 3, S, S], labels [B], dataset indices [B])`` of the chosen images.

    The views are the benchmark's (:class:`~lr0fm.benchmark.data.MultiResolutionDataset` with the protocol's
    transform); an undecodable image stops with the error naming it.
    """
    from lr0fm.benchmark.data import MultiResolutionDataset, check_corrupt, make_loader

    chosen = list(indices)
    subset = dataclasses.replace(dataset, samples=[dataset.samples[i] for i in chosen])
    loader = make_loader(
        MultiResolutionDataset(subset, model.transform(resolutions)), batch_size=batch_size, num_workers=workers
    )
    for views, labels, positions, corrupt, _ in loader:
        check_corrupt(corrupt, skip_corrupt=False)
        yield views, labels, torch.tensor([chosen[int(p)] for p in positions], dtype=torch.long)


def figure_name(analysis: str, model_label: str, dataset: str) -> str:
    """A figure's file stem, unique per (analysis, model, dataset) so many runs can share a report folder.

    Only letters, digits, ``.``, ``_`` and ``-``, so the name is a plain relative URL in ``index.html``.
    """
    plain = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{analysis}_{slug(model_label)}_{slug(dataset)}")
    return plain.strip("_")


def to_picture(image: torch.Tensor, normalization: tuple[Sequence[float], Sequence[float]] | None) -> Any:
    """A model input ``[3, H, W]`` as an ``[H, W, 3]`` float32 numpy picture in ``[0, 1]``.

    Args:
        image: the view as the model sees it.
        normalization: the view transform's ``(mean, std)`` (:attr:`ViewTransform.normalization`), or
            ``None`` for an unnormalised view.

    """
    image = image.detach().float().cpu()
    if normalization is not None:
        mean = torch.tensor(list(normalization[0]), dtype=torch.float32).view(3, 1, 1)
        std = torch.tensor(list(normalization[1]), dtype=torch.float32).view(3, 1, 1)
        image = image * std + mean
    return image.clamp(0, 1).permute(1, 2, 0).numpy()


def resolution_label(resolution: int | str) -> str:
    """``16`` -> ``"16 px"``, ``"hr"`` -> ``"HR"``."""
    return "HR" if resolution == HR else f"{resolution} px"
