"""Zero-shot evaluation datasets: the 15 LR0.FM datasets, custom image folders and webdataset shards."""

from lr0fm.datasets.base import CorruptImageError, DatasetError, ZeroShotDataset
from lr0fm.datasets.registry import build_dataset, list_datasets, prepare_dataset, register_dataset

__all__ = [
    "CorruptImageError",
    "DatasetError",
    "ZeroShotDataset",
    "build_dataset",
    "list_datasets",
    "prepare_dataset",
    "register_dataset",
]
