"""Where LR-TK0's HR training images come from: a registry of sources, one per ``SCHEME:argument`` form.

Builtin sources:

* ``folder:/path`` (or a bare path) -- every image under ``/path``, recursively. The layout of
  ``lr0fm synth`` (``DIR/images/<caption_id:05d>/<image_index:03d>.jpg`` with ``DIR/captions.tsv``) is
  recognised: each caption folder is one caption. Elsewhere the parent folder names the caption.
* ``wds:/path`` -- webdataset ``.tar`` shards under ``/path`` (e.g. ``DIR/webdataset`` of ``lr0fm synth``);
  members ``<key>.jpg|png|webp`` with an optional ``<key>.txt`` caption.

Plug-ins add more with :func:`register_source` (the toy world registers ``toy`` / ``toy:N``).
"""

from __future__ import annotations

import csv
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from lr0fm.datasets.base import CorruptImageError, DatasetError, decode_image
from lr0fm.datasets.shards import ShardMember, ShardReader, natural_key, scan_shard
from lr0fm.registry import Registry

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


class HRImages(ABC):
    """Indexable HR training images with a caption id per image (the "CL" variant's label).

    Attributes:
        captions: caption text per caption id.

    """

    captions: list[str]

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def image(self, index: int) -> Image.Image:
        """Return HR image ``index`` as an RGB PIL image."""

    @abstractmethod
    def caption_id(self, index: int) -> int:
        """Return the caption id of image ``index``."""


def unreadable_image(where: str, reason: object) -> DatasetError:
    """The error of an HR training image that cannot be decoded, naming it and the fix."""
    return DatasetError(
        f"LR-TK0 training image {where!r} cannot be decoded ({reason}); replace or delete it (an `lr0fm synth` "
        "output folder: rerun the same synth command, which regenerates truncated images), then resume with "
        "`--ckpt_path last`"
    )


def _read_synth_captions(root: Path) -> dict[str, str]:
    path = root / "captions.tsv"
    if not path.is_file():
        return {}
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    return {f"{int(row[0]):05d}": row[-1] for row in rows[1:] if row and row[0].isdigit()}


