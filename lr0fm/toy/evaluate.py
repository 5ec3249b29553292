"""Zero-shot top-1 of a backbone on the toy tasks, through the benchmark's one evaluation path.

Toy images are square, so every LR protocol makes the same views of them (``paper`` falls back to the
paper's text for ``toyclip``: square ``n x n`` bicubic, then the model's own preprocessing).
"""

from __future__ import annotations

from collections.abc import Sequence

from lr0fm.benchmark.engine import evaluate_backbone
from lr0fm.models.base import Backbone
from lr0fm.protocols import HR
from lr0fm.toy.datasets import TOY_DATASETS, build_toy_dataset


def evaluate_toy(
    backbone: Backbone,
    tasks: Sequence[str] = TOY_DATASETS,
    resolutions: Sequence[int | str | None] = (None, 32, 16, 8),
    num_per_class: int = 100,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Top-1 (%) per task and resolution: ``{task: {"hr" | "32" | ...: accuracy}}`` (``None`` = ``"hr"``)."""
    datasets = {task: build_toy_dataset(task, num_per_class=num_per_class, seed=seed) for task in tasks}
    wanted = [HR if r is None else r for r in resolutions]
    records = evaluate_backbone(backbone.eval(), datasets, wanted, batch_size=200)
    results: dict[str, dict[str, float]] = {task: {} for task in tasks}
    for record in records:
        results[record["dataset"]][str(record["resolution"])] = 100.0 * record["top1"]
    return results
