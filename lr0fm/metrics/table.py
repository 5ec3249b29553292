"""Results tables: one row per (model, dataset, resolution) with its zero-shot top-1 accuracy.

Columns: ``model``, ``dataset``, ``resolution`` (an integer pixel size, or ``hr`` for the model's native
resolution), ``top1`` (a fraction in [0, 1]), optional ``protocol`` (the LR protocol the row was measured
with), ``top5``, ``num_samples``, ``num_classes``; other columns are kept but ignored. Stored as CSV or JSON
Lines; the benchmark writes the same format.

Rows measured with different LR protocols are not comparable: :func:`select_protocol` refuses to put them
in one table unless asked to, and then names each model after its protocol.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
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
        protocol: optional LR protocol the row was measured with (``None``: not recorded).
        where: where the row came from (``file:line``), for error messages.
    """

    model: str
    dataset: str
    resolution: Resolution
    top1: float
    top5: float | None = None
    num_samples: int | None = None
    num_classes: int | None = None
    protocol: str | None = None
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
    if not math.isfinite(number) or number != int(number) or number <= 0:
        raise ResultsTableError(f"{where}: resolution {text!r} must be a positive integer pixel size or 'hr'")
    return int(number)


def _optional_number(value: Any, kind: type, column: str, where: str) -> Any:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    try:
        number = None if isinstance(value, bool) else float(value)  # JSON true is not an accuracy
    except (TypeError, ValueError):
        number = None
    if number is None:
        raise ResultsTableError(f"{where}: column {column!r} is not a number: {value!r}")
    if not math.isfinite(number):
        raise ResultsTableError(f"{where}: column {column!r} is not finite: {value!r}")
    if kind is int:
        if number != int(number):
            raise ResultsTableError(f"{where}: column {column!r} must be an integer: {value!r}")
        return int(number)
    return number


def _name(record: dict[str, Any], column: str, where: str) -> str:
    value = record[column]
    if isinstance(value, (dict, list, bool)):
        raise ResultsTableError(f"{where}: column {column!r} must be a name, got {value!r}")
    return str(value).strip()


def _row_from_record(record: dict[str, Any], where: str) -> ResultRow:
    missing = [c for c in REQUIRED_COLUMNS if record.get(c) in (None, "")]
    if missing:
        raise ResultsTableError(f"{where}: missing value for column(s) {', '.join(missing)}")
    num_classes = _optional_number(record.get("num_classes"), int, "num_classes", where)
    if num_classes is not None and num_classes < 1:
        raise ResultsTableError(f"{where}: column 'num_classes' must be an integer >= 1, got {num_classes}")
    num_samples = _optional_number(record.get("num_samples"), int, "num_samples", where)
    if num_samples is not None and num_samples < 0:
        raise ResultsTableError(f"{where}: column 'num_samples' must be an integer >= 0, got {num_samples}")
    return ResultRow(
        model=_name(record, "model", where),
        dataset=_name(record, "dataset", where),
        resolution=parse_resolution(record["resolution"], where),
        top1=_optional_number(record["top1"], float, "top1", where),
        top5=_optional_number(record.get("top5"), float, "top5", where),
        num_samples=num_samples,
        num_classes=num_classes,
        protocol=str(record["protocol"]).strip() if record.get("protocol") not in (None, "") else None,
        where=where,
    )


