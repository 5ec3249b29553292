"""The toy world as an lr0fm plug-in: the example to copy for adding backbones, datasets or training sources.

A plug-in is a module named in the ``lr0fm.plugins`` entry-point group of its package's metadata (here,
lr0fm's own ``pyproject.toml``: ``[project.entry-points."lr0fm.plugins"] toy = "lr0fm.toy.plugin"``).
lr0fm imports it the first time a registry is read, so registering must stay cheap: the loaders below
import the toy world only when they are called.

It registers:

* the backbone ``toyclip`` (:func:`lr0fm.models.families.register_backbone`);
* the zero-shot datasets ``toy-color``, ``toy-texture``, ``toy-size``, ``toy-shape``
  (:func:`lr0fm.datasets.register_dataset`, generated, so no root directory);
* the LR-TK0 training source ``toy`` / ``toy:N`` (:func:`lr0fm.lrtk0.sources.register_source`).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from lr0fm.datasets.registry import register_dataset
from lr0fm.lrtk0.sources import HRImages, register_source
from lr0fm.models.families import register_backbone

#: The toy zero-shot tasks (also in :data:`lr0fm.toy.datasets.TOY_DATASETS`, checked by the tests).
TOY_DATASET_NAMES = ("toy-color", "toy-texture", "toy-size", "toy-shape")


@register_backbone("toyclip")
def toyclip(device: str = "cpu") -> Any:
    """The shipped tiny CLIP of the toy world."""
    from lr0fm.toy.backbone import load_toyclip

    return load_toyclip(device=device)


def _toy_dataset(name: str, root: Path | None) -> Any:
    from lr0fm.toy.datasets import build_toy_dataset

    return build_toy_dataset(name, root)


for _name in TOY_DATASET_NAMES:
    register_dataset(_name, needs_root=False)(partial(_toy_dataset, _name))


@register_source("toy")
def toy(argument: str, *, images_per_caption: int | None = None, seed: int = 0) -> HRImages:
    """The toy world's ``lrtk0`` split: ``toy`` (10,000 images) or ``toy:N``."""
    from lr0fm.toy.lrtk0_data import toy_source

    return toy_source(argument, images_per_caption=images_per_caption, seed=seed)
