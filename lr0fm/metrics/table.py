"""Results tables: one row per (model, dataset, resolution) with its zero-shot top-1 accuracy.

Columns: ``model``, ``dataset``, ``resolution`` (an integer pixel size, or ``hr`` for the model's native
resolution), ``top1`` (a fraction in [0, 1]), optional ``top5``, ``num_samples``, ``num_classes``; other
columns are kept but ignored. Stored as CSV or JSON Lines; the benchmark writes the same format.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lr0fm.catalog import DATASETS

HR = "hr"
REQUIRED_COLUMNS = ("model", "dataset", "resolution", "top1")
Resolution = int | str  # an int pixel size, or HR


class ResultsTableError(ValueError):
    """The results table is malformed; the message names the offending row or column."""


@dataclass(frozen=True)
class ResultRow:
    """One accuracy measurement.

    Attributes:
        model: backbone name.
        dataset: dataset name.
        resolution: low-resolution side in pixels, or ``"hr"``.
        top1: top-1 accuracy in [0, 1].
        top5: optional top-5 accuracy in [0, 1].
        num_samples: optional number of evaluated images.
        num_classes: optional size of the classifier used.
        where: where the row came from (``file:line``), for error messages.
    """

    model: str
    dataset: str
    resolution: Resolution
    top1: float
    top5: float | None = None
    num_samples: int | None = None
    num_classes: int | None = None
    where: str = ""


def parse_resolution(value: Any, where: str = "") -> Resolution:
    """Parse a resolution cell: ``hr`` (any case) or a positive integer."""
    text = str(value).strip()
    if text.lower() in (HR, "native"):
        return HR
    try:
        number = float(text)
    except ValueError:
        raise ResultsTableError(f"{where}: resolution {text!r} is neither an integer pixel size nor 'hr'") from None
    if number != int(number) or number <= 0:
        raise ResultsTableError(f"{where}: resolution {text!r} must be a positive integer pixel size or 'hr'")
    return int(number)


def _optional_number(value: Any, kind: type, column: str, where: str) -> Any:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ResultsTableError(f"{where}: column {column!r} is not a number: {value!r}") from None
    if not math.isfinite(number):
        raise ResultsTableError(f"{where}: column {column!r} is not finite: {value!r}")
    if kind is int:
        if number != int(number):
            raise ResultsTableError(f"{where}: column {column!r} must be an integer: {value!r}")
        return int(number)
    return number


def _row_from_record(record: dict[str, Any], where: str) -> ResultRow:
    missing = [c for c in REQUIRED_COLUMNS if record.get(c) in (None, "")]
    if missing:
        raise ResultsTableError(f"{where}: missing value for column(s) {', '.join(missing)}")
    return ResultRow(
        model=str(record["model"]).strip(),
        dataset=str(record["dataset"]).strip(),
        resolution=parse_resolution(record["resolution"], where),
        top1=_optional_number(record["top1"], float, "top1", where),
        top5=_optional_number(record.get("top5"), float, "top5", where),
        num_samples=_optional_number(record.get("num_samples"), int, "num_samples", where),
        num_classes=_optional_number(record.get("num_classes"), int, "num_classes", where),
        where=where,
    )


def _read_records(path: Path) -> Iterator[tuple[dict[str, Any], str]]:
    text = path.read_text()
    first = text.lstrip()[:1]
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson") or first == "{":
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{path.name}:{lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ResultsTableError(f"{where}: not a JSON object: {exc}") from None
            if not isinstance(record, dict):
                raise ResultsTableError(f"{where}: each line must be a JSON object")
            yield record, where
        return
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in (reader.fieldnames or [])]
    absent = [c for c in REQUIRED_COLUMNS if c not in header]
    if absent:
        raise ResultsTableError(
            f"{path.name}: missing column(s) {', '.join(absent)}; a results table needs the columns "
            f"{', '.join(REQUIRED_COLUMNS)} (optional: top5, num_samples, num_classes); found {header}"
        )
    for lineno, record in enumerate(reader, start=2):
        yield {k.strip(): v for k, v in record.items() if k is not None}, f"{path.name}:{lineno}"


@dataclass
class ResultsTable:
    """A validated results table.

    Attributes:
        rows: the measurements, in file order.
        source: where the table was read from.
    """

    rows: list[ResultRow]
    source: str = ""
    _index: dict[tuple[str, str, Resolution], ResultRow] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {}
        for row in self.rows:
            key = (row.model, row.dataset, row.resolution)
            if key in self._index:
                first = self._index[key]
                raise ResultsTableError(
                    f"duplicate rows for model {row.model!r}, dataset {row.dataset!r}, resolution "
                    f"{row.resolution}: {first.where} and {row.where}; keep one of them"
                )
            self._index[key] = row
        self._check_ranges()

    def _check_ranges(self) -> None:
        bad = [r for r in self.rows if not 0.0 <= r.top1 <= 1.0 or (r.top5 is not None and not 0.0 <= r.top5 <= 1.0)]
        if not bad:
            return
        row = bad[0]
        hint = ""
        if all(0.0 <= r.top1 <= 100.0 for r in self.rows) and max(r.top1 for r in self.rows) > 1.0:
            hint = " The table looks like percentages: divide top1/top5 by 100 (accuracies are fractions in [0, 1])."
        raise ResultsTableError(
            f"{row.where}: accuracy outside [0, 1] for model {row.model!r}, dataset {row.dataset!r}, "
            f"resolution {row.resolution}: top1={row.top1}"
            + (f", top5={row.top5}" if row.top5 is not None else "")
            + f" ({len(bad)} such row(s)).{hint}"
        )

    @classmethod
    def from_records(cls, records: Iterable[dict[str, Any]], source: str = "<records>") -> ResultsTable:
        """Build from dict records (e.g. what the benchmark produced in memory)."""
        rows = [_row_from_record(dict(r), f"{source}:{i}") for i, r in enumerate(records, start=1)]
        return cls(rows, source)

    @property
    def models(self) -> list[str]:
        """Model names in order of first appearance."""
        return list(dict.fromkeys(r.model for r in self.rows))

    @property
    def datasets(self) -> list[str]:
        """Dataset names: canonical ones in paper order, then others in order of first appearance."""
        present = dict.fromkeys(r.dataset for r in self.rows)
        return [d for d in DATASETS if d in present] + [d for d in present if d not in DATASETS]

    @property
    def resolutions(self) -> list[int]:
        """Low resolutions present (sorted ascending; ``hr`` excluded)."""
        return sorted({r.resolution for r in self.rows if r.resolution != HR})

    def get(self, model: str, dataset: str, resolution: Resolution) -> ResultRow | None:
        """The row for (model, dataset, resolution), or ``None``."""
        return self._index.get((model, dataset, resolution))


def load_results(path: str | Path) -> ResultsTable:
    """Read and validate a results table (CSV, or JSON Lines by extension or content)."""
    path = Path(path)
    if not path.is_file():
        raise ResultsTableError(f"results table {str(path)!r} does not exist")
    rows = [_row_from_record(record, where) for record, where in _read_records(path)]
    if not rows:
        raise ResultsTableError(f"results table {str(path)!r} has no rows")
    return ResultsTable(rows, str(path))
