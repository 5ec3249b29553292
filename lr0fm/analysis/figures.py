"""Figure files of the analyses and the manifest that ``index.html`` is built from.

A figure named ``NAME`` in an output folder is ``NAME.png``, ``NAME.svg`` and ``NAME.csv`` (the data drawn),
plus one :class:`FigureRecord` in ``figures.json`` (replaced when the same name is written again, so a
rerun never duplicates a figure).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lr0fm.atomic import atomic_path, write_text_atomic

MANIFEST = "figures.json"


@dataclass
class FigureRecord:
    """One figure of a report.

    Attributes:
        name: file stem (``NAME.png``/``.svg``/``.csv``); unique in an output folder.
        title: short heading.
        caption: one line saying what the figure shows.
        command: the command that regenerates it.
        section: heading of the report section it belongs to.
        analysis: name of the analysis (an :data:`lr0fm.analysis.ANALYSES` entry) that made it.
        files: file names beside the manifest (PNG, SVG, CSV).
    """

    name: str
    title: str
    caption: str
    command: str
    section: str
    analysis: str
    files: list[str] = field(default_factory=list)


def write_rows_csv(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write ``rows`` (dicts with the same keys, in order of first appearance) as CSV, atomically."""
    rows = list(rows)
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_text_atomic(path, buf.getvalue())


def save_figure(
    fig: Any,
    out: str | Path,
    record: FigureRecord,
    rows: Sequence[Mapping[str, Any]],
) -> FigureRecord:
    """Save a matplotlib figure as PNG and SVG, its data as CSV, and add its record to the manifest.

    Args:
        fig: a ``matplotlib.figure.Figure`` (closed afterwards).
        out: output folder.
        record: what the figure is (``files`` is filled in here).
        rows: the data drawn, one dict per plotted value.

    Returns:
        The record, with its files.
    """
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for ext in ("png", "svg"):
        with atomic_path(out / f"{record.name}.{ext}") as tmp:  # a kill or a full disk never leaves half a figure
            fig.savefig(tmp, format=ext, dpi=150 if ext == "png" else None, bbox_inches="tight")
        files.append(f"{record.name}.{ext}")
    plt.close(fig)
    write_rows_csv(out / f"{record.name}.csv", rows)
    files.append(f"{record.name}.csv")
    record.files = files
    add_to_manifest(out, record)
    return record


def read_manifest(out: str | Path) -> list[FigureRecord]:
    """The figure records of an output folder (empty when it has none)."""
    path = Path(out) / MANIFEST
    if not path.is_file():
        return []
    return [FigureRecord(**item) for item in json.loads(path.read_text(encoding="utf-8"))]


def add_to_manifest(out: str | Path, record: FigureRecord) -> None:
    """Add ``record`` to ``out/figures.json``, replacing a record of the same name."""
    records = [r for r in read_manifest(out) if r.name != record.name] + [record]
    write_text_atomic(Path(out) / MANIFEST, json.dumps([asdict(r) for r in records], indent=1) + "\n")
