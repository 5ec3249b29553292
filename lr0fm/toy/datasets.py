"""Toy zero-shot datasets, one per attribute, built like the real ones (class names, templates, samples).

Each class ``c`` of task ``toy-<attribute>`` holds ``num_per_class`` images of the ``eval`` split whose
``attribute`` equals ``c``; image ``j`` of class ``c`` is rendered from
``default_rng((seed, 2, task_id, c, j))`` (a combination of the ``eval`` split with that value, then its
nuisances). Samples are rendered in memory on access: ``source`` is a :class:`ToySample` key and the
loader is a picklable :class:`ToyRenderer`, so the dataset pickles to DataLoader workers and the order
is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from lr0fm.catalog import did_you_mean
from lr0fm.datasets.base import DatasetError, ZeroShotDataset
from lr0fm.toy.world import ATTRIBUTES, Scene, render, sample_scene, split_combinations, split_id

#: Registered toy dataset name -> the attribute it classifies.
TOY_TASKS: dict[str, str] = {
    "toy-color": "color",
    "toy-texture": "texture",
    "toy-size": "size",
    "toy-shape": "shape",
}
TOY_DATASETS: tuple[str, ...] = tuple(TOY_TASKS)

#: Prompt templates per task (each a phrasing the pre-training captions also use).
TEMPLATES: dict[str, list[str]] = {
    "color": ["a {c} shape", "a photo of a {c} object", "a {c} thing", "an image of a {c} shape"],
    "texture": ["a {c} shape", "a photo of a {c} object", "a {c} thing", "an image of a {c} shape"],
    "size": ["a {c} shape", "a photo of a {c} object", "a {c} thing", "an image of a {c} shape"],
    "shape": ["a {c}", "a photo of a {c}", "there is a {c}", "an image of a {c}"],
}
DEFAULT_NUM_PER_CLASS = 100
DEFAULT_SEED = 0


@dataclass(frozen=True)
class ToySample:
    """Identity of one toy evaluation image (what ``ZeroShotDataset.samples`` stores as source)."""

    task: str
    label: int
    index: int
    seed: int

    def __str__(self) -> str:
        return f"{self.task}/seed{self.seed}/class{self.label}/{self.index:05d}"


@dataclass(frozen=True)
class ToyRenderer:
    """Picklable loader: renders a :class:`ToySample` to a 64x64 RGB PIL image, deterministically."""

    def __call__(self, sample: ToySample) -> Image.Image:
        """Render ``sample`` (same pixels on every call and in every process)."""
        return Image.fromarray(render(self.scene(sample)), mode="RGB")

    def scene(self, sample: ToySample) -> Scene:
        """Return the scene (attributes and nuisances) of ``sample``."""
        attribute = TOY_TASKS[sample.task]
        value = ATTRIBUTES[attribute][sample.label]
        task_id = TOY_DATASETS.index(sample.task)
        rng = np.random.default_rng((sample.seed, split_id("eval"), task_id, sample.label, sample.index))
        combos = [a for a in split_combinations("eval") if getattr(a, attribute) == value]
        return sample_scene(combos[int(rng.integers(len(combos)))], rng)


def build_toy_dataset(
    name: str,
    root: str | None = None,
    *,
    num_per_class: int = DEFAULT_NUM_PER_CLASS,
    seed: int = DEFAULT_SEED,
) -> ZeroShotDataset:
    """Build the toy zero-shot dataset ``name`` (one of :data:`TOY_DATASETS`).

    Args:
        name: ``toy-color``, ``toy-texture``, ``toy-size`` or ``toy-shape`` (the shipped tiny CLIP gets
            only 32 % on shape, chance 25 %: a patch-8 ViT barely learns it on a CPU budget).
        root: ignored (toy images are rendered, nothing is read from disk); accepted so the registry can
            call every builder alike.
        num_per_class: images per class.
        seed: world seed of the images (the default gives the reference evaluation set).

    Returns:
        A :class:`ZeroShotDataset` ordered class by class, image by image.

    Raises:
        DatasetError: for an unknown name or a non-positive ``num_per_class``.

    """
    del root  # rendered in memory
    if name not in TOY_TASKS:
        raise DatasetError(
            f"unknown toy dataset {name!r}; expected one of {', '.join(TOY_DATASETS)}."
            + did_you_mean(name, TOY_DATASETS)
        )
    if num_per_class < 1:
        raise DatasetError(f"num_per_class must be a positive number of images per class, got {num_per_class}")
    attribute = TOY_TASKS[name]
    classnames = list(ATTRIBUTES[attribute])
    samples = [
        (ToySample(name, label, j, seed), label) for label in range(len(classnames)) for j in range(num_per_class)
    ]
    return ZeroShotDataset(
        name=name,
        classnames=classnames,
        templates=list(TEMPLATES[attribute]),
        samples=samples,
        loader=ToyRenderer(),
        extra={"attribute": attribute, "split": "eval", "seed": seed, "native_size": 64},
    )
