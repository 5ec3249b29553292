"""Layer similarity (paper Fig. 7 right): how close each block's features at a low resolution stay to HR.

Per transformer block, the feature of an image is the mean of its spatial tokens at the block's output
(:class:`~lr0fm.analysis.vit_hooks.BlockFeatures`). For every resolution and block the features of the
chosen images are compared with the same block's features of the same images at HR, by the mean per-image
cosine and by linear CKA over the images (:mod:`lr0fm.analysis.similarity`, Kornblith et al. 2019 -- the
work the paper cites for this figure). The reference is always the backbone *without* LR tokens at HR
(the frozen model LR-TK0 distils from), so the with-tokens rows show how far the tokens bring LR features
towards it; their HR row shows how much the tokens move HR features.

Two figures: a resolution x block heatmap per metric and variant (the diagonal of the paper's figure),
and the paper's layer x layer CKA matrices (LR block ``i`` vs HR block ``j``) per resolution.

Deviation: the paper's caption says "L2 similarity" while its text and citation describe CKA; lr0fm
reports CKA and cosine, both bounded and comparable across blocks. The authors' repository
(``shyammarjit/LR0.FM``) has no code for this figure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lr0fm.analysis import ANALYSES
from lr0fm.analysis.figures import FigureRecord, save_figure
from lr0fm.analysis.model_inputs import (
    BASE,
    VARIANT_TITLES,
    AnalysisModel,
    ModelAnalysisInputs,
    figure_name,
    iter_views,
    pick_images,
    resolution_label,
)
from lr0fm.analysis.similarity import cka_matrix, linear_cka, mean_cosine
from lr0fm.analysis.vit_hooks import BlockFeatures
from lr0fm.datasets.base import ZeroShotDataset
from lr0fm.protocols import HR

SECTION = "Inside the model"


@dataclass
class LayerSimilarity:
    """Similarity of every block's features at each resolution to the base model's at HR.

    Attributes:
        resolutions: low resolutions then ``"hr"``.
        variants: ``"base"`` and, with LR tokens, ``"lr-tokens"``.
        num_images: images compared.
        cosine: variant -> ``[resolutions, blocks]`` mean per-image cosine.
        cka: variant -> ``[resolutions, blocks]`` linear CKA.
        cka_layers: variant -> ``[resolutions, blocks, blocks]`` CKA of block ``i`` at the resolution with
            block ``j`` at HR.
    """

    resolutions: list[int | str]
    variants: list[str]
    num_images: int
    cosine: dict[str, torch.Tensor]
    cka: dict[str, torch.Tensor]
    cka_layers: dict[str, torch.Tensor]


@torch.no_grad()
def block_features(
    model: AnalysisModel,
    dataset: ZeroShotDataset,
    indices: list[int],
    resolutions: list[int | str],
    *,
    batch_size: int = 32,
    workers: int = 0,
) -> dict[str, list[list[torch.Tensor]]]:
    """Mean spatial-token features: variant -> resolution -> block -> ``[images, width]``."""
    # variant -> resolution -> batches -> blocks
    collected: dict[str, list[list[list[torch.Tensor]]]] = {v: [[] for _ in resolutions] for v in model.variants}
    with BlockFeatures(model.backbone) as hooks:
        for views, _, _ in iter_views(model, dataset, indices, resolutions, batch_size=batch_size, workers=workers):
            count = views.shape[0]
            flat = views.flatten(0, 1)  # [B * R, 3, S, S]: image-major, every resolution in one forward
            for variant in model.variants:
                with model.variant(variant):
                    model.backbone.encode_image(flat.to(model.device))
                blocks = [f.view(count, len(resolutions), -1) for f in hooks.take()]
                for r in range(len(resolutions)):
                    collected[variant][r].append([f[:, r] for f in blocks])
    return {
        variant: [[torch.cat([batch[b] for batch in per_res]) for b in range(len(per_res[0]))] for per_res in batches]
        for variant, batches in collected.items()
    }


def layer_similarity(features: dict[str, list[list[torch.Tensor]]], resolutions: list[int | str]) -> LayerSimilarity:
    """Compare every variant's features at every resolution with the base variant's at HR."""
    reference = features[BASE][resolutions.index(HR)]
    cosine, cka, layers = {}, {}, {}
    for variant, per_res in features.items():
        cosine[variant] = torch.tensor(
            [[mean_cosine(f, ref) for f, ref in zip(blocks, reference)] for blocks in per_res], dtype=torch.float64
        )
        cka[variant] = torch.tensor(
            [[linear_cka(f, ref) for f, ref in zip(blocks, reference)] for blocks in per_res], dtype=torch.float64
        )
        layers[variant] = torch.stack([cka_matrix(blocks, reference) for blocks in per_res])
    return LayerSimilarity(list(resolutions), list(features), int(reference[0].shape[0]), cosine, cka, layers)


def _heatmaps(result: LayerSimilarity, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blocks = result.cosine[BASE].shape[1]
    rows, metrics = result.variants, [("cosine", result.cosine), ("linear CKA", result.cka)]
    fig, axes = plt.subplots(
        len(rows), 2, figsize=(2.2 + 0.45 * blocks * 2, 0.8 + 0.45 * len(result.resolutions) * len(rows) + 0.6),
        squeeze=False,
    )  # fmt: skip
    labels = [resolution_label(r) for r in result.resolutions]
    for i, variant in enumerate(rows):
        for j, (metric, values) in enumerate(metrics):
            ax = axes[i][j]
            data = values[variant].numpy()
            image = ax.imshow(data, vmin=_floor(values), vmax=1.0, cmap="viridis", aspect="auto")
            if blocks <= 16:
                middle = (_floor(values) + 1.0) / 2
                for (y, x), v in _cells(data):
                    ax.text(x, y, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w" if v < middle else "k")
            ax.set_xticks(range(blocks), [str(b + 1) for b in range(blocks)], fontsize=7)
            ax.set_yticks(range(len(labels)), labels, fontsize=8)
            ax.set_xlabel("block")
            ax.set_title(f"{metric}, {VARIANT_TITLES[variant]}", fontsize=9)
            fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _floor(values: dict[str, torch.Tensor]) -> float:
    """Lower end of a colour scale shared by the panels of one metric: the smallest value, down to a 0.05 step.

    The scale stops at 1, so small differences near 1 stay visible (the paper's "brighter is more similar").
    """
    low = min(float(v.min()) for v in values.values())
    return min(0.95, float(np.floor(low * 20) / 20))


def _cells(data):
    for y in range(data.shape[0]):
        for x in range(data.shape[1]):
            yield (y, x), float(data[y, x])


def _layer_matrices(result: LayerSimilarity, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lows = [r for r in result.resolutions if r != HR]
    fig, axes = plt.subplots(
        len(result.variants), len(lows), figsize=(2.6 * len(lows) + 0.8, 2.8 * len(result.variants) + 0.6),
        squeeze=False, layout="constrained",
    )  # fmt: skip
    image = None
    for i, variant in enumerate(result.variants):
        for j, r in enumerate(lows):
            ax = axes[i][j]
            data = result.cka_layers[variant][result.resolutions.index(r)].numpy()
            image = ax.imshow(data, vmin=_floor(result.cka_layers), vmax=1.0, cmap="magma")
            ax.set_title(f"{resolution_label(r)} vs HR\n{VARIANT_TITLES[variant]}", fontsize=8)
            ax.set_xlabel("HR block", fontsize=7)
            ax.set_ylabel(f"{resolution_label(r)} block", fontsize=7)
            ticks = range(0, data.shape[0], max(1, data.shape[0] // 6))
            ax.set_xticks(list(ticks), [str(t + 1) for t in ticks], fontsize=6)
            ax.set_yticks(list(ticks), [str(t + 1) for t in ticks], fontsize=6)
    fig.colorbar(image, ax=axes, fraction=0.02, pad=0.02, label="linear CKA")
    fig.suptitle(title, fontsize=10)
    return fig


@ANALYSES.register("layer-similarity", kind="model", title="Layer similarity to HR (paper Fig. 7 right)")
def analyze_layer_similarity(inputs: ModelAnalysisInputs) -> list[FigureRecord]:
    """Compute the layer similarity of the chosen images and write its two figures."""
    model, dataset = inputs.model, inputs.dataset
    indices = pick_images(dataset, inputs.images)
    features = block_features(
        model, dataset, indices, inputs.resolutions, batch_size=inputs.batch_size, workers=inputs.workers
    )
    result = layer_similarity(features, inputs.resolutions)
    about = f"{model.label} on {dataset.name}, {result.num_images} images"
    heat_rows = [
        {
            "variant": variant,
            "resolution": str(r),
            "block": b + 1,
            "cosine": round(float(result.cosine[variant][i, b]), 6),
            "cka": round(float(result.cka[variant][i, b]), 6),
            "images": result.num_images,
        }
        for variant in result.variants
        for i, r in enumerate(result.resolutions)
        for b in range(result.cosine[variant].shape[1])
    ]
    matrix_rows = [
        {"variant": variant, "resolution": str(r), "block": b + 1, "hr_block": h + 1,
         "cka": round(float(result.cka_layers[variant][i, b, h]), 6)}
        for variant in result.variants
        for i, r in enumerate(result.resolutions)
        if r != HR
        for b in range(result.cka_layers[variant].shape[1])
        for h in range(result.cka_layers[variant].shape[2])
    ]  # fmt: skip
    tokens = " with and without LR tokens" if len(result.variants) > 1 else ""
    heat = FigureRecord(
        name=figure_name("layer_similarity", model.spec, dataset.name),
        title=f"Layer similarity to HR: {model.spec} on {dataset.name}",
        caption=f"Per block, cosine and linear CKA of the mean spatial-token features at each resolution with the "
        f"same block at HR (base model){tokens}; {about}.",
        command=inputs.command,
        section=SECTION,
        analysis="layer-similarity",
    )
    matrix = FigureRecord(
        name=figure_name("layer_similarity_matrix", model.spec, dataset.name),
        title=f"Layer x layer CKA, LR vs HR: {model.spec} on {dataset.name}",
        caption=f"Linear CKA of every block at each low resolution with every block at HR (paper Fig. 7 right: "
        f"brighter is more similar){tokens}; {about}.",
        command=inputs.command,
        section=SECTION,
        analysis="layer-similarity",
    )
    return [
        save_figure(_heatmaps(result, heat.title), inputs.output, heat, heat_rows),
        save_figure(_layer_matrices(result, matrix.title), inputs.output, matrix, matrix_rows),
    ]
