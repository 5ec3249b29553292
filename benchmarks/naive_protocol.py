"""The naive zero-shot protocol, as the authors' per-resolution scripts run it: the baseline of the speed scripts.

Per resolution: a torchvision ``Compose`` of the protocol's chain, a fresh DataLoader pass (every image
decoded again) and a fresh text-classifier build. It uses lr0fm's model loader, datasets and classifier, and
no Lightning, so as a process (``python benchmarks/naive_protocol.py SPEC FOLDER``) it starts as a plain
research script does.
"""

from __future__ import annotations

import json
import sys

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from lr0fm.benchmark.classifier import build_classifier
from lr0fm.datasets.base import ZeroShotDataset
from lr0fm.models import load_backbone
from lr0fm.protocols import HR, get_protocol, parse_resolutions

Predictions = dict[str, list[list[int]]]  # resolution -> top-5 classes of every sample, in dataset order


class NaiveDataset(Dataset):
    """The authors' per-resolution dataset: decode, then one torchvision transform."""

    def __init__(self, dataset: ZeroShotDataset, transform) -> None:
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self.dataset[index]
        return self.transform(image), label


def naive_transform(protocol: str, backbone, res):
    """The protocol's chain at one resolution as a plain torchvision ``Compose`` (what a per-resolution script runs)."""
    chain, size = get_protocol(protocol).chain(backbone), backbone.image_size
    bicubic = T.InterpolationMode.BICUBIC
    if res == HR and chain.hr_resolution is None:
        steps = []
    else:
        n = chain.hr_resolution if res == HR else int(res)
        steps = [T.Resize(n if chain.down == "shorter" else (n, n), interpolation=bicubic)]
    if chain.up == "model":
        return T.Compose([*steps, backbone.preprocess])
    if chain.up == "squash":
        steps.append(T.Resize((size, size), interpolation=bicubic))
    else:
        steps += [T.Resize(size, interpolation=bicubic), T.CenterCrop(size)]
    mean, std = (backbone.preprocess_cfg.mean, backbone.preprocess_cfg.std)
    if chain.normalize is not None:
        from lr0fm.protocols import NORMALIZATIONS

        mean, std = NORMALIZATIONS[chain.normalize] or ((0.0,) * 3, (1.0,) * 3)
    return T.Compose([*steps, lambda image: image.convert("RGB"), T.ToTensor(), T.Normalize(mean, std)])


@torch.no_grad()
def run_naive(
    spec: str,
    dataset: ZeroShotDataset,
    resolutions,
    batch_size: int,
    workers: int,
    device: str = "cpu",
    protocol: str = "paper",
) -> Predictions:
    """Naive protocol: per resolution a fresh dataset, DataLoader pass and classifier build."""
    backbone = load_backbone(spec, seed=0).eval().to(device)
    preds = {}
    for res in resolutions:
        transform = naive_transform(protocol, backbone, res)
        classifier = build_classifier(backbone, dataset.classnames, dataset.templates, device=device)
        loader = DataLoader(
            NaiveDataset(dataset, transform), batch_size=batch_size, num_workers=workers, pin_memory=device != "cpu"
        )
        preds[str(res)] = []
        for images, _ in loader:
            feats = F.normalize(backbone.encode_image(images.to(device)).float(), dim=-1)
            preds[str(res)] += (feats @ classifier.t()).topk(min(5, len(classifier)), dim=-1).indices.tolist()
    return preds


def main() -> None:
    """``SPEC FOLDER [BATCH WORKERS PROTOCOL RES...]``: print the top-1 of every resolution as JSON."""
    from lr0fm.datasets import build_dataset

    spec, folder, batch, workers, protocol, *res = sys.argv[1:]
    dataset = build_dataset(f"folder:{folder}")
    preds = run_naive(spec, dataset, parse_resolutions(res), int(batch), int(workers), protocol=protocol)
    labels = [label for _, label in dataset.samples]
    print(json.dumps({r: sum(p[0] == y for p, y in zip(v, labels)) / len(labels) for r, v in preds.items()}))


if __name__ == "__main__":
    main()