class FolderHRImages(HRImages):
    """Every image under a folder (recursively, sorted); the synth layout's caption folders are captions.

    Args:
        root: the folder (``lr0fm synth`` output dir, its ``images/`` folder, or any image folder).
        images_per_caption: keep at most this many images per caption (first by file name).

    Raises:
        DatasetError: missing folder or no image in it.

    """

    def __init__(self, root: str | Path, images_per_caption: int | None = None) -> None:
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(
                f"LR-TK0 training folder {str(root)!r} (data.source) does not exist; pass a folder of images, e.g. the "
                "output of `lr0fm synth` (DIR/images/<caption_id:05d>/<image_index:03d>.jpg)"
            )
        texts = _read_synth_captions(root)
        image_root = root / "images" if (root / "images").is_dir() else root
        files = sorted(p for p in image_root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise DatasetError(
                f"no image ({', '.join(IMAGE_SUFFIXES)}) under {str(image_root)!r}; expected a folder of images, "
                "e.g. the output of `lr0fm synth` (DIR/images/<caption_id:05d>/<image_index:03d>.jpg)"
            )
        keys = [p.parent.relative_to(image_root).as_posix() for p in files]
        if images_per_caption is not None:
            kept: dict[str, int] = {}
            selected = []
            for path, key in zip(files, keys):
                kept[key] = kept.get(key, 0) + 1
                if kept[key] <= images_per_caption:
                    selected.append((path, key))
            files, keys = [p for p, _ in selected], [k for _, k in selected]
        names = list(dict.fromkeys(keys))
        self.files = files
        self.captions = [texts.get(name, name.replace("_", " ")) for name in names]
        ids = {name: i for i, name in enumerate(names)}
        self.caption_ids = [ids[key] for key in keys]

    def __len__(self) -> int:
        return len(self.files)

    def image(self, index: int) -> Image.Image:
        """Decode image ``index`` as RGB.

        Raises:
            DatasetError: the file cannot be decoded (truncated, not an image); the message names it.

        """
        path = self.files[index]
        try:  # the benchmark's decoder: 16-bit greyscale scaled to 8 bits, not saturated by convert("RGB")
            return decode_image(path, str(path)).convert("RGB")
        except CorruptImageError as exc:
            raise unreadable_image(exc.path, exc.reason) from exc

    def caption_id(self, index: int) -> int:
        """Caption id of image ``index`` (its caption folder)."""
        return self.caption_ids[index]


class WebDatasetHRImages(HRImages):
    """Images of webdataset ``.tar`` shards (in shard order); ``<key>.txt`` members give the captions.

    Shards are read by :mod:`lr0fm.datasets.shards` (indexed once, images read by seeking), so the dataset
    is map-style and picklable. Synth keys ``<caption_id>_<image_index>`` group the images of a caption.

    Raises:
        DatasetError: no ``.tar`` shard, or shards without images.

    """

    def __init__(self, root: str | Path, images_per_caption: int | None = None) -> None:
        root = Path(root)
        shards = (
            sorted(root.glob("*.tar"), key=natural_key) if root.is_dir() else [root] if root.suffix == ".tar" else []
        )
        if not shards:
            raise DatasetError(
                f"no webdataset shard (*.tar) at {str(root)!r}; expected e.g. DIR/webdataset/synth-00000.tar "
                "from `lr0fm synth --webdataset`, with members <key>.jpg and optional <key>.txt"
            )
        exts = [suffix.lstrip(".") for suffix in IMAGE_SUFFIXES]
        self.members: list[ShardMember] = []
        texts: dict[str, str] = {}
        for shard in shards:
            for sample in scan_shard(shard, text_extensions=("txt",)):
                image = next((sample.members[ext] for ext in exts if ext in sample.members), None)
                if image is not None:
                    self.members.append(image)
                if "txt" in sample.texts:
                    texts[sample.key] = sample.texts["txt"]
        if not self.members:
            raise DatasetError(f"the shards under {str(root)!r} hold no image member ({', '.join(IMAGE_SUFFIXES)})")
        keys = [member.key for member in self.members]
        # the caption of a synth member <cid>_<idx> is shared by all images of <cid>
        groups = [key.rsplit("_", 1)[0] if key.rsplit("_", 1)[-1].isdigit() else key for key in keys]
        if images_per_caption is not None:
            counts: dict[str, int] = {}
            keep = []
            for i, group in enumerate(groups):
                counts[group] = counts.get(group, 0) + 1
                if counts[group] <= images_per_caption:
                    keep.append(i)
            self.members = [self.members[i] for i in keep]
            keys, groups = [keys[i] for i in keep], [groups[i] for i in keep]
        names = list(dict.fromkeys(groups))
        first_key = {g: k for k, g in reversed(list(zip(keys, groups)))}
        self.captions = [texts.get(first_key[name], name) for name in names]
        ids = {name: i for i, name in enumerate(names)}
        self.caption_ids = [ids[g] for g in groups]
        self.reader = ShardReader()

    def __len__(self) -> int:
        return len(self.members)

    def image(self, index: int) -> Image.Image:
        """Read and decode image member ``index`` as RGB.

        Raises:
            DatasetError: the member cannot be decoded; the message names ``shard#key``.

        """
        member = self.members[index]
        try:
            return self.reader(member).convert("RGB")
        except CorruptImageError as exc:
            raise unreadable_image(exc.path, exc.reason) from exc
        except (OSError, Image.DecompressionBombError) as exc:
            raise unreadable_image(str(member), exc) from exc

    def caption_id(self, index: int) -> int:
        """Caption id of member ``index``."""
        return self.caption_ids[index]


#: ``builder(argument, images_per_caption=..., seed=...) -> HRImages`` by scheme.
SOURCES: Registry[Callable[..., HRImages]] = Registry("LR-TK0 training source", error=DatasetError)


def register_source(scheme: str) -> Callable[[Callable[..., HRImages]], Callable[..., HRImages]]:
    """Decorator registering ``builder(argument, *, images_per_caption, seed) -> HRImages`` for a scheme."""
    return SOURCES.register(scheme)


@register_source("folder")
def _folder_source(argument: str, *, images_per_caption: int | None = None, seed: int = 0) -> HRImages:
    return FolderHRImages(argument, images_per_caption)


@register_source("wds")
def _wds_source(argument: str, *, images_per_caption: int | None = None, seed: int = 0) -> HRImages:
    return WebDatasetHRImages(argument, images_per_caption)


def build_hr_images(source: str, *, images_per_caption: int | None = None, seed: int = 0) -> HRImages:
    """Open an LR-TK0 training source: ``SCHEME[:argument]`` of a registered scheme, or a bare path.

    Raises:
        DatasetError: an unknown source, or one its builder cannot read (with the expected layout).

    """
    scheme, _, argument = source.partition(":")
    if scheme in SOURCES:
        return SOURCES.get(scheme)(argument, images_per_caption=images_per_caption, seed=seed)
    if not Path(source).expanduser().exists():
        forms = ", ".join(f"{name}:..." for name in SOURCES.names())
        if "/" in source or source.startswith((".", "~")):
            raise DatasetError(
                f"LR-TK0 training folder {source!r} (data.source) does not exist; pass an existing folder of "
                f"images, e.g. the output of `lr0fm synth`, or one of the forms {forms}"
            )
        raise DatasetError(
            f"LR-TK0 source {source!r} (data.source) is neither an existing folder nor one of the forms {forms}"
        )
    return FolderHRImages(source, images_per_caption)
