"""Pack finished captions into webdataset tar shards (``output/webdataset/synth-<k:05d>.tar``).

Tar ``k`` holds every image of captions ``k * C`` to ``(k + 1) * C - 1`` (``C`` captions per tar),
so its content does not depend on how generation was split. Each sample has the key
``<caption_id:05d>_<image_index:03d>`` and the members ``<key>.<jpg|png|webp>`` (the image),
``<key>.txt`` (the caption) and ``<key>.json`` (its manifest record). A tar is written only once all
of its images exist; workers may pack concurrently (identical content, atomic rename).

Only files inside the output folder are packed: the manifest reader refuses any record path but the record's
own ``images/...`` file, and a path that resolves outside the output folder (a symlinked image or caption
folder) is refused too, so a tampered manifest or folder can never copy another file into a tar.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from lr0fm.atomic import atomic_path
from lr0fm.synth.config import SynthError, writing
from lr0fm.synth.manifest import read_manifest

#: Folder of the tar shards inside the output directory.
WEBDATASET_DIR = "webdataset"


@dataclass
class PackReport:
    """What :func:`pack_webdataset` did.

    Attributes:
        written: tar files written by this call.
        existing: tar files that were already there.
        incomplete: indices of tars skipped because some of their images are not generated yet.

    """

    written: list[Path] = field(default_factory=list)
    existing: list[Path] = field(default_factory=list)
    incomplete: list[int] = field(default_factory=list)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def image_file(output: Path, record: dict) -> Path:
    """The file a manifest record names, refusing one that resolves outside ``output`` (through a symlink).

    Raises:
        SynthError: the path leads outside the output folder.

    """
    path = output / record["path"]
    if not path.resolve().is_relative_to(output.resolve()):
        raise SynthError(
            f"image {record['path']!r} of caption {record['caption_id']} resolves to {str(path.resolve())!r}, "
            f"outside the output folder {str(output)!r} (a symbolic link); only files inside it are packed. "
            "Replace the link by the image file itself, or delete it so that a rerun regenerates it."
        )
    return path


def pack_webdataset(
    output: str | Path, num_captions: int, images_per_caption: int, captions_per_tar: int
) -> PackReport:
    """Write every complete, not yet written tar shard of an output directory.

    Args:
        output: the ``lr0fm synth`` output directory.
        num_captions: captions in ``captions.tsv``.
        images_per_caption: images per caption.
        captions_per_tar: captions per tar shard.

    Returns:
        A :class:`PackReport`.

    Raises:
        SynthError: a manifest record names a file outside the output folder, or a tar cannot be written.

    """
    output = Path(output)
    records = {(r["caption_id"], r["image_index"]): r for r in read_manifest(output)}
    report = PackReport()
    folder = output / WEBDATASET_DIR
    with writing(folder):
        folder.mkdir(exist_ok=True)
    for k, start in enumerate(range(0, num_captions, captions_per_tar)):
        path = folder / f"synth-{k:05d}.tar"
        if path.exists():
            report.existing.append(path)
            continue
        keys = [
            (cid, idx)
            for cid in range(start, min(start + captions_per_tar, num_captions))
            for idx in range(images_per_caption)
        ]
        if not all(key in records and image_file(output, records[key]).is_file() for key in keys):
            report.incomplete.append(k)
            continue
        with writing(path), atomic_path(path) as tmp, tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for cid, idx in keys:
                record = records[(cid, idx)]
                stem = f"{cid:05d}_{idx:03d}"
                ext = Path(record["path"]).suffix
                _add_bytes(tar, stem + ext, image_file(output, record).read_bytes())
                _add_bytes(tar, stem + ".txt", record["caption"].encode("utf-8"))
                _add_bytes(tar, stem + ".json", json.dumps(record, sort_keys=True).encode("utf-8"))
        report.written.append(path)
    return report
