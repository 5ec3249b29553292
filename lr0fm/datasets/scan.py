"""Listing image files and class folders deterministically (sorted), with actionable errors."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

from lr0fm.catalog import did_you_mean
from lr0fm.datasets.base import DatasetError

#: File suffixes (lower case) treated as images; anything else in a class folder is ignored.
IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})


def list_images(folder: Path) -> list[Path]:
    """Return the image files directly inside ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def class_folders(base: Path) -> list[Path]:
    """Return the sub-folders of ``base`` (hidden ones skipped), sorted by name."""
    return sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan_class_folders(
    base: Path,
    label_of: Mapping[str, int],
    dataset: str,
    *,
    ignore: Collection[str] = (),
) -> list[tuple[str, int]]:
    """List ``(image path, label)`` for every image in ``base/<folder>/``, folders mapped by ``label_of``.

    Args:
        base: directory holding one sub-folder per class.
        label_of: folder name -> label (the index into the dataset's shipped class names).
        dataset: dataset name for error messages.
        ignore: folder names to skip.

    Raises:
        DatasetError: on a folder that names no known class, an empty class folder, or no class folder.

    """
    samples: list[tuple[str, int]] = []
    folders = [f for f in class_folders(base) if f.name not in ignore]
    if not folders:
        raise DatasetError(f"{dataset}: {base} contains no class folders; expected one sub-folder per class.")
    for folder in folders:
        if folder.name not in label_of:
            hint = did_you_mean(folder.name, list(label_of))
            raise DatasetError(f"{dataset}: folder {str(folder)!r} is not a class of {dataset}.{hint}")
        images = list_images(folder)
        if not images:
            raise DatasetError(
                f"{dataset}: class folder {str(folder)!r} holds no images "
                f"({', '.join(sorted(IMAGE_SUFFIXES))}); delete it or add its images."
            )
        samples += [(str(path), label_of[folder.name]) for path in images]
    return samples


def check_files_exist(samples: list[tuple[str, int]], dataset: str, split_file: Path) -> None:
    """Raise a :class:`DatasetError` when files listed by a split file are missing on disk."""
    missing = [path for path, _ in samples if not Path(path).is_file()]
    if missing:
        raise DatasetError(
            f"{dataset}: {len(missing)} of {len(samples)} images listed in {str(split_file)!r} are missing, "
            f"e.g. {missing[0]!r}; the image folder is incomplete, re-extract the dataset archive."
        )
