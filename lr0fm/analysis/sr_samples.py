"""What SR front-ends make of LR images, and what the model then predicts (paper Fig. 9).

For each chosen image and low resolution ``n``, one row of pictures: the native view (HR), the ``n x n`` LR
image (drawn with nearest-neighbour pixels), the plain chain the benchmark scores (the model's LR protocol;
with ``--lr_tokens`` also with the tokens on), and each ``--sr`` front-end's output after the authors' SR
chain (:mod:`lr0fm.sr.chain`, as ``lr0fm benchmark --sr`` scores it). Every picture is titled with the
model's zero-shot top-1 class on it, green when right and red when wrong; the CSV lists them.

The paper's Fig. 9 shows BSRGAN, ESRGAN, SwinIR, IDM, Inf-DiT and AddSR outputs on Pets and Food-101 images
at 16 x 16: ``lr0fm analyze sr-samples --model EVA02-B-16:merged2b_s8b_b131k --dataset oxford-pets=/data
--resolutions 16 --sr BSRGAN ESRGAN SwinIR --sr_passes 1`` draws its counterpart with the models lr0fm loads.
"""

from __future__ import annotations

from typing import Any

import torch

from lr0fm.analysis import ANALYSES
from lr0fm.analysis.figures import FigureRecord, save_figure
from lr0fm.analysis.model_inputs import (
    BASE,
    VARIANT_TITLES,
    ModelAnalysisInputs,
    figure_name,
    pick_images,
    resolution_label,
    to_picture,
)
from lr0fm.protocols.resolutions import HR

SECTION = "Inside the model"


class Panel:
    """The pictures of one figure, their titles (the model's top-1 and whether it is right) and the CSV rows."""

    def __init__(self, rows: list[tuple[int, str]], labels: list[int], dataset, normalization) -> None:
        self.rows, self.labels, self.dataset, self.normalization = rows, labels, dataset, normalization
        self.columns: list[str] = []
        self.pictures: dict[tuple[int, str], Any] = {}
        self.titles: dict[tuple[int, str], tuple[str, bool]] = {}
        self.meta: list[dict] = []

    def add_pictures(self, column: str, pictures: list[Any]) -> None:
        """A column of pictures without predictions."""
        self.columns.append(column)
        for (index, _), picture in zip(self.rows, pictures, strict=True):
            self.pictures[(index, column)] = picture

    def add(self, column: str, predicted: list[int], model_inputs: torch.Tensor) -> None:
        """A column of model inputs and the model's top-1 on each."""
        self.add_pictures(column, [to_picture(x, self.normalization) for x in model_inputs])
        for n, (index, label_name) in enumerate(self.rows):
            right = predicted[n] == self.labels[n]
            name = self.dataset.classnames[predicted[n]]
            self.titles[(index, column)] = (name, right)
            self.meta.append({
                "index": index, "id": self.dataset.sample_id(index), "label_name": label_name, "column": column,
                "predicted": name, "correct": right,
            })  # fmt: skip


