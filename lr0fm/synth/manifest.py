"""The JSONL manifest: one line per finished image, appended as images are written.

Each worker appends to its own file (``manifest.jsonl`` for a single worker,
``manifest.shard-<i>-of-<N>.jsonl`` for worker ``i`` of ``N``). Every write of a manifest file happens under
an exclusive lock (``.manifest*.jsonl.lock``, POSIX ``flock``) through a freshly opened append handle, so two
processes given the same shard (two unsharded runs into one folder) neither lose nor interleave lines, and a
line cut short by a kill never swallows the next one. :func:`read_manifest` merges the files.

Records are checked when read: a line that is not JSON (a write cut short by a kill) is dropped, but a record
with other fields or an image path other than ``images/<caption_id:05d>/<image_index:03d>.<ext>`` is refused
naming its file and line, since the webdataset packer copies the file a record names into the tars.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lr0fm.atomic import write_text_atomic
from lr0fm.synth.config import IMAGE_FORMATS, SynthError, writing
from lr0fm.synth.storage import relative_image_path

#: Keys of every manifest record.
FIELDS = ("caption_id", "image_index", "seed", "caption", "path")


def manifest_name(shard: tuple[int, int]) -> str:
    """File name of the manifest of worker ``shard = (i, N)``."""
    index, count = shard
    return "manifest.jsonl" if count == 1 else f"manifest.shard-{index}-of-{count}.jsonl"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``.<name>.lock`` next to ``path`` (POSIX ``flock``; elsewhere: no lock)."""
    lock = path.with_name(f".{path.name}.lock")
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: one writer per manifest
        yield
        return
    with writing(lock), lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_record(record: Any, where: str) -> dict[str, Any]:
    """Return ``record`` if it is a well-formed manifest record, else raise naming ``where`` (``file:line``).

    Raises:
        SynthError: missing fields, wrong types, or an image path that is not the record's own
            ``images/<caption_id:05d>/<image_index:03d>.<ext>`` (an absolute path, ``..`` or another file).

    """
    fix = "delete that line (a rerun of `lr0fm synth` re-adds the records of the images it finds) and rerun"
    if not isinstance(record, dict) or any(key not in record for key in FIELDS):
        raise SynthError(f"{where}: not a synth manifest record (expected the keys {', '.join(FIELDS)}); {fix}.")
    if not (_is_int(record["caption_id"]) and _is_int(record["image_index"]) and isinstance(record["seed"], int)):
        raise SynthError(f"{where}: caption_id, image_index and seed must be non-negative integers; {fix}.")
    if not isinstance(record["caption"], str) or not isinstance(record["path"], str):
        raise SynthError(f"{where}: caption and path must be strings; {fix}.")
    allowed = [relative_image_path(record["caption_id"], record["image_index"], ext) for ext in IMAGE_FORMATS]
    if record["path"] not in allowed:
        raise SynthError(
            f"{where}: image path {record['path']!r} is refused: a record names its own image "
            f"{allowed[0].rsplit('.', 1)[0]}.<{'|'.join(IMAGE_FORMATS)}> inside the output folder (never an absolute "
            f"path, '..' or another file); {fix}."
        )
    return record


def _read_records(path: Path) -> dict[tuple[int, int], dict[str, Any]]:
    """Read the records of one manifest file keyed by ``(caption_id, image_index)``, last one winning.

    A line cut short by a kill (not valid JSON) is dropped; a malformed record raises (:func:`check_record`).
    """
    records: dict[tuple[int, int], dict[str, Any]] = {}
    if not path.exists():
        return records
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        record = check_record(record, f"{path}:{number}")
        records[(record["caption_id"], record["image_index"])] = {key: record[key] for key in FIELDS}
    return records


def read_manifest(output: str | Path) -> list[dict[str, Any]]:
    """All image records of an output directory (every worker's manifest), de-duplicated and sorted.

    Args:
        output: the ``lr0fm synth`` output directory.

    Returns:
        Dicts with keys ``caption_id, image_index, seed, caption, path`` (``path`` relative to
        ``output``), sorted by ``(caption_id, image_index)``.

    Raises:
        SynthError: a manifest line holds a malformed record or a path outside its own image.

    """
    merged: dict[tuple[int, int], dict[str, Any]] = {}
    for path in sorted(Path(output).glob("manifest*.jsonl")):
        merged.update(_read_records(path))
    return [merged[key] for key in sorted(merged)]


class ManifestWriter:
    """Appends records to one worker's manifest, one line per image, under the manifest's lock.

    Opening compacts the existing file: duplicate and cut-off lines from earlier runs are removed
    (atomic rewrite, under the lock), so the file stays one line per image across resumes. Each append opens
    the file anew, so it lands in the current file even after another process compacted it.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with locked(self.path):
            self.records = _read_records(self.path)
            with writing(self.path):
                write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in self.records.values()))

    def __contains__(self, key: tuple[int, int]) -> bool:
        return key in self.records

    def append(self, record: dict[str, Any]) -> None:
        """Append one record (keys :data:`FIELDS`); a record this writer already holds is not repeated.

        Raises:
            SynthError: the line cannot be written (disk full, ...), naming the manifest.

        """
        record = {key: record[key] for key in FIELDS}
        key = (record["caption_id"], record["image_index"])
        if self.records.get(key) == record:
            return
        line = (json.dumps(record) + "\n").encode("utf-8")
        with locked(self.path), writing(self.path), self.path.open("a+b") as handle:
            end = handle.seek(0, 2)
            if end:  # a line cut short by a kill: end it, so that it is dropped alone
                handle.seek(end - 1)
                if handle.read(1) != b"\n":
                    line = b"\n" + line
            handle.write(line)
            handle.flush()
        self.records[key] = record

    def close(self) -> None:
        """Nothing to release (every append closes its handle); kept for the context-manager protocol."""

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
