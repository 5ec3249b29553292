"""CLIP_benchmark webdataset shards read with :mod:`tarfile` (no webdataset dependency).

Layout (as published on https://huggingface.co/clip-benchmark)::

    <path>/classnames.txt                          one class name per line, index = label
    <path>/zeroshot_classification_templates.txt   one prompt per line, with {c}
    <path>/<split>/*.tar                           samples <key>.{jpg,jpeg,png,webp} + <key>.cls

The shards are indexed once (member offsets); images are read lazily by seeking into the shard, so the
dataset is map-style and picklable, and each DataLoader worker reopens the shards it reads.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image

from lr0fm.datasets.base import CorruptImageError, DatasetError, ZeroShotDataset
from lr0fm.datasets.registry import register_dataset_scheme
from lr0fm.datasets.resources import check_templates, read_text_lines

#: Image extensions of webdataset samples, in order of preference.
WDS_IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
CLASSNAMES_FILE = "classnames.txt"
TEMPLATES_FILE = "zeroshot_classification_templates.txt"
LAYOUT = (
    "<path>/classnames.txt\n  <path>/zeroshot_classification_templates.txt\n"
    "  <path>/<split>/*.tar   (samples <key>.{jpg,jpeg,png,webp} + <key>.cls)"
)
HOW_TO_GET = (
    "download a CLIP_benchmark dataset repository, e.g. `git clone "
    "https://huggingface.co/datasets/clip-benchmark/wds_dtd`, and pass wds:/path/to/wds_dtd"
)


@dataclass(frozen=True)
class ShardMember:
    """Where one sample's image bytes lie inside an uncompressed tar shard."""

    shard: str
    key: str
    offset: int
    size: int

    def __str__(self) -> str:
        return f"{self.shard}#{self.key}"


@dataclass
class ShardReader:
    """Reads a :class:`ShardMember` to a PIL image; keeps one open handle per shard and process."""

    _handles: dict[str, BinaryIO] = field(default_factory=dict, repr=False)
    _pid: int = field(default_factory=os.getpid, repr=False)

    def __call__(self, member: ShardMember) -> Image.Image:
        """Decode ``member``'s image, raising :class:`CorruptImageError` naming ``shard#key`` on failure."""
        if self._pid != os.getpid():  # a forked worker must not share the parent's file offsets
            self._handles, self._pid = {}, os.getpid()
        handle = self._handles.get(member.shard)
        if handle is None:
            handle = self._handles[member.shard] = open(member.shard, "rb")
        handle.seek(member.offset)
        data = handle.read(member.size)
        try:
            with Image.open(io.BytesIO(data)) as img:
                img.load()  # kept in its stored mode: the LR protocol converts to RGB after resizing
            return img
        except (OSError, SyntaxError, ValueError) as exc:
            raise CorruptImageError(str(member), str(exc)) from exc

    def __getstate__(self) -> dict[str, Any]:
        return {"_handles": {}, "_pid": -1}

    def __del__(self) -> None:
        for handle in self._handles.values():
            handle.close()


def _natural_key(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _split_key(name: str) -> tuple[str, str]:
    """Webdataset convention: the key is the member path up to the first dot of its file name."""
    directory, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{directory}/{stem}" if directory else stem), ext.lower()


def index_shard(shard: Path, num_classes: int) -> list[tuple[ShardMember, int]]:
    """Index one tar shard: ``(ShardMember, label)`` per sample, in the shard's order.

    Raises:
        DatasetError: on an unreadable tar, a sample without image or ``.cls``, or a label out of range.

    """
    images: dict[str, tarfile.TarInfo] = {}
    labels: dict[str, int] = {}
    try:
        with tarfile.open(shard, "r:") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                key, ext = _split_key(info.name)
                if ext == "cls":
                    raw = tar.extractfile(info).read().decode("utf-8").strip()  # type: ignore[union-attr]
                    if not raw.lstrip("-").isdigit() or not 0 <= int(raw) < num_classes:
                        raise DatasetError(
                            f"wds: {shard}#{key}.cls holds {raw!r}; expected a label in 0..{num_classes - 1} "
                            "(one per line of classnames.txt)."
                        )
                    labels[key] = int(raw)
                elif ext in WDS_IMAGE_EXTENSIONS and key not in images:
                    images[key] = info
    except tarfile.TarError as exc:
        raise DatasetError(f"wds: cannot read shard {str(shard)!r} ({exc}); re-download it.") from exc
    unpaired = sorted(set(images) ^ set(labels))
    if unpaired:
        key = unpaired[0]
        has = "an image but no .cls label" if key in images else "a .cls label but no image"
        raise DatasetError(
            f"wds: sample {key!r} in {str(shard)!r} has {has} ({len(unpaired)} such samples); every sample "
            f"needs <key>.cls and one of <key>.{{{','.join(WDS_IMAGE_EXTENSIONS)}}}."
        )
    return [
        (ShardMember(str(shard), key, images[key].offset_data, images[key].size), labels[key]) for key in sorted(images)
    ]


@register_dataset_scheme("wds")
def build_wds_dataset(path: Path, split: str = "test") -> ZeroShotDataset:
    """Load CLIP_benchmark webdataset shards from ``path`` (layout in the module docstring).

    Raises:
        DatasetError: when a file of the layout is missing or malformed.

    """
    for required in (path, path / CLASSNAMES_FILE, path / TEMPLATES_FILE, path / split):
        if not required.exists():
            raise DatasetError(
                f"wds: {str(required)!r} not found.\nExpected layout:\n  {LAYOUT}\nTo obtain it: {HOW_TO_GET}."
            )
    names = read_text_lines(path / CLASSNAMES_FILE)
    if not names:
        raise DatasetError(f"wds: {str(path / CLASSNAMES_FILE)!r} is empty; write one class name per line.")
    prompts = check_templates(read_text_lines(path / TEMPLATES_FILE), str(path / TEMPLATES_FILE))
    shards = sorted(path.joinpath(split).glob("*.tar"), key=_natural_key)
    if not shards:
        raise DatasetError(f"wds: no *.tar shards in {str(path / split)!r}.\nExpected layout:\n  {LAYOUT}")
    samples = [sample for shard in shards for sample in index_shard(shard, len(names))]
    return ZeroShotDataset(f"wds:{path}", names, prompts, samples, ShardReader())
