"""Zero-shot evaluation datasets: the 15 LR0.FM datasets, custom image folders and webdataset shards.

Importing the package registers the builtin datasets and schemes (each loader module registers its own
builders with :func:`register_dataset` / :func:`register_dataset_scheme`); plug-ins add theirs the same way.
"""

from lr0fm.datasets import folder, imagenet, transfer, webdataset  # noqa: F401  (they register themselves)
from lr0fm.datasets.base import CorruptImageError, DatasetError, ZeroShotDataset
from lr0fm.datasets.registry import (
    build_dataset,
    list_datasets,
    prepare_dataset,
    register_dataset,
    register_dataset_scheme,
)

__all__ = [
    "CorruptImageError",
    "DatasetError",
    "ZeroShotDataset",
    "build_dataset",
    "list_datasets",
    "prepare_dataset",
    "register_dataset",
    "register_dataset_scheme",
]
