"""The dataset registry: name/spec -> :class:`ZeroShotDataset`.

Spec forms accepted by :func:`build_dataset`:

* a registered name -- the 15 canonical names (``"dtd"``, ``"imagenet-a"``, ...; see
  :data:`lr0fm.catalog.DATASETS`), the toy world's ``toy-*`` tasks, or any name a plug-in registers with
  :func:`register_dataset`; ``root`` is the directory holding the dataset (:mod:`lr0fm.datasets.layouts`
  lists the layouts);
* ``SCHEME:/path`` with a registered scheme -- ``folder:/path`` (a custom image folder,
  :mod:`lr0fm.datasets.folder`) and ``wds:/path`` (CLIP_benchmark webdataset shards,
  :mod:`lr0fm.datasets.webdataset`); more with :func:`register_dataset_scheme`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lr0fm.catalog import DATASETS as CANONICAL
from lr0fm.datasets.base import DatasetError, ZeroShotDataset
from lr0fm.registry import Registry

#: Builds a dataset from its root directory (the test split).
Builder = Callable[[Path | None], ZeroShotDataset]
#: Downloads a dataset into its root directory.
Downloader = Callable[[Path], None]
#: Builds a dataset from a scheme's path and a split name.
SchemeBuilder = Callable[[Path, str], ZeroShotDataset]

TEST_SPLIT = "test"


def _check_name(name: str) -> None:
    if ":" in name:
        raise ValueError(f"dataset name {name!r} may not contain ':' (reserved for SCHEME:/path specs)")


#: Registered datasets: builder, with ``download`` and ``needs_root`` metadata.
DATASETS: Registry[Builder] = Registry(
    "dataset", error=DatasetError, check_name=_check_name, hint="or use folder:/path or wds:/path"
)
#: Registered ``SCHEME:/path`` forms.
SCHEMES: Registry[SchemeBuilder] = Registry("dataset scheme", error=DatasetError)


def register_dataset(
    name: str, *, download: Downloader | None = None, needs_root: bool = True
) -> Callable[[Builder], Builder]:
    """Decorator registering ``builder(root) -> ZeroShotDataset`` under ``name`` (replacing an earlier one).

    Args:
        name: registry name; must not contain ``":"``.
        download: optional ``download(root)`` fetching the data into ``root`` (used with ``download=True``).
        needs_root: whether the builder reads files under a root directory (``False`` for generated data).

    """
    return DATASETS.register(name, download=download, needs_root=needs_root)


def register_dataset_scheme(scheme: str) -> Callable[[SchemeBuilder], SchemeBuilder]:
    """Decorator registering ``builder(path, split) -> ZeroShotDataset`` for specs ``SCHEME:/path``."""
    return SCHEMES.register(scheme)


def list_datasets(pattern: str = "*") -> list[str]:
    """Return the registered names matching the fnmatch ``pattern``; canonical ones first, in paper order."""
    names = DATASETS.names(pattern)
    return [n for n in CANONICAL if n in names] + sorted(n for n in names if n not in CANONICAL)


def torchvision_download(class_name: str, **kwargs: object) -> Downloader:
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
            f"or --data_root ROOT, or root= in Python.{layout}"
        )
    return Path(root).expanduser()


def _split_scheme(spec: str) -> tuple[str, str] | None:
    scheme, sep, path = spec.partition(":")
    return (scheme, path) if sep and scheme in SCHEMES else None


def prepare_dataset(spec: str, root: str | Path | None = None, download: bool = False) -> None:
    """Run the download step (for ``LightningDataModule.prepare_data``): fetch the data if asked and possible.

    Registered datasets with a downloader use it; for the others ``download=True`` cannot fetch anything and
    the data must be placed by hand (the error of :func:`build_dataset` says how). The raw ILSVRC2012
    archives of ``imagenet`` are unpacked here. Scheme specs and generated datasets need no preparation.

    Raises:
        DatasetError: on an unknown name, a missing root, or a failed download.

    """
    if _split_scheme(spec) is not None:
        return
    entry = DATASETS.entry(spec)
    if not entry.meta["needs_root"]:
        return
    path = _require_root(spec, root)
    if download and entry.meta["download"] is not None:
        path.mkdir(parents=True, exist_ok=True)
        entry.meta["download"](path)


def build_dataset(
    spec: str, root: str | Path | None = None, *, download: bool = False, split: str = TEST_SPLIT
) -> ZeroShotDataset:
    """Build the zero-shot evaluation dataset named by ``spec`` (forms in the module docstring).

    Args:
        spec: a registered name or ``SCHEME:/path``.
        root: the directory holding a registered dataset (a scheme spec without a path uses it as its path).
        download: download the dataset first where torchvision can (see :func:`prepare_dataset`).
        split: the split to read; only ``"test"`` for registered datasets and folders, any shard
            sub-folder for ``wds:``.

    Raises:
        DatasetError: on an unknown name (with close matches), a missing or malformed dataset (with the
            expected layout and how to obtain it).

    """
    scheme = _split_scheme(spec)
    if scheme is not None:
        name, path = scheme
        if not path:
            if root is None:
                raise DatasetError(f"spec {spec!r} names no path; write {name}:/path/to/data.")
            path = str(root)
        return SCHEMES.get(name)(Path(path).expanduser(), split)
    if split != TEST_SPLIT:
        raise DatasetError(f"dataset {spec!r} provides only the {TEST_SPLIT!r} split, not {split!r}.")
    entry = DATASETS.entry(spec)
    if not entry.meta["needs_root"]:
        return entry.obj(None if root is None else Path(root))
    prepare_dataset(spec, root, download)
    return entry.obj(_require_root(spec, root))
