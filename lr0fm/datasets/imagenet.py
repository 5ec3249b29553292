"""Loaders of ImageNet and its variants -V2, -A, -R and -Sketch, all scored with ImageNet's classifier.

ImageNet-A and -R cover 200 of the 1000 classes: their labels index their own 200-name list and
``class_subset`` gives the position of each of those classes in ImageNet's 1000-class classifier.
"""

from __future__ import annotations

from pathlib import Path

from lr0fm.datasets.base import DatasetError, ZeroShotDataset, load_image
from lr0fm.datasets.layouts import require
from lr0fm.datasets.registry import register_dataset
from lr0fm.datasets.resources import classnames, packaged_lines, templates
from lr0fm.datasets.scan import scan_class_folders

#: The raw ILSVRC2012 archives torchvision.datasets.ImageNet unpacks into ``val/<wnid>/``.
RAW_ARCHIVES = ("ILSVRC2012_img_val.tar", "ILSVRC2012_devkit_t12.tar.gz")


def imagenet_wnids() -> list[str]:
    """Return the 1000 ImageNet-1k WordNet ids in label order."""
    return list(packaged_lines("imagenet", "wnids.txt"))


def _dataset(
    name: str,
    samples: list[tuple[str, int]],
    class_subset: list[int] | None = None,
    parent_classifier: str | None = None,
) -> ZeroShotDataset:
    return ZeroShotDataset(
        name, classnames(name), templates(name), samples, load_image, class_subset, parent_classifier
    )


def unpack_raw_imagenet(root: Path) -> None:
    """Unpack the raw ILSVRC2012 validation archives in ``root`` into ``root/val/<wnid>/`` via torchvision.

    Does nothing when ``root/val`` exists or the archives are absent.

    Raises:
        DatasetError: when torchvision rejects the archives (wrong checksum, truncated file).

    """
    if (root / "val").is_dir() or not all((root / name).is_file() for name in RAW_ARCHIVES):
        return
    from torchvision.datasets import ImageNet

    try:
        ImageNet(str(root), split="val")
    except RuntimeError as exc:
        raise DatasetError(f"imagenet: could not unpack the ILSVRC2012 archives in {str(root)!r}: {exc}") from exc


@register_dataset("imagenet", download=unpack_raw_imagenet)
def build_imagenet(root: Path) -> ZeroShotDataset:
    """ImageNet-1k validation set (torchvision's ``val/<wnid>/`` layout)."""
    unpack_raw_imagenet(root)
    require("imagenet", root, root / "val")
    wnids = imagenet_wnids()
    samples = scan_class_folders(root / "val", {w: i for i, w in enumerate(wnids)}, "imagenet")
    return _dataset("imagenet", samples)


@register_dataset("imagenet-v2")
def build_imagenet_v2(root: Path) -> ZeroShotDataset:
    """ImageNet-V2 matched-frequency: folders named by ImageNet class index ``0``..``999``."""
    base = root / "imagenetv2-matched-frequency-format-val"
    require("imagenet-v2", root, base)
    samples = scan_class_folders(base, {str(i): i for i in range(1000)}, "imagenet-v2")
    return _dataset("imagenet-v2", samples, parent_classifier="imagenet")


@register_dataset("imagenet-sketch")
def build_imagenet_sketch(root: Path) -> ZeroShotDataset:
    """ImageNet-Sketch: ``sketch/<wnid>/`` folders of ImageNet's 1000 classes."""
    require("imagenet-sketch", root, root / "sketch")
    wnids = imagenet_wnids()
    samples = scan_class_folders(root / "sketch", {w: i for i, w in enumerate(wnids)}, "imagenet-sketch")
    return _dataset("imagenet-sketch", samples, parent_classifier="imagenet")


def subset_indices(name: str) -> list[int]:
    """Positions of the 200 classes of ``imagenet-a`` / ``imagenet-r`` in ImageNet's 1000-class classifier."""
    position = {w: i for i, w in enumerate(imagenet_wnids())}
    return [position[w] for w in packaged_lines(name, "wnids.txt")]


def _build_subset(name: str, root: Path) -> ZeroShotDataset:
    base = root / name
    require(name, root, base)
    wnids = packaged_lines(name, "wnids.txt")
    samples = scan_class_folders(base, {w: i for i, w in enumerate(wnids)}, name)
    return _dataset(name, samples, class_subset=subset_indices(name), parent_classifier="imagenet")


@register_dataset("imagenet-a")
def build_imagenet_a(root: Path) -> ZeroShotDataset:
    """ImageNet-A: ``imagenet-a/<wnid>/`` folders of 200 ImageNet classes."""
    return _build_subset("imagenet-a", root)


@register_dataset("imagenet-r")
def build_imagenet_r(root: Path) -> ZeroShotDataset:
    """ImageNet-R: ``imagenet-r/<wnid>/`` folders of 200 ImageNet classes."""
    return _build_subset("imagenet-r", root)
