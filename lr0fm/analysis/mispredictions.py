"""Semantic mispredictions (paper Fig. 2): images right at HR but wrong at a low resolution, and how wrong.

Reads the per-sample predictions ``lr0fm benchmark`` writes
(``OUTPUT/predictions/PROTOCOL/MODEL/DATASET.jsonl``, :func:`lr0fm.benchmark.outputs.write_predictions`:
per image its label and, per resolution, the top-5 classes, names and scores) and selects every image whose
top-1 is the true class at HR and another class at a low resolution.

How semantically close is a wrong prediction? The backbone's text tower answers: the cosine of the
predicted class's and the true class's zero-shot text embeddings (the dataset's prompt templates
averaged, exactly the classifier the benchmark scores with). Two baselines put that number in context:
the mean cosine of the true class with *all* other classes (the expected value for a uniformly random
wrong class) and, per misprediction, the share of the other wrong classes the predicted one is closer to
(0.5 on average for a random wrong class; near 1 when the model falls back to a semantic neighbour).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lr0fm.analysis import ANALYSES
from lr0fm.analysis.figures import FigureRecord, save_figure
from lr0fm.analysis.model_inputs import (
    ModelAnalysisInputs,
    figure_name,
    resolution_label,
    to_picture,
)
from lr0fm.analysis.properties import TOKENS_MARK, base_model
from lr0fm.benchmark.outputs import predictions_path as benchmark_predictions_path
from lr0fm.datasets.base import ZeroShotDataset
from lr0fm.protocols import HR

SECTION = "Semantic mispredictions"


class PredictionsError(ValueError):
    """A predictions file is missing, malformed, or was written for another dataset."""


def predictions_path(source: str | Path, model_label: str, dataset: str, protocol: str) -> Path:
    """The predictions file of (model, dataset, protocol): ``source`` itself, or its place in a benchmark folder.

    Args:
        source: a ``.jsonl`` predictions file, or a ``lr0fm benchmark --output`` folder.
        model_label: the benchmark's ``model`` column (spec, plus the token file when tokens were applied).
        dataset: the dataset name.
        protocol: the LR protocol the benchmark ran.

    Raises:
        PredictionsError: nothing there (the message lists the predictions files the folder has).

    """
    source = Path(source)
    if source.is_file():
        return source
    if not source.is_dir():
        raise PredictionsError(f"--predictions {source}: no such file or folder (give a `lr0fm benchmark` output "
                               "folder or one of its predictions/PROTOCOL/MODEL/DATASET.jsonl files)")  # fmt: skip
    path = benchmark_predictions_path(source, protocol, model_label, dataset)
    if path.is_file():
        return path
    found = sorted(str(p.relative_to(source)) for p in (source / "predictions").rglob("*.jsonl"))
    listing = ", ".join(found[:20]) + (" ..." if len(found) > 20 else "") if found else "none"
    spec, tokens = base_model(model_label), " --lr_tokens FILE" if TOKENS_MARK in model_label else ""
    raise PredictionsError(
        f"no predictions of {model_label!r} on {dataset!r} (protocol {protocol!r}) in {source}: expected "
        f"{path.relative_to(source)}; predictions files there: {listing}. Run `lr0fm benchmark --model "
        f"{spec}{tokens} --dataset {dataset} --resolutions 16 32 hr --output {source}` first"
    )


def read_predictions(path: Path, dataset: ZeroShotDataset) -> list[dict[str, Any]]:
    """The records of a predictions file, checked against ``dataset`` (same images, same class names).

    Raises:
        PredictionsError: malformed lines, no HR predictions, or records that do not match the dataset.

    """
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            index, label, top5 = int(record["index"]), int(record["label"]), record["top5"]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise PredictionsError(f"{path}:{number}: not a predictions record written by lr0fm benchmark "
                                   f"({exc})") from exc  # fmt: skip
        if HR not in top5:
            raise PredictionsError(f"{path}: no HR predictions (resolutions {', '.join(top5)}); rerun the "
                                   "benchmark with `--resolutions ... hr`")  # fmt: skip
        ours = dataset.sample_id(index) if 0 <= index < len(dataset) else "out of range"
        if ours != record.get("id"):
            raise PredictionsError(
                f"{path}:{number}: sample {index} is {record.get('id')!r} there but {ours!r} in dataset "
                f"{dataset.name!r}; the predictions were written for another dataset or data root"
            )
        if dataset.classnames[label] != record.get("label_name"):
            raise PredictionsError(f"{path}:{number}: class {label} is {record.get('label_name')!r} there but "
                                   f"{dataset.classnames[label]!r} in dataset {dataset.name!r}")  # fmt: skip
        records.append(record)
    if not records:
        raise PredictionsError(f"{path} holds no predictions")
    return records


def select_mispredictions(records: list[dict[str, Any]], resolutions: list[int | str]) -> list[tuple[dict, str]]:
    """``(record, resolution)`` of every image right at HR and wrong at a low resolution, in file order."""
    lows = [str(r) for r in resolutions if r != HR]
    chosen = []
    for record in records:
        label, top5 = int(record["label"]), record["top5"]
        if top5[HR]["classes"][0] != label:
            continue
        chosen += [(record, r) for r in lows if r in top5 and top5[r]["classes"][0] != label]
    return chosen


def examples_to_show(cases: list[tuple], count: int) -> list[tuple]:
    """Up to ``count`` cases ``(record, resolution, ...)`` for the grid: distinct images, the classes in turn.

    Each image appears once, at the lowest resolution it is wrong at; images are taken class by class in
    turn (in file order within a class), so one class with many mistakes does not fill the grid.
    """
    first: dict[int, tuple] = {}
    for case in cases:
        first.setdefault(int(case[0]["index"]), case)
    by_class: dict[int, list[tuple]] = {}
    for case in first.values():
        by_class.setdefault(int(case[0]["label"]), []).append(case)
    queues = [by_class[c] for c in sorted(by_class)]
    shown: list[tuple] = []
    depth = 0
    while len(shown) < count and any(depth < len(q) for q in queues):
        shown += [q[depth] for q in queues if depth < len(q)][: count - len(shown)]
        depth += 1
    return shown


@dataclass
class SemanticCloseness:
    """Text-embedding similarity of a wrong prediction to the true class, with its baselines.

    Attributes:
        similarity: cosine of the predicted and the true class's text embeddings.
        random_wrong: mean cosine of the true class with every other class.
        percentile: share of the other wrong classes (neither true nor predicted) less similar to the true class.
    """

    similarity: float
    random_wrong: float
    percentile: float


def closeness(class_similarity: torch.Tensor, label: int, predicted: int) -> SemanticCloseness:
    """:class:`SemanticCloseness` of predicting ``predicted`` for ``label`` (``class_similarity``: ``[C, C]``)."""
    row = class_similarity[label].double()
    others = torch.ones_like(row, dtype=torch.bool)
    others[label] = False
    random_wrong = float(row[others].mean())
    others[predicted] = False
    percentile = float((row[others] < row[predicted]).double().mean()) if others.any() else 1.0
    return SemanticCloseness(float(row[predicted]), random_wrong, percentile)


def _grid(examples, dataset: ZeroShotDataset, transforms, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_row = 3
    rows = -(-len(examples) // per_row)
    fig, axes = plt.subplots(rows, 2 * per_row, figsize=(2.0 * 2 * per_row, 3.1 * rows + 0.6), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k, (record, r, close) in enumerate(examples):
        image, _ = dataset[int(record["index"])]
        transform = transforms[r]
        views = transform(image)
        hr_ax, lr_ax = axes[k // per_row][2 * (k % per_row)], axes[k // per_row][2 * (k % per_row) + 1]
        hr_ax.imshow(to_picture(views[1], transform.normalization))
        lr_ax.imshow(to_picture(views[0], transform.normalization))
        hr_ax.set_title(f"HR: {record['label_name']}", fontsize=8, color="green")
        lr_ax.set_title(f"{resolution_label(int(r))}: {record['top5'][r]['names'][0]}", fontsize=8, color="red")
        top5 = record["top5"][r]
        scores = top5.get("scores") or [None] * len(top5["names"])
        lines = [f"{n}" + (f" {s:.2f}" if s is not None else "") for n, s in zip(top5["names"], scores)]
        text = "\n".join(lines) + f"\ntext sim {close.similarity:.3f}\n(random class {close.random_wrong:.3f})"
        lr_ax.text(0.0, -0.04, text, transform=lr_ax.transAxes, fontsize=6.5, va="top", family="monospace")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return fig


def _strips(summary: list[dict[str, Any]], similarities: dict[str, list[float]], title: str):
    """Per resolution: each misprediction's similarity (dots), their mean (red bar), the random-class mean (grey)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(1.8 + 1.4 * len(summary), 3.6))
    rng = np.random.default_rng(0)
    for x, s in enumerate(summary):
        values = similarities[s["resolution"]]
        ax.scatter(x + rng.uniform(-0.18, 0.18, len(values)), values, s=10, color="tab:red", alpha=0.5,
                   label="predicted vs true class" if x == 0 else None)  # fmt: skip
        if values:
            ax.hlines(s["mean_similarity"], x - 0.3, x + 0.3, color="tab:red", linewidth=2.5)
            ax.hlines(s["mean_random_wrong_similarity"], x - 0.3, x + 0.3, color="tab:gray", linewidth=2.5,
                      linestyles="dashed", label="random wrong class vs true (mean)" if x == 0 else None)  # fmt: skip
        ax.annotate(f"n={s['mispredictions']}\ncloser than {s['mean_percentile']:.0%}", (x, 1.0),
                    xycoords=("data", "axes fraction"), ha="center", va="top", fontsize=7)  # fmt: skip
    ax.set_xticks(range(len(summary)), [resolution_label(int(s["resolution"])) for s in summary])
    ax.set_xlim(-0.6, len(summary) - 0.4)
    ax.margins(y=0.3)
    ax.set_ylabel("cosine of class text embeddings")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


