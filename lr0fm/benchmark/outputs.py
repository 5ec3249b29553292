"""Benchmark outputs: results table, per-sample predictions and the accuracy-vs-resolution plot.

The results table is CSV + JSON Lines with one record per (model, dataset, resolution), appended as each
(model, dataset) run finishes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch

from lr0fm.atomic import atomic_path

RESULT_COLUMNS = [
    "model", "dataset", "resolution", "protocol", "chain", "top1", "top5", "mean_per_class_recall",
    "num_samples", "num_classes", "num_skipped", "views", "dataset_size", "model_key", "seed", "lr_tokens_sha256",
    "lr_tokens_params", "lr_tokens_method",
    "sr", "sr_spec", "sr_key", "sr_params", "sr_scale", "sr_passes", "sr_ms_per_image",
    "precision", "device", "batch_size", "lr0fm_version", "torch_version", "open_clip_torch_version",
    "lightning_version", "python_version", "run_id", "timestamp",
]  # fmt: skip

#: the columns that name a cell of the table: a results folder holds at most one row per cell
CELL_COLUMNS = ("model", "dataset", "resolution", "protocol")


def slug(text: str) -> str:
    """A filesystem-safe name for a model spec or dataset name."""
    return re.sub(r"[^A-Za-z0-9._+@-]+", "_", text).strip("_") or "model"


def unique_slug(text: str) -> str:
    """:func:`slug`, plus 8 hex digits of the text's SHA-256 when the slug lost characters.

    Two names that slug alike (``folder:/data/a b`` and ``folder:/data/a_b``) never share a file; a name
    that is already filesystem-safe (``imagenet``, ``toy-color``) keeps its own spelling.
    """
    safe = slug(text)
    if safe == text:
        return safe
    return f"{safe}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def predictions_path(output: str | Path, protocol: str, model: str, dataset: str) -> Path:
    """The per-sample predictions file of one (model, dataset) under an output folder.

    Every part is a :func:`unique_slug`: ``sr:BSRGAN`` (an SR front-end's protocol) names no ``:`` folder.
    """
    return Path(output) / "predictions" / unique_slug(protocol) / unique_slug(model) / f"{unique_slug(dataset)}.jsonl"


def read_predictions(path: str | Path) -> list[dict]:
    """The lines of a predictions file (empty when there is none)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def predictions_cover(path: str | Path, resolutions: Sequence, num_samples: int) -> bool:
    """Whether the predictions file holds every one of ``resolutions`` for ``num_samples`` samples."""
    lines = read_predictions(path)
    wanted = {str(r) for r in resolutions}
    return len(lines) == num_samples and all(wanted <= set(line["top5"]) for line in lines)


def cell_of(record: dict) -> tuple[str, str, str, str | None]:
    """``(model, dataset, resolution, protocol)`` of a record (resolution as a string)."""
    return record["model"], record["dataset"], str(record["resolution"]), record.get("protocol")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (POSIX ``flock``; other platforms rely on one writer per folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class ResultsStore:
    """The results table of a folder: ``DIR/results.jsonl`` (source of truth) and ``DIR/results.csv``.

    One row per cell (:data:`CELL_COLUMNS`): :meth:`upsert` replaces the rows of the cells it writes, so a
    re-measured cell never appears twice. Every write happens under an exclusive lock and replaces both
    files atomically, so several processes (the shards of a sweep, on one machine or on a shared file
    system with working ``flock``) can write one folder without tearing or interleaving rows, and a kill
    loses at most the cell in progress. Tables written by older lr0fm versions, which appended duplicate
    rows, are read with the newest row of each cell and repaired on the next write.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.csv_path = self.directory / "results.csv"
        self.jsonl_path = self.directory / "results.jsonl"
        self.lock_path = self.directory / ".results.lock"
        self.duplicates = 0

    def _read(self) -> list[dict]:
        if not self.jsonl_path.is_file():
            return []
        out = []
        for line in self.jsonl_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a kill (older versions appended in place): that cell is redone
        return out

    def records(self) -> list[dict]:
        """All rows, the newest of each cell (:attr:`duplicates` counts the older ones dropped)."""
        rows = self._read()
        newest = {cell_of(r): r for r in rows}
        self.duplicates = len(rows) - len(newest)
        return list(newest.values())

    def done(self) -> dict[tuple[str, str, str, str | None], dict]:
        """The row of every measured ``(model, dataset, resolution, protocol)`` cell."""
        return {cell_of(r): r for r in self.records()}

    def upsert(self, records: Iterable[dict]) -> None:
        """Write ``records``, replacing any row of the same cell; rewrite both files atomically, under the lock."""
        records = list(records)
        if not records:
            return
        with _locked(self.lock_path):
            new = {cell_of(r) for r in records}
            rows = [r for r in self.records() if cell_of(r) not in new] + records
            self._write(rows)

    def _write(self, rows: list[dict]) -> None:
        with atomic_path(self.jsonl_path) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        with atomic_path(self.csv_path) as tmp:
            tmp.write_bytes(_csv_text(rows).encode())

    def repair(self) -> int:
        """Rewrite a table that holds duplicate rows with the newest row of each cell; return how many were dropped.

        Also rewrites ``results.csv`` when it differs from ``results.jsonl`` (a kill between the two files'
        replacements leaves the CSV one cell behind).
        """
        with _locked(self.lock_path):
            rows = self.records()
            dropped = self.duplicates
            csv_bytes = self.csv_path.read_bytes() if self.csv_path.is_file() else None
            if dropped or (rows and csv_bytes != _csv_text(rows).encode()):
                self._write(rows)
        return dropped


def _csv_text(rows: list[dict]) -> str:
    """``results.csv`` of ``rows``."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=RESULT_COLUMNS, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_predictions(
    path: Path,
    predictions: dict[str, torch.Tensor],
    resolutions: Sequence,
    sample_ids: Sequence[str],
    classnames: Sequence[str],
) -> None:
    """Per-sample predictions, one JSON object per line (in sample order), for error analysis.

    Each line: ``index``, ``id`` (the sample's file or key), ``label`` and ``label_name``, and per resolution
    the top-5 ``classes``, their ``names`` and ``scores`` (cosine similarity of image and class embeddings).
    Resolutions already in the file for the same samples are kept (a rerun that adds a resolution merges
    it in; one that re-measures a resolution replaces it); the file is replaced atomically.
    """
    idx, labels, preds = predictions["indices"], predictions["labels"], predictions["preds"]
    scores = predictions.get("scores")
    old = {line["index"]: line for line in read_predictions(path)}
    lines = []
    for i in range(len(idx)):
        k = int(idx[i])
        previous = old.get(k)
        top5 = dict(previous["top5"]) if previous is not None and previous.get("id") == sample_ids[k] else {}
        for j, r in enumerate(resolutions):
            classes = preds[i, j].tolist()
            top5[str(r)] = {
                "classes": classes,
                "names": [classnames[c] for c in classes],
                "scores": [round(v, 5) for v in scores[i, j].tolist()] if scores is not None else None,
            }
        label = int(labels[i])
        lines.append({"index": k, "id": sample_ids[k], "label": label, "label_name": classnames[label], "top5": top5})
    lines.sort(key=lambda line: line["index"])
    with atomic_path(path) as tmp, tmp.open("w") as fh:
        fh.writelines(json.dumps(line) + "\n" for line in lines)


def export_clip_benchmark(records: Iterable[dict], directory: Path) -> list[Path]:
    """Write each row as the per-run JSON of LAION's CLIP_benchmark, which ``clip_benchmark build`` reads.

    CLIP_benchmark has no notion of resolution: a low-resolution row's ``dataset`` reads ``NAME@16px`` (HR rows
    keep the plain name); ``model`` and ``pretrained`` are the two halves of an ``ARCH:TAG`` spec. The row's
    protocol and resolution ride along as extra keys (``build`` copies every key into its CSV).
    """
    written = []
    for rec in records:
        model, _, pretrained = rec["model"].partition(":")
        res = str(rec["resolution"])
        dataset = rec["dataset"] if res == "hr" else f"{rec['dataset']}@{res}px"
        dump = {
            "dataset": dataset,
            "model": model,
            "pretrained": pretrained,
            "task": "zeroshot_classification",
            "metrics": {
                "acc1": rec["top1"],
                "acc5": rec["top5"],
                "mean_per_class_recall": rec.get("mean_per_class_recall"),
            },
            "language": "en",
            "resolution": rec["resolution"],
            "protocol": rec.get("protocol"),
        }
        name = f"{slug(dataset)}_{slug(pretrained or 'none')}_{slug(model)}_en_zeroshot_classification.json"
        path = directory / unique_slug(rec.get("protocol") or "unknown") / name
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(dump))
        written.append(path)
    return written


def plot_accuracy_vs_resolution(records: Sequence[dict], path: Path) -> Path | None:
    """Top-1 vs resolution, one line per (model, dataset); HR is drawn at the right end."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[tuple[str, str], dict] = {}
    for r in records:
        series.setdefault((r["model"], r["dataset"]), {})[str(r["resolution"])] = float(r["top1"])
    if not series:
        return None
    lows = sorted({int(k) for s in series.values() for k in s if k != "hr"})
    xs_labels = [str(x) for x in lows] + (["hr"] if any("hr" in s for s in series.values()) else [])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (model, dataset), values in series.items():
        pts = [(i, 100 * values[x]) for i, x in enumerate(xs_labels) if x in values]
        label = dataset if len({m for m, _ in series}) == 1 else f"{model} / {dataset}"
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
    ax.set_xticks(range(len(xs_labels)), [x if x == "hr" else f"{x}px" for x in xs_labels])
    ax.set_xlabel("input resolution (LR protocol: bicubic down, then the model's preprocessing)")
    ax.set_ylabel("zero-shot top-1 (%)")
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Accuracy vs resolution")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path
