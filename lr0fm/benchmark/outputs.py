"""Benchmark outputs: results table, per-sample predictions and the accuracy-vs-resolution plot.

The results table is CSV + JSON Lines with one record per (model, dataset, resolution), appended as each
(model, dataset) run finishes.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from lr0fm.atomic import atomic_path

RESULT_COLUMNS = [
    "model", "dataset", "resolution", "protocol", "chain", "top1", "top5", "num_samples", "num_classes",
    "num_skipped",
]  # fmt: skip


def slug(text: str) -> str:
    """A filesystem-safe name for a model spec or dataset name."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_") or "model"


class ResultsStore:
    """Append-only results table in ``DIR/results.csv`` and ``DIR/results.jsonl``.

    Records are flushed as soon as a (model, dataset) run finishes, so a killed sweep loses at most the
    run in progress; :meth:`done` tells which (model, dataset, resolution) cells already exist. The JSON
    Lines file is the source of truth: a line torn by a kill is dropped, and the CSV is rewritten from it
    after every append, so the two files never disagree (no duplicate rows after a resume).
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.csv_path = self.directory / "results.csv"
        self.jsonl_path = self.directory / "results.jsonl"

    def records(self) -> list[dict]:
        """All records written so far (from the JSON Lines file; a torn last line is ignored)."""
        if not self.jsonl_path.is_file():
            return []
        out = []
        for line in self.jsonl_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a kill: that run is simply redone
        return out

    def done(self) -> set[tuple[str, str, str, str | None]]:
        """``(model, dataset, resolution, protocol)`` cells already measured (resolution as a string).

        Rows written before results recorded their protocol have protocol ``None``: they match no
        protocol, so a rerun measures those cells again under the protocol it asks for.
        """
        return {(r["model"], r["dataset"], str(r["resolution"]), r.get("protocol")) for r in self.records()}

    def append(self, records: Iterable[dict]) -> None:
        """Append records to the JSON Lines file, then rewrite the CSV from it (atomically)."""
        records = list(records)
        if not records:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self._drop_torn_line()
        with self.jsonl_path.open("a") as fh:
            for rec in records:
                fh.write(json.dumps(rec) + "\n")
            fh.flush()
        with atomic_path(self.csv_path) as tmp, tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=RESULT_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.records())

    def _drop_torn_line(self) -> None:
        """Cut an unterminated last line (a write interrupted by a kill); its run is redone."""
        if self.jsonl_path.is_file():
            data = self.jsonl_path.read_bytes()
            if data and not data.endswith(b"\n"):
                with self.jsonl_path.open("r+b") as fh:
                    fh.truncate(data.rfind(b"\n") + 1)


def write_predictions(
    path: Path, predictions: dict[str, torch.Tensor], resolutions: Sequence, sample_ids: Sequence[str]
) -> None:
    """Per-sample top-5 predictions and labels (one JSON object per line) for later error analysis."""
    idx, labels, preds = predictions["indices"], predictions["labels"], predictions["preds"]
    with atomic_path(path) as tmp, tmp.open("w") as fh:
        for i in range(len(idx)):
            k = int(idx[i])
            top5 = {str(r): preds[i, j].tolist() for j, r in enumerate(resolutions)}
            fh.write(json.dumps({"index": k, "id": sample_ids[k], "label": int(labels[i]), "top5": top5}) + "\n")


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
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
