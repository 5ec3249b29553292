"""Uncompressed webdataset ``.tar`` shards, read with :mod:`tarfile`: the one shard reader of lr0fm.

A shard is scanned once into samples (members grouped by webdataset's key: the member path up to the first
dot of its file name), recording where each member's bytes lie; images are read later by seeking into the
shard, so datasets built on it are map-style and picklable and each DataLoader worker reopens the shards it
reads. Used by the ``wds:`` evaluation datasets and the ``wds:`` LR-TK0 training source.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image

from lr0fm.datasets.base import DatasetError, decode_image


@dataclass(frozen=True)
class ShardMember:
    """Where one member's bytes lie inside an uncompressed tar shard."""

    shard: str
    key: str
    offset: int
    size: int

    def __str__(self) -> str:
        return f"{self.shard}#{self.key}"


@dataclass
class ShardSample:
    """The members of one sample: ``members[ext]`` locates each, ``texts[ext]`` holds the small text ones."""

    key: str
    members: dict[str, ShardMember] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)


def split_key(name: str) -> tuple[str, str]:
    """Webdataset convention: the key is the member path up to the first dot of its file name."""
    directory, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{directory}/{stem}" if directory else stem), ext.lower()


def natural_key(path: Path) -> list[Any]:
    """Sort key putting ``shard-2.tar`` before ``shard-10.tar``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def scan_shard(shard: Path, text_extensions: Iterable[str] = ()) -> list[ShardSample]:
    """The samples of one shard in order of appearance, reading the members of ``text_extensions`` as UTF-8.

    Raises:
        DatasetError: the file is not a readable tar.

    """
    wanted = {ext.lower() for ext in text_extensions}
    samples: dict[str, ShardSample] = {}
    size = os.path.getsize(shard)
    try:
        with tarfile.open(shard, "r:") as tar:
            for info in tar:
                if info.offset_data + info.size > size:
                    raise DatasetError(_truncated(shard, f"member {info.name!r} is cut off"))
                if not info.isfile():
                    continue
                key, ext = split_key(info.name)
                sample = samples.setdefault(key, ShardSample(key))
                if ext in sample.members:
                    continue  # webdataset keeps the first member of an extension
                sample.members[ext] = ShardMember(str(shard), key, info.offset_data, info.size)
                if ext in wanted:
                    sample.texts[ext] = tar.extractfile(info).read().decode("utf-8").strip()  # type: ignore[union-attr]
            end = tar.offset  # where tarfile stopped reading: the end-of-archive marker of a whole shard
    except tarfile.TarError as exc:
        raise DatasetError(f"cannot read shard {str(shard)!r} ({exc}); re-download or re-make it.") from exc
    with open(shard, "rb") as fh:  # tarfile stops silently at a cut-off header: check what follows
        fh.seek(end)
        tail = fh.read(1 << 20)
    if tail.strip(b"\0"):
        raise DatasetError(_truncated(shard, f"the member after byte {end} is cut off or damaged"))
    if len(tail) < 2 * tarfile.BLOCKSIZE:
        raise DatasetError(_truncated(shard, "it ends without tar's end-of-archive marker"))
    return list(samples.values())


def _truncated(shard: Path, what: str) -> str:
    return (
        f"shard {str(shard)!r} is truncated: {what}, so samples after it would be lost; re-download or re-make "
        "it (a complete tar ends with two zero blocks)"
    )


@dataclass
class ShardReader:
    """Decodes a :class:`ShardMember` image; keeps one open handle per shard and process (picklable)."""

    _handles: dict[str, BinaryIO] = field(default_factory=dict, repr=False)
    _pid: int = field(default_factory=os.getpid, repr=False)

    def read(self, member: ShardMember) -> bytes:
        """The member's bytes."""
        if self._pid != os.getpid():  # a forked worker must not share the parent's file offsets
            self._handles, self._pid = {}, os.getpid()
        handle = self._handles.get(member.shard)
        if handle is None:
            handle = self._handles[member.shard] = open(member.shard, "rb")
        handle.seek(member.offset)
        return handle.read(member.size)

    def __call__(self, member: ShardMember) -> Image.Image:
        """Decode ``member``'s image, raising :class:`CorruptImageError` naming ``shard#key`` on failure."""
        return decode_image(io.BytesIO(self.read(member)), str(member))

    def __getstate__(self) -> dict[str, Any]:
        return {"_handles": {}, "_pid": -1}

    def __del__(self) -> None:
        for handle in self._handles.values():
            handle.close()
