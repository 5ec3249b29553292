"""End-to-end speed of ``lr0fm benchmark`` against the naive per-resolution protocol, in the same run.

The data is a generated JPEG image folder shaped like the real evaluation sets (500x375 and 375x500
photos-like images, one folder per class, 20 of CLIP's ImageNet prompt templates per class); the model is a
small random open_clip ViT at 224 px. Three timings, all end to end from loading the model:

* naive: what the authors' scripts do, per resolution: a torchvision
  ``Compose([Resize(n, BICUBIC), backbone.preprocess])`` dataset, a fresh DataLoader pass (every image decoded
  again) and a fresh text-classifier build;
* engine (headline): :func:`lr0fm.benchmark.runner.run_benchmark`, i.e. ``lr0fm benchmark`` with the Trainer,
  one decode per image for all resolutions and one classifier build;
* loop: :func:`lr0fm.benchmark.engine.evaluate_backbone`, the same scoring without the Trainer.

It also times the pure model compute (every image forward at every resolution plus one classifier build) and
prints end-to-end / compute: near 1 means the data side is hidden behind the model (a GPU run); on a CPU-only
machine the DataLoader workers and the model share the same cores, so it stays well above 1.

    python benchmarks/benchmark_speed.py [--images 600] [--classes 60] [--workers 2] [--batch-size 64] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from lr0fm.benchmark.classifier import build_classifier
from lr0fm.benchmark.engine import evaluate_backbone
from lr0fm.benchmark.runner import BenchmarkConfig, run_benchmark
from lr0fm.benchmark.transforms import HR, parse_resolutions
from lr0fm.datasets import build_dataset
from lr0fm.datasets.base import ZeroShotDataset
from lr0fm.datasets.resources import templates
from lr0fm.models import load_backbone

RESOLUTIONS = (16, 32, 64, 128, HR)

#: small random open_clip ViT at 224 px (patch 32, 2 layers of width 256; text tower 1 layer of width 128)
SPEED_CLIP = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 256, "patch_size": 32, "head_width": 64},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 128, "heads": 2, "layers": 1},
}


def make_dataset(root: Path, num_images: int, num_classes: int, num_templates: int = 20, seed: int = 0) -> Path:
    """A folder dataset of ``num_images`` JPEGs (500x375 and 375x500) in ``num_classes`` class folders.

    Images are smooth class-coloured fields with random texture (upsampled low-resolution noise), so that
    JPEG decoding costs about what it costs on photographs. Templates are the first ``num_templates`` of
    CLIP's ImageNet prompt templates (packaged with lr0fm).
    """
    rng = np.random.default_rng(seed)
    for i in range(num_images):
        c = i % num_classes
        w, h = (500, 375) if i % 2 == 0 else (375, 500)
        base = rng.uniform(0, 255, size=3) * 0.5 + np.array([(c * 37) % 128, (c * 71) % 128, (c * 113) % 128])
        texture = Image.fromarray(rng.integers(0, 255, size=(h // 16, w // 16, 3), dtype=np.uint8))
        texture = np.asarray(texture.resize((w, h), Image.BICUBIC), dtype=float)
        pixels = np.clip(0.6 * base + 0.4 * texture + rng.normal(0, 8, size=(h, w, 3)), 0, 255).astype(np.uint8)
        folder = root / f"class_{c:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"img_{i:05d}.jpg", quality=90)
    (root / "zeroshot_classification_templates.txt").write_text("\n".join(templates("imagenet")[:num_templates]))
    return root


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


@torch.no_grad()
def run_naive(spec: str, dataset: ZeroShotDataset, resolutions, batch_size: int, workers: int) -> dict[str, float]:
    """Naive protocol: per resolution a fresh dataset, DataLoader pass and classifier build; top-1 per res."""
    backbone = load_backbone(spec, seed=0).eval()
    top1 = {}
    for res in resolutions:
        if res == HR:
            transform = backbone.preprocess
        else:
            transform = T.Compose([T.Resize(int(res), interpolation=T.InterpolationMode.BICUBIC), backbone.preprocess])
        classifier = build_classifier(backbone, dataset.classnames, dataset.templates)
        loader = DataLoader(NaiveDataset(dataset, transform), batch_size=batch_size, num_workers=workers)
        hits = total = 0
        for images, labels in loader:
            feats = F.normalize(backbone.encode_image(images).float(), dim=-1)
            hits += int(((feats @ classifier.t()).argmax(-1) == labels).sum())
            total += len(labels)
        top1[str(res)] = hits / total
    return top1


def run_engine(spec: str, folder: Path, resolutions, batch_size: int, workers: int, output: Path) -> dict[str, float]:
    """``lr0fm benchmark`` as users run it (Trainer.validate), from a fresh output folder (no cached classifier)."""
    config = BenchmarkConfig(
        models=[spec],
        datasets=[f"folder:{folder}"],
        resolutions=list(resolutions),
        output=str(output),
        batch_size=batch_size,
        workers=workers,
        precision="32",
        accelerator="cpu",
        seed=0,
    )
    records = run_benchmark(config, log=lambda *_: None)
    return {str(r["resolution"]): r["top1"] for r in records}


def run_loop(spec: str, dataset: ZeroShotDataset, resolutions, batch_size: int, workers: int) -> dict[str, float]:
    """The plain engine loop :func:`evaluate_backbone` (no Trainer)."""
    backbone = load_backbone(spec, seed=0).eval()
    records = evaluate_backbone(backbone, {"speed": dataset}, resolutions, batch_size=batch_size, num_workers=workers)
    return {str(r["resolution"]): r["top1"] for r in records}


@torch.no_grad()
def model_compute_seconds(spec: str, dataset: ZeroShotDataset, num_forwards: int, batch_size: int) -> float:
    """Time of ``num_forwards`` image forwards (random 224 px batches) plus one classifier build, alone."""
    backbone = load_backbone(spec, seed=0).eval()
    batch = torch.randn(batch_size, 3, backbone.image_size, backbone.image_size)
    start = time.perf_counter()
    build_classifier(backbone, dataset.classnames, dataset.templates)
    done = 0
    while done < num_forwards:
        n = min(batch_size, num_forwards - done)
        backbone.encode_image(batch[:n])
        done += n
    return time.perf_counter() - start


def timed(fn, *args):
    """``(seconds, result)`` of ``fn(*args)``."""
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def main() -> None:
    """Generate the data, run the three protocols and the compute-only timing, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--classes", type=int, default=60)
    parser.add_argument("--templates", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--resolutions", nargs="+", default=[str(r) for r in RESOLUTIONS])
    parser.add_argument("--threads", type=int, help="torch intra-op threads of the main process (default: torch's)")
    parser.add_argument("--skip-loop", action="store_true", help="do not time evaluate_backbone")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    resolutions = parse_resolutions(args.resolutions)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec_path = tmp / "lr0fm-speed-vit.json"
        spec_path.write_text(json.dumps(SPEED_CLIP))
        spec = str(spec_path)
        t_gen, folder = timed(make_dataset, tmp / "data", args.images, args.classes, args.templates)
        dataset = build_dataset(f"folder:{folder}")
        load1 = os.getloadavg()[0]
        print(
            f"data: {len(dataset)} JPEGs (500x375/375x500), {dataset.num_classes} classes x "
            f"{len(dataset.templates)} templates (generated in {t_gen:.1f} s); resolutions {resolutions}; "
            f"batch {args.batch_size}, workers {args.workers}, torch threads {torch.get_num_threads()}, "
            f"CPUs {os.cpu_count()}, load average before {load1:.2f}"
        )
        t_naive, top_naive = timed(run_naive, spec, dataset, resolutions, args.batch_size, args.workers)
        t_engine, top_engine = timed(
            run_engine, spec, folder, resolutions, args.batch_size, args.workers, tmp / "engine-out"
        )
        t_loop, top_loop = (None, None)
        if not args.skip_loop:
            t_loop, top_loop = timed(run_loop, spec, dataset, resolutions, args.batch_size, args.workers)
        t_compute = model_compute_seconds(spec, dataset, len(dataset) * len(resolutions), args.batch_size)
        load2 = os.getloadavg()[0]

    print(
        f"{'resolution':>10} {'naive top-1':>12} {'engine top-1':>13}"
        + ("" if args.skip_loop else f" {'loop top-1':>11}")
    )
    for r in map(str, resolutions):
        line = f"{r:>10} {100 * top_naive[r]:>11.2f}% {100 * top_engine[r]:>12.2f}%"
        print(line + ("" if args.skip_loop else f" {100 * top_loop[r]:>10.2f}%"))
    same = top_naive == top_engine and (args.skip_loop or top_loop == top_engine)
    print(f"top-1 identical across protocols: {same}")
    print(f"naive protocol (per-resolution pass + classifier):  {t_naive:7.1f} s")
    print(f"lr0fm benchmark (run_benchmark, Trainer.validate):  {t_engine:7.1f} s  speed-up {t_naive / t_engine:.2f}x")
    if t_loop is not None:
        print(f"evaluate_backbone (plain loop):                      {t_loop:7.1f} s  speed-up {t_naive / t_loop:.2f}x")
    print(
        f"model compute alone ({len(dataset) * len(resolutions)} image forwards + 1 classifier build): "
        f"{t_compute:.1f} s; end-to-end / compute: engine {t_engine / t_compute:.2f}, naive {t_naive / t_compute:.2f}"
    )
    print(f"load average (1 min) before {load1:.2f}, after {load2:.2f}")


if __name__ == "__main__":
    main()
