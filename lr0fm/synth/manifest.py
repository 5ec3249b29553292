"""The JSONL manifest: one line per finished image, appended as images are written.

Each worker appends to its own file (``manifest.jsonl`` for a single worker,
``manifest.shard-<i>-of-<N>.jsonl`` for worker ``i`` of ``N``) so that workers on a shared file
system never interleave writes. :func:`read_manifest` merges them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lr0fm.atomic import write_text_atomic

#: Keys of every manifest record.
FIELDS = ("caption_id", "image_index", "seed", "caption", "path")


def manifest_name(shard: tuple[int, int]) -> str:
    """File name of the manifest of worker ``shard = (i, N)``."""
    index, count = shard
    return "manifest.jsonl" if count == 1 else f"manifest.shard-{index}-of-{count}.jsonl"


def _read_records(path: Path) -> dict[tuple[int, int], dict[str, Any]]:
    """Read the records of one manifest file keyed by ``(caption_id, image_index)``, last one winning.

    A line cut short by a kill (not valid JSON) is dropped.
    """
    records: dict[tuple[int, int], dict[str, Any]] = {}
    if not path.exists():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and all(key in record for key in FIELDS):
            records[(record["caption_id"], record["image_index"])] = record
    return records


def read_manifest(output: str | Path) -> list[dict[str, Any]]:
    """All image records of an output directory (every worker's manifest), de-duplicated and sorted.

    Args:
        output: the ``lr0fm synth`` output directory.

    Returns:
        Dicts with keys ``caption_id, image_index, seed, caption, path`` (``path`` relative to
        ``output``), sorted by ``(caption_id, image_index)``.

    """
    merged: dict[tuple[int, int], dict[str, Any]] = {}
    for path in sorted(Path(output).glob("manifest*.jsonl")):
        merged.update(_read_records(path))
    return [merged[key] for key in sorted(merged)]


class ManifestWriter:
    """Appends records to one worker's manifest, one flushed line per image.

    Opening compacts the existing file: duplicate and cut-off lines from earlier runs are removed
    (atomic rewrite), so the file stays one line per image across resumes.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.records = _read_records(self.path)
        write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in self.records.values()))
        self._file = self.path.open("a", encoding="utf-8")

    def __contains__(self, key: tuple[int, int]) -> bool:
        return key in self.records

    def append(self, record: dict[str, Any]) -> None:
        """Append one record (keys :data:`FIELDS`) and flush it; a record already there is not repeated."""
        record = {key: record[key] for key in FIELDS}
        key = (record["caption_id"], record["image_index"])
        if self.records.get(key) == record:
            return
        self.records[key] = record
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
