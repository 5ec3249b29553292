"""The dataset registry: name/spec -> :class:`ZeroShotDataset`.

Spec forms accepted by :func:`build_dataset`:

* a canonical name (``"dtd"``, ``"imagenet-a"``, ...; see :data:`lr0fm.catalog.DATASETS`) or any name
  added with :func:`register_dataset` -- ``root`` is the directory holding the dataset in torchvision's
  layout (:mod:`lr0fm.datasets.layouts` lists them);
* ``"folder:/path"`` -- a custom image folder (:mod:`lr0fm.datasets.folder`);
* ``"wds:/path"`` -- CLIP_benchmark webdataset shards (:mod:`lr0fm.datasets.webdataset`);
* ``"toy-..."`` -- the tiny generated datasets of :mod:`lr0fm.toy.datasets`.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lr0fm.catalog import DATASETS, did_you_mean
from lr0fm.datasets import imagenet, transfer
from lr0fm.datasets.base import DatasetError, ZeroShotDataset

#: Builds a dataset from its root directory (only the ``"test"`` split is registered for real datasets).
Builder = Callable[[Path], ZeroShotDataset]
#: Downloads a dataset into its root directory.
Downloader = Callable[[Path], None]

TEST_SPLIT = "test"
TOY_PREFIX = "toy-"


@dataclass(frozen=True)
class _Entry:
    build: Builder
    download: Downloader | None


_REGISTRY: dict[str, _Entry] = {}


def register_dataset(name: str, builder: Builder, download: Downloader | None = None) -> None:
    """Register (or replace) a dataset under ``name``.

    Args:
        name: registry name; must not contain ``":"`` nor start with ``"toy-"`` (reserved spec forms).
        builder: ``builder(root) -> ZeroShotDataset`` reading the test split found under ``root``.
        download: optional ``download(root)`` fetching the data into ``root`` (used with ``download=True``).

    """
    if ":" in name or name.startswith(TOY_PREFIX):
        raise ValueError(f"dataset name {name!r} may not contain ':' nor start with {TOY_PREFIX!r}")
    _REGISTRY[name] = _Entry(builder, download)


def list_datasets(pattern: str = "*") -> list[str]:
    """Return the registered names matching the fnmatch ``pattern``; canonical ones first, in paper order."""
    canonical = [n for n in DATASETS if n in _REGISTRY]
    names = canonical + sorted(n for n in _REGISTRY if n not in DATASETS)
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def _torchvision_download(class_name: str, **kwargs: object) -> Downloader:
    """Make a downloader calling ``torchvision.datasets.<class_name>(root, download=True, **kwargs)``."""

    def download(root: Path) -> None:
        import torchvision.datasets

        try:
            getattr(torchvision.datasets, class_name)(str(root), download=True, **kwargs)
        except (RuntimeError, OSError) as exc:
            raise DatasetError(f"torchvision's {class_name} download into {str(root)!r} failed: {exc}") from exc

    return download


def _require_root(name: str, root: str | Path | None) -> Path:
    if root is None:
        from lr0fm.datasets.layouts import LAYOUTS

        tree, how = LAYOUTS.get(name, ("", ""))
        layout = (
            f"\nExpected layout under ROOT:\n  {tree.replace(chr(10), chr(10) + '  ')}\nTo obtain it: {how}."
            if tree
            else ""
        )
        raise DatasetError(
            f"dataset {name!r} needs the directory that holds it: pass {name}=ROOT (lr0fm benchmark --dataset) "
            f"or --data-root ROOT, or root= in Python.{layout}"
        )
    return Path(root).expanduser()


def _spec_path(spec: str, prefix: str, root: str | Path | None) -> Path:
    path = spec[len(prefix) :]
    if not path:
        if root is None:
            raise DatasetError(f"spec {spec!r} names no path; write {prefix}/path/to/data.")
        path = str(root)
    return Path(path).expanduser()


def _check_split(spec: str, split: str) -> None:
    if split != TEST_SPLIT:
        raise DatasetError(f"dataset {spec!r} provides only the {TEST_SPLIT!r} split, not {split!r}.")


def _build_toy(name: str, root: str | Path | None) -> ZeroShotDataset:
    try:
        toy = importlib.import_module("lr0fm.toy.datasets")
    except ModuleNotFoundError as exc:
        raise DatasetError(
            f"toy dataset {name!r} needs the module lr0fm.toy.datasets, which is not installed ({exc})."
        ) from exc
    return toy.build_toy_dataset(name, root=root)


def _entry(name: str) -> _Entry:
    if name not in _REGISTRY:
        raise DatasetError(
            f"unknown dataset {name!r}.{did_you_mean(name, list(_REGISTRY))} Known datasets: "
            f"{', '.join(list_datasets())}; or use folder:/path, wds:/path or a toy-* name."
        )
    return _REGISTRY[name]


def prepare_dataset(spec: str, root: str | Path | None = None, download: bool = False) -> None:
    """Run the download step (for ``LightningDataModule.prepare_data``): fetch the data if asked and possible.

    Canonical datasets with a torchvision download use it; for the others ``download=True`` cannot fetch
    anything and the data must be placed by hand (the error of :func:`build_dataset` says how). The raw
    ILSVRC2012 archives of ``imagenet`` are unpacked here. ``folder:``, ``wds:`` and toy specs need no
    preparation.

    Raises:
        DatasetError: on an unknown name, a missing root, or a failed download.

    """
    if spec.startswith(("folder:", "wds:", TOY_PREFIX)):
        return
    entry = _entry(spec)
    path = _require_root(spec, root)
    if download and entry.download is not None:
        path.mkdir(parents=True, exist_ok=True)
        entry.download(path)


def build_dataset(
    spec: str, root: str | Path | None = None, *, download: bool = False, split: str = TEST_SPLIT
) -> ZeroShotDataset:
    """Build the zero-shot evaluation dataset named by ``spec`` (forms in the module docstring).

    Args:
        spec: a registered name, ``folder:/path``, ``wds:/path`` or a ``toy-*`` name.
        root: the directory holding a registered dataset (ignored by ``folder:``/``wds:`` with a path).
        download: download the dataset first where torchvision can (see :func:`prepare_dataset`).
        split: the split to read; only ``"test"`` for registered datasets and folders, any shard
            sub-folder for ``wds:``.

    Raises:
        DatasetError: on an unknown name (with close matches), a missing or malformed dataset (with the
            expected layout and how to obtain it).

    """
    if spec.startswith("wds:"):
        from lr0fm.datasets.webdataset import build_wds_dataset

        return build_wds_dataset(_spec_path(spec, "wds:", root), split)
    _check_split(spec, split)
    if spec.startswith("folder:"):
        from lr0fm.datasets.folder import build_folder_dataset

        return build_folder_dataset(_spec_path(spec, "folder:", root))
    if spec.startswith(TOY_PREFIX):
        return _build_toy(spec, root)
    entry = _entry(spec)
    prepare_dataset(spec, root, download)
    return entry.build(_require_root(spec, root))


register_dataset("imagenet", imagenet.build_imagenet, imagenet.unpack_raw_imagenet)
register_dataset("imagenet-a", imagenet.build_imagenet_a)
register_dataset("imagenet-v2", imagenet.build_imagenet_v2)
register_dataset("imagenet-r", imagenet.build_imagenet_r)
register_dataset("imagenet-sketch", imagenet.build_imagenet_sketch)
register_dataset("caltech101", transfer.build_caltech101, _torchvision_download("Caltech101"))
register_dataset("dtd", transfer.build_dtd, _torchvision_download("DTD", split="test", partition=1))
register_dataset("food101", transfer.build_food101, _torchvision_download("Food101", split="test"))
register_dataset("sun397", transfer.build_sun397, _torchvision_download("SUN397"))
register_dataset("stanford-cars", transfer.build_stanford_cars)
register_dataset(
    "fgvc-aircraft",
    transfer.build_fgvc_aircraft,
    _torchvision_download("FGVCAircraft", split="test", annotation_level="variant"),
)
register_dataset("oxford-pets", transfer.build_oxford_pets, _torchvision_download("OxfordIIITPet", split="test"))
register_dataset("flowers102", transfer.build_flowers102, _torchvision_download("Flowers102", split="test"))
register_dataset("eurosat", transfer.build_eurosat, _torchvision_download("EuroSAT"))
register_dataset("ucf101", transfer.build_ucf101)
