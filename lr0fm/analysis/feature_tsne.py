"""Feature t-SNE (paper Fig. 8): image embeddings at HR and at low resolutions, coloured by class.

The embeddings are the backbone's unit-norm image embeddings of the benchmark's views. Each (variant,
resolution) panel is its own 2-D t-SNE (scikit-learn, cosine metric, PCA initialisation, fixed seed), as
the paper shows one map per resolution. Because a t-SNE map is only a picture, every panel also reports
two numbers measured in the full embedding space: the leave-one-out 1-nearest-neighbour class accuracy
(how separable the classes still are) and the zero-shot top-1 of the same images.

The authors' repository (``shyammarjit/LR0.FM``) has no code for this figure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lr0fm.analysis import ANALYSES
from lr0fm.analysis.figures import FigureRecord, save_figure
from lr0fm.analysis.model_inputs import (
    VARIANT_TITLES,
    AnalysisModel,
    ModelAnalysisInputs,
    figure_name,
    iter_views,
    pick_images,
    resolution_label,
)
from lr0fm.datasets.base import ZeroShotDataset

SECTION = "Inside the model"


@dataclass
class Embeddings:
    """Image embeddings of the chosen images.

    Attributes:
        resolutions: low resolutions then ``"hr"``.
        indices: dataset indices of the images (``[N]``).
        labels: their classes (``[N]``).
        features: variant -> ``[resolutions, N, dim]`` unit-norm embeddings.
        predictions: variant -> ``[resolutions, N]`` zero-shot top-1 classes.
    """

    resolutions: list[int | str]
    indices: torch.Tensor
    labels: torch.Tensor
    features: dict[str, torch.Tensor]
    predictions: dict[str, torch.Tensor]


@torch.no_grad()
def image_embeddings(
    model: AnalysisModel,
    dataset: ZeroShotDataset,
    indices: list[int],
    resolutions: list[int | str],
    *,
    batch_size: int = 32,
    workers: int = 0,
) -> Embeddings:
    """Embed the chosen images at every resolution, with every variant of the model."""
    classifier = model.classifier(dataset)
    feats: dict[str, list[torch.Tensor]] = {v: [] for v in model.variants}
    labels, order = [], []
    for views, batch_labels, batch_indices in iter_views(
        model, dataset, indices, resolutions, batch_size=batch_size, workers=workers
    ):
        count = views.shape[0]
        for variant in model.variants:
            with model.variant(variant):
                feats[variant].append(model.embed(views.flatten(0, 1)).view(count, len(resolutions), -1).cpu())
        labels.append(batch_labels)
        order.append(batch_indices)
    features = {v: torch.cat(f).transpose(0, 1).contiguous() for v, f in feats.items()}
    predictions = {v: (f.to(classifier.device) @ classifier.T).argmax(-1).cpu() for v, f in features.items()}
    return Embeddings(list(resolutions), torch.cat(order), torch.cat(labels), features, predictions)


def nearest_neighbour_accuracy(features: torch.Tensor, labels: torch.Tensor) -> float:
    """Leave-one-out 1-NN class accuracy of unit-norm ``features [N, d]`` under cosine similarity."""
    if features.shape[0] < 2:
        raise ValueError("1-NN accuracy needs at least 2 images")
    sims = features.double() @ features.double().T
    sims.fill_diagonal_(-float("inf"))
    return float((labels[sims.argmax(dim=1)] == labels).double().mean())


def tsne_2d(features: torch.Tensor, *, perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """2-D t-SNE of ``features [N, d]`` (cosine metric, PCA init); perplexity capped below ``N / 3``.

    Raises:
        ValueError: fewer than 4 images.

    """
    from sklearn.manifold import TSNE

    count = features.shape[0]
    if count < 4:
        raise ValueError(f"t-SNE needs at least 4 images, got {count} (raise --images)")
    perplexity = float(min(perplexity, max(1.0, (count - 1) / 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, metric="cosine", init="pca", random_state=seed)
    return tsne.fit_transform(features.double().numpy())


def _panel_order(resolutions: list[int | str]) -> list[int | str]:
    """HR first, then the low resolutions from high to low (the paper's left-to-right order)."""
    return [resolutions[-1], *reversed(resolutions[:-1])]


def _plot(points, embeddings: Embeddings, stats, classnames: list[str], title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants, order = list(embeddings.features), _panel_order(embeddings.resolutions)
    fig, axes = plt.subplots(
        len(variants), len(order), figsize=(3.0 * len(order) + 1.5, 3.0 * len(variants) + 0.5), squeeze=False
    )
    labels = embeddings.labels.numpy()
    classes = sorted(set(labels.tolist()))
    cmap = plt.get_cmap("tab20" if len(classes) > 10 else "tab10")
    for i, variant in enumerate(variants):
        for j, r in enumerate(order):
            ax, xy = axes[i][j], points[(variant, r)]
            for k, c in enumerate(classes):
                mask = labels == c
                ax.scatter(xy[mask, 0], xy[mask, 1], s=8, color=cmap(k % cmap.N), label=classnames[c])
            knn, top1 = stats[(variant, r)]
            ax.set_title(f"{resolution_label(r)}, {VARIANT_TITLES[variant]}\n1-NN {knn:.2f}, zero-shot {top1:.2f}",
                         fontsize=8)  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
    legend = len(classes) <= 20
    if legend:
        handles, names = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, names, loc="center left", bbox_to_anchor=(0.865, 0.5), fontsize=7, markerscale=1.5)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.86 if legend else 1, 0.95))
    return fig


