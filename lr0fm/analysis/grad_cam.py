"""Grad-CAM on the last block (paper Fig. 16): where the model looks at each resolution, with and without LR tokens.

Grad-CAM (pytorch-grad-cam's ``GradCAM``) of the zero-shot score of the image's *true* class -- the image
embedding's cosine with the class's text embedding, as :class:`ZeroShotLogits` computes for every class
of the dataset -- read at the first norm of the last transformer block and laid out on the patch grid
(:func:`~lr0fm.analysis.vit_hooks.vit_reshape_transform`, for open_clip and timm towers). Each map is
upsampled to the model's input size and scaled to ``[0, 1]`` by the package.

The true class (not the prediction) is the target so that the maps of one image are comparable across
resolutions and variants. Besides the overlay grid, each map's *focus* is recorded: the share of its mass
in its hottest 10 % of pixels (0.1 for a flat map, 1 for one concentrated on a tenth of the image), a
number for the paper's "attention is scattered at 16x16". The raw maps are saved as ``NAME_maps.npz``.

The authors' repository (``shyammarjit/LR0.FM``) has no code for this figure.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lr0fm.analysis import ANALYSES
from lr0fm.analysis.figures import FigureRecord, add_to_manifest, save_figure
from lr0fm.analysis.model_inputs import (
    VARIANT_TITLES,
    AnalysisModel,
    ModelAnalysisInputs,
    figure_name,
    iter_views,
    pick_images,
    resolution_label,
    to_picture,
)
from lr0fm.analysis.vit_hooks import cam_target_layer, vit_layout, vit_reshape_transform
from lr0fm.models.base import Backbone

SECTION = "Inside the model"
#: share of the hottest pixels whose CAM mass is the map's focus
FOCUS_SHARE = 0.1


class ZeroShotLogits(nn.Module):
    """Backbone + zero-shot text classifier as a classifier module: images -> ``scale x`` cosine per class.

    Args:
        backbone: the image-text model.
        classifier: ``[classes, dim]`` unit-norm class text embeddings.
        scale: logit scale (CLIP's 100); it scales the maps' gradients, not their shape.

    """

    def __init__(self, backbone: Backbone, classifier: torch.Tensor, scale: float = 100.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.register_buffer("classifier", classifier.detach().float(), persistent=False)
        self.scale = scale

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, classes]`` zero-shot logits; the input is made to need gradients, so a frozen model works too."""
        if not images.requires_grad:
            images = images.detach().requires_grad_(True)
        embedding = F.normalize(self.backbone.encode_image(images).float(), dim=-1)
        return self.scale * embedding @ self.classifier.T


def grad_cam_maps(model: AnalysisModel, head: ZeroShotLogits, images: torch.Tensor, targets: list[int]) -> np.ndarray:
    """Grad-CAM maps ``[B, S, S]`` (in ``[0, 1]``) of class ``targets[i]`` for ``images [B, 3, S, S]``."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    layout = vit_layout(model.backbone)
    with torch.enable_grad(), GradCAM(head, [cam_target_layer(layout)], vit_reshape_transform(layout)) as cam:
        return cam(input_tensor=images.to(model.device), targets=[ClassifierOutputTarget(t) for t in targets])


def focus(cam: np.ndarray, share: float = FOCUS_SHARE) -> float:
    """Share of a map's total mass in its hottest ``share`` of pixels (``share`` for a flat map)."""
    values = np.sort(cam.ravel())[::-1].astype(np.float64)
    total = values.sum()
    if total <= 0:
        return share
    return float(values[: max(1, int(round(share * values.size)))].sum() / total)


def _plot(pictures, maps, cells, rows, columns, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pytorch_grad_cam.utils.image import show_cam_on_image

    fig, axes = plt.subplots(
        len(rows), len(columns), figsize=(1.9 * len(columns) + 0.4, 2.1 * len(rows) + 0.7), squeeze=False
    )
    for i, (index, label_name) in enumerate(rows):
        for j, (variant, r) in enumerate(columns):
            ax = axes[i][j]
            k = cells[(index, variant, str(r))]
            ax.imshow(show_cam_on_image(pictures[(index, str(r))], maps[k], use_rgb=True))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"{resolution_label(r)}\n{VARIANT_TITLES[variant]}", fontsize=8)
            if j == 0:
                ax.set_ylabel(label_name, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


@ANALYSES.register("gradcam", kind="model", title="Grad-CAM on the last block (paper Fig. 16)")
def analyze_grad_cam(inputs: ModelAnalysisInputs) -> list[FigureRecord]:
    """Grad-CAM maps of the chosen images at every resolution and variant, as an overlay grid."""
    model, dataset = inputs.model, inputs.dataset
    indices = pick_images(dataset, inputs.images)
    head = ZeroShotLogits(model.backbone, model.classifier(dataset)).to(model.device)
    normalization = model.transform(inputs.resolutions).normalization
    maps: list[np.ndarray] = []
    pictures, cells, rows, meta = {}, {}, [], []
    for views, labels, batch_indices in iter_views(
        model, dataset, indices, inputs.resolutions, batch_size=inputs.batch_size, workers=inputs.workers
    ):
        targets = [int(label) for label in labels]
        for n, index in enumerate(batch_indices.tolist()):
            rows.append((index, dataset.classnames[targets[n]]))
            for i, r in enumerate(inputs.resolutions):
                pictures[(index, str(r))] = to_picture(views[n, i], normalization)
        for variant in model.variants:
            for i, r in enumerate(inputs.resolutions):
                with model.variant(variant):
                    batch_maps = grad_cam_maps(model, head, views[:, i], targets)
                    with torch.no_grad():
                        logits = head(views[:, i].to(model.device)).detach().float().cpu()
                probs = logits.softmax(dim=-1)
                for n, index in enumerate(batch_indices.tolist()):
                    cells[(index, variant, str(r))] = len(maps)
                    peak = np.unravel_index(int(np.argmax(batch_maps[n])), batch_maps[n].shape)
                    predicted = int(logits[n].argmax())
                    meta.append({
                        "map": len(maps),
                        "index": index,
                        "id": dataset.sample_id(index),
                        "label_name": dataset.classnames[targets[n]],
                        "variant": variant,
                        "resolution": str(r),
                        "predicted": dataset.classnames[predicted],
                        "target_probability": round(float(probs[n, targets[n]]), 6),
                        "focus": round(focus(batch_maps[n]), 6),
                        "peak_row": int(peak[0]),
                        "peak_col": int(peak[1]),
                    })  # fmt: skip
                    maps.append(batch_maps[n])
    columns = [(variant, r) for variant in model.variants for r in reversed(inputs.resolutions)]
    tokens = " with and without LR tokens" if len(model.variants) > 1 else ""
    record = FigureRecord(
        name=figure_name("gradcam", model.spec, dataset.name),
        title=f"Grad-CAM, last block: {model.spec} on {dataset.name}",
        caption=f"Grad-CAM of the true class's zero-shot score at the last block, for {len(rows)} {dataset.name} "
        f"images at HR and low resolutions{tokens} (paper Fig. 16); the CSV gives each map's focus (share of its "
        f"mass in the hottest {FOCUS_SHARE:.0%} of pixels) and the class probability.",
        command=inputs.command,
        section=SECTION,
        analysis="gradcam",
    )
    fig = _plot(pictures, maps, cells, rows, columns, record.title)
    record = save_figure(fig, inputs.output, record, meta)
    stacked = np.stack(maps).astype(np.float32)
    np.savez_compressed(inputs.output / f"{record.name}_maps.npz", maps=stacked)
    record.files.append(f"{record.name}_maps.npz")
    add_to_manifest(inputs.output, record)
    return [record]