def _read_records(path: Path) -> Iterator[tuple[dict[str, Any], str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ResultsTableError(
            f"results table {str(path)!r} is not UTF-8 text ({exc.reason} at byte {exc.start}); expected a CSV or "
            "JSON Lines file with the columns " + ", ".join(REQUIRED_COLUMNS)
        ) from None
    if not text.strip():
        raise ResultsTableError(
            f"results table {str(path)!r} is empty; expected a CSV header {','.join(REQUIRED_COLUMNS)} and one row "
            "per (model, dataset, resolution), or JSON Lines with those keys"
        )
    first = text.lstrip()[:1]
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson") or first == "{":
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
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
            f"results table {str(path)!r}: missing column(s) {', '.join(absent)}; a results table needs the columns "
            f"{', '.join(REQUIRED_COLUMNS)} (optional: protocol, top5, num_samples, num_classes); found {header}"
        )
    for lineno, record in enumerate(reader, start=2):
        yield {k.strip(): v for k, v in record.items() if k is not None}, f"{path}:{lineno}"


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
                    f"{row.resolution}: {first.where} and {row.where}; keep one of them (a results folder of an "
                    "older lr0fm: any `lr0fm benchmark --output DIR` run repairs it, keeping the newest row of each "
                    "cell)"
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
    def from_records(
        cls,
        records: Iterable[dict[str, Any]],
        source: str = "<records>",
        *,
        protocol: str | None = None,
        allow_mixed_protocols: bool = False,
    ) -> ResultsTable:
        """Build from dict records (e.g. what the benchmark produced in memory); see :func:`select_protocol`."""
        rows = [_row_from_record(dict(r), f"{source}:{i}") for i, r in enumerate(records, start=1)]
        rows = select_protocol(rows, protocol, allow_mixed_protocols, source)
        return cls(rows, source)

    @property
    def protocols(self) -> list[str | None]:
        """LR protocols of the rows, in order of first appearance (``None``: not recorded)."""
        return list(dict.fromkeys(r.protocol for r in self.rows))

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


def _protocol_name(protocol: str | None) -> str:
    return protocol if protocol is not None else "unrecorded"


def select_protocol(
    rows: list[ResultRow], protocol: str | None = None, allow_mixed: bool = False, source: str = ""
) -> list[ResultRow]:
    """Keep the rows of one LR protocol, or refuse a table that mixes protocols.

    Args:
        rows: the table's rows.
        protocol: keep only the rows of this protocol.
        allow_mixed: accept several protocols; a model measured under more than one of them is then named
            ``MODEL [protocol]`` in each, so its rows stay apart.
        source: the table's name, for messages.

    Raises:
        ResultsTableError: no row has ``protocol``, or the rows mix protocols and ``allow_mixed`` is false.

    """
    counts: dict[str | None, int] = {}
    for row in rows:
        counts[row.protocol] = counts.get(row.protocol, 0) + 1
    present = ", ".join(f"{_protocol_name(p)} ({n} rows)" for p, n in counts.items())
    if protocol is not None:
        kept = [r for r in rows if r.protocol == protocol]
        if not kept:
            raise ResultsTableError(
                f"{source}: no row was measured with LR protocol {protocol!r}; the table has {present}"
            )
        return kept
    if len(counts) <= 1:
        return rows
    if not allow_mixed:
        raise ResultsTableError(
            f"{source}: the rows were measured with different LR protocols: {present}. Accuracies of different "
            "protocols are not comparable, so they are not ranked or correlated together: pass --protocol NAME to "
            "use one of them, or --allow_mixed_protocols to rank them anyway (a model measured under several "
            "protocols is then named 'MODEL [protocol]')."
        )
    per_model: dict[str, set[str | None]] = {}
    for row in rows:
        per_model.setdefault(row.model, set()).add(row.protocol)
    return [
        replace(row, model=f"{row.model} [{_protocol_name(row.protocol)}]") if len(per_model[row.model]) > 1 else row
        for row in rows
    ]


def load_results(path: str | Path, *, protocol: str | None = None, allow_mixed_protocols: bool = False) -> ResultsTable:
    """Read and validate a results table (CSV, or JSON Lines by extension or content).

    Args:
        path: the table.
        protocol: keep only the rows of this LR protocol.
        allow_mixed_protocols: accept rows of several protocols (see :func:`select_protocol`).

    Raises:
        ResultsTableError: a missing or malformed table, or one that mixes protocols without
            ``allow_mixed_protocols``.

    """
    path = Path(path)
    if path.is_dir():
        inside = [str(path / n) for n in ("results.csv", "results.jsonl") if (path / n).is_file()]
        hint = f"; did you mean {inside[0]!r}?" if inside else ""
        raise ResultsTableError(
            f"results table {str(path)!r} is a folder; expected a CSV or JSON Lines file (e.g. the results.csv "
            f"that `lr0fm benchmark` writes in its output folder){hint}"
        )
    if not path.is_file():
        from lr0fm.presets import RESULTS

        shipped = ", ".join(repr(n) for n in RESULTS)
        raise ResultsTableError(
            f"results table {str(path)!r} does not exist; expected a CSV or JSON Lines file, or the name of a "
            f"shipped table ({shipped})"
        )
    rows = [_row_from_record(record, where) for record, where in _read_records(path)]
    if not rows:
        raise ResultsTableError(f"results table {str(path)!r} has no rows")
    return ResultsTable(select_protocol(rows, protocol, allow_mixed_protocols, str(path)), str(path))