@ANALYSES.register("tsne", kind="model", title="t-SNE of image embeddings (paper Fig. 8)")
def analyze_tsne(inputs: ModelAnalysisInputs) -> list[FigureRecord]:
    """Embed the chosen images, map each (variant, resolution) with t-SNE and write the figure."""
    model, dataset = inputs.model, inputs.dataset
    indices = pick_images(dataset, inputs.images)
    embeddings = image_embeddings(
        model, dataset, indices, inputs.resolutions, batch_size=inputs.batch_size, workers=inputs.workers
    )
    perplexity = float(inputs.options.get("perplexity", 30.0))
    seed = int(inputs.options.get("tsne_seed", 0))
    points, stats, rows = {}, {}, []
    labels = embeddings.labels
    for variant, feats in embeddings.features.items():
        for i, r in enumerate(embeddings.resolutions):
            xy = tsne_2d(feats[i], perplexity=perplexity, seed=seed)
            predicted = embeddings.predictions[variant][i]
            knn = nearest_neighbour_accuracy(feats[i], labels)
            top1 = float((predicted == labels).double().mean())
            points[(variant, r)], stats[(variant, r)] = xy, (knn, top1)
            rows += [
                {
                    "variant": variant,
                    "resolution": str(r),
                    "index": int(embeddings.indices[n]),
                    "label": int(labels[n]),
                    "label_name": dataset.classnames[int(labels[n])],
                    "predicted": dataset.classnames[int(predicted[n])],
                    "x": round(float(xy[n, 0]), 4),
                    "y": round(float(xy[n, 1]), 4),
                    "panel_1nn_accuracy": round(knn, 6),
                    "panel_zero_shot_top1": round(top1, 6),
                }
                for n in range(len(labels))
            ]
    tokens = " with and without LR tokens" if len(embeddings.features) > 1 else ""
    record = FigureRecord(
        name=figure_name("tsne", model.spec, dataset.name),
        title=f"t-SNE of image embeddings: {model.spec} on {dataset.name}",
        caption=f"t-SNE of the image embeddings of {len(labels)} {dataset.name} images at HR and low resolutions"
        f"{tokens}, coloured by class; each panel gives the leave-one-out 1-NN class accuracy and the zero-shot "
        "top-1 of the same images (paper Fig. 8: classes overlap as the resolution drops).",
        command=inputs.command,
        section=SECTION,
        analysis="tsne",
    )
    return [save_figure(_plot(points, embeddings, stats, dataset.classnames, record.title), inputs.output, record,
                        rows)]  # fmt: skip