@ANALYSES.register("mispredictions", kind="model", title="Semantic mispredictions at low resolution (paper Fig. 2)")
def analyze_mispredictions(inputs: ModelAnalysisInputs) -> list[FigureRecord]:
    """Select the mispredictions of a benchmark run, measure their semantic closeness, draw grid and bars."""
    model, dataset = inputs.model, inputs.dataset
    if "predictions" not in inputs.options or inputs.options["predictions"] is None:
        raise PredictionsError("mispredictions need --predictions (a `lr0fm benchmark` output folder or file)")
    path = predictions_path(inputs.options["predictions"], model.label, dataset.name, model.protocol)
    records = read_predictions(path, dataset)
    have = [r for r in records[0]["top5"] if r != HR]
    missing = [str(r) for r in inputs.resolutions if r != HR and str(r) not in have]
    if missing:
        raise PredictionsError(f"{path} has no predictions at {', '.join(missing)} px (it has {', '.join(have)}); "
                               "pass --resolutions among those or rerun the benchmark with them")  # fmt: skip
    selected = select_mispredictions(records, inputs.resolutions)
    with torch.no_grad():
        classes = model.classifier(dataset).float()
        class_similarity = (classes @ classes.T).cpu()
    rows, closeness_of = [], []
    for record, r in selected:
        top5 = record["top5"][r]
        close = closeness(class_similarity, int(record["label"]), int(top5["classes"][0]))
        closeness_of.append(close)
        rows.append({
            "index": int(record["index"]),
            "id": record["id"],
            "resolution": r,
            "label_name": record["label_name"],
            "top5": " | ".join(top5["names"]),
            "top5_scores": " | ".join(f"{s:.5f}" for s in top5["scores"]) if top5.get("scores") else "",
            "similarity": round(close.similarity, 6),
            "random_wrong_similarity": round(close.random_wrong, 6),
            "percentile": round(close.percentile, 6),
        })  # fmt: skip
    lows = [str(r) for r in inputs.resolutions if r != HR]
    summary, similarities = [], {}
    for r in lows:
        mine = [c for (_, res), c in zip(selected, closeness_of) if res == r]
        similarities[r] = [c.similarity for c in mine]
        right_at_hr = sum(1 for rec in records if rec["top5"][HR]["classes"][0] == int(rec["label"]))
        summary.append({
            "resolution": r,
            "images": len(records),
            "right_at_hr": right_at_hr,
            "mispredictions": len(mine),
            "mean_similarity": round(sum(c.similarity for c in mine) / len(mine), 6) if mine else float("nan"),
            "mean_random_wrong_similarity": round(sum(c.random_wrong for c in mine) / len(mine), 6)
            if mine else float("nan"),
            "mean_percentile": round(sum(c.percentile for c in mine) / len(mine), 6) if mine else float("nan"),
        })  # fmt: skip
    if not selected:
        raise PredictionsError(f"{path}: no image is right at HR and wrong at {', '.join(lows)} px; nothing to show")
    about = f"{model.label} on {dataset.name}"
    grid = FigureRecord(
        name=figure_name("mispredictions", model.label, dataset.name),
        title=f"Right at HR, wrong at low resolution: {about}",
        caption=f"Images right at HR and wrong at low resolution ({len(selected)} (image, resolution) cases, "
        f"{min(inputs.images, len({int(rec['index']) for rec, _ in selected}))} images shown, the classes in turn), "
        "with the top-5 at that resolution and the text-embedding cosine of the predicted and the true class "
        "(paper Fig. 2); the CSV lists every case.",
        command=inputs.command,
        section=SECTION,
        analysis="mispredictions",
    )
    bars = FigureRecord(
        name=figure_name("mispredictions_similarity", model.label, dataset.name),
        title=f"How close are the wrong classes? {about}",
        caption="Mean cosine of the predicted and the true class's text embeddings for the images right at HR and "
        "wrong at each low resolution, against a random wrong class; 'closer than' is the mean share of the other "
        "wrong classes the prediction is more similar to (50% by chance).",
        command=inputs.command,
        section=SECTION,
        analysis="mispredictions",
    )
    shown = examples_to_show([(rec, r, c) for (rec, r), c in zip(selected, closeness_of)], inputs.images)
    transforms = {r: model.transform([int(r), HR]) for r in {r for _, r, _ in shown}}
    return [
        save_figure(_grid(shown, dataset, transforms, grid.title), inputs.output, grid, rows),
        save_figure(_strips(summary, similarities, bars.title), inputs.output, bars, summary),
    ]