def _plot(pictures: dict, titles: dict, rows: list[tuple[int, str]], columns: list[str], heading: str):
    from lr0fm.analysis.style import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(
        len(rows), len(columns), figsize=(1.8 * len(columns) + 0.4, 2.0 * len(rows) + 0.7), squeeze=False
    )
    for i, (index, label_name) in enumerate(rows):
        for j, column in enumerate(columns):
            ax = axes[i][j]
            ax.imshow(pictures[(index, column)], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            predicted, right = titles.get((index, column), (None, None))
            if predicted is not None:
                ax.set_title(predicted, fontsize=7, color="tab:green" if right else "tab:red")
            if i == len(rows) - 1:
                ax.set_xlabel(column, fontsize=7)
            if j == 0:
                ax.set_ylabel(label_name, fontsize=8)
    fig.suptitle(heading, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def _predict(model, classifier: torch.Tensor, inputs: torch.Tensor) -> list[int]:
    with torch.no_grad():
        return (model.embed(inputs) @ classifier.T).argmax(dim=-1).tolist()


@ANALYSES.register("sr-samples", kind="model", title="Super-resolution front-ends at low resolution (paper Fig. 9)")
def analyze_sr_samples(inputs: ModelAnalysisInputs) -> list[FigureRecord]:
    """One figure per low resolution: HR, LR, the plain chain and each SR front-end, with the model's top-1."""
    from lr0fm.sr.chain import SRInputs, sr_view_pipeline
    from lr0fm.sr.upscalers import load_upscaler

    model, dataset, options = inputs.model, inputs.dataset, inputs.options
    specs: list[str] = list(options.get("sr") or [])
    if not specs:
        raise ValueError("sr-samples needs --sr SPEC [SPEC ...] (see lr0fm benchmark --list_sr)")
    passes = options.get("sr_passes")
    upscalers = [load_upscaler(spec, options.get("sr_kwargs") or None) for spec in specs]
    lows = [r for r in inputs.resolutions if r != HR]
    if not lows:
        raise ValueError("sr-samples needs at least one low resolution (--resolutions 16 ...)")
    indices = pick_images(dataset, inputs.images)
    classifier = model.classifier(dataset)
    plain = model.transform(inputs.resolutions)
    normalization = plain.normalization
    pipelines = [sr_view_pipeline(model.backbone, inputs.resolutions, up, passes=passes) for up in upscalers]
    raw = SRInputs(pipelines[0][0].transform)  # the n x n LR images the SR models see
    images, labels = zip(*(dataset[i] for i in indices), strict=True)
    plain_views = torch.stack([plain(image) for image in images])  # [B, R, 3, S, S]
    sr_views = [
        views(torch.stack([workers(image) for image in images])).to(model.device) for workers, views in pipelines
    ]
    rows = [(index, dataset.classnames[int(label)]) for index, label in zip(indices, labels, strict=True)]
    records = []
    for r in lows:
        j, hr = inputs.resolutions.index(r), inputs.resolutions.index(HR)
        panel = Panel(rows, [int(label) for label in labels], dataset, normalization)
        with model.variant(BASE):
            panel.add("HR", _predict(model, classifier, plain_views[:, hr]), plain_views[:, hr])
        panel.add_pictures(f"LR {r} px", [raw.view(image, r).permute(1, 2, 0).numpy() for image in images])
        for variant in model.variants:
            column = f"plain ({VARIANT_TITLES[variant]})" if len(model.variants) > 1 else "plain"
            with model.variant(variant):
                panel.add(column, _predict(model, classifier, plain_views[:, j]), plain_views[:, j])
        with model.variant(BASE):
            for up, views in zip(upscalers, sr_views, strict=True):
                panel.add(up.name, _predict(model, classifier, views[:, j]), views[:, j].cpu())
        rounds = "one pass" if passes == 1 else (f"{passes} passes" if passes else "passes until >= S")
        record = FigureRecord(
            name=f"{figure_name('sr_samples', model.spec, dataset.name)}_{r}",
            title=f"Super-resolution at {resolution_label(r)}: {model.spec} on {dataset.name}",
            caption=f"{len(rows)} {dataset.name} images at HR, as the {r} x {r} LR image, through the plain LR chain "
            f"and through each SR front-end ({', '.join(up.name for up in upscalers)}; the authors' SR chain, "
            f"{rounds}), titled with {model.spec}'s zero-shot top-1 (green: right, red: wrong) (paper Fig. 9).",
            command=inputs.command,
            section=SECTION,
            analysis="sr-samples",
        )
        fig = _plot(panel.pictures, panel.titles, rows, panel.columns, record.title)
        records.append(save_figure(fig, inputs.output, record, [{**m, "resolution": str(r)} for m in panel.meta]))
    return records
