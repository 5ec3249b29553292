"""End-to-end speed of ``lr0fm benchmark`` against the naive per-resolution protocol, in the same run.

The data is a generated JPEG image folder shaped like the real evaluation sets (500x375 and 375x500
photos-like images, one folder per class, 20 of CLIP's ImageNet prompt templates per class); the model is a
small random open_clip ViT at 224 px. The timings, all end to end from loading the model:

* naive: what the authors' scripts do, per resolution: a torchvision ``Compose`` of the protocol's chain (e.g.
  ``[Resize((n, n)), Resize((S, S)), ToTensor, Normalize]`` for ``square``, ``[Resize(n), backbone.preprocess]``
  for ``shorter-side``), a fresh DataLoader pass (every image decoded again) and a fresh text-classifier build;
* engine (headline): :func:`lr0fm.benchmark.runner.run_benchmark`, i.e. ``lr0fm benchmark`` with the Trainer,
  one decode per image for all resolutions and one classifier build;
* loop: :func:`lr0fm.benchmark.engine.evaluate_backbone`, the same scoring without the Trainer;
* fast (opt-in, ``--fast``, never the default): the engine's scoring with PIL's ``reducing_gap`` box pre-reduction
  before each low-resolution bicubic resize; reported with its speed-up and its agreement with the exact mode.

Every LR protocol given with ``--protocols`` (default: all three) is timed, naive vs engine, in the same run.
It also times the pure model compute (every image forward at every resolution plus one classifier build) and
prints end-to-end / compute: near 1 means the data side is hidden behind the model (a GPU run); on a CPU-only
machine the DataLoader workers and the model share the same cores, so it stays well above 1.

    python benchmarks/benchmark_speed.py [--images 600] [--classes 60] [--workers 2] [--threads N] [--fast] [--repeat N]
        [--protocols paper shorter-side square]
    python benchmarks/benchmark_speed.py --device cuda --arch ViT-B-16 --workers 12 --batch-size 256  # a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from naive_protocol import Predictions, run_naive  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from PIL import Image

from lr0fm.benchmark.classifier import ClassifierCache, build_classifier
from lr0fm.benchmark.data import MultiResolutionDataset, make_loader
from lr0fm.benchmark.engine import evaluate_backbone
from lr0fm.benchmark.runner import BenchmarkConfig, run_benchmark
from lr0fm.benchmark.scoring import ZeroShotCounts, predict_top5
from lr0fm.datasets import build_dataset
from lr0fm.datasets.base import ZeroShotDataset
from lr0fm.datasets.resources import templates
from lr0fm.models import load_backbone
from lr0fm.protocols import HR, ViewTransform, get_protocol, parse_resolutions

RESOLUTIONS = (16, 32, 64, 128, HR)

#: small random open_clip ViT at 224 px (patch 32, 2 layers of width 192; text tower 1 layer of width 128)
SPEED_CLIP = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 192, "patch_size": 32, "head_width": 64},
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


class FastViewTransform(ViewTransform):
    """Opt-in fast mode (not exact): each low-resolution view first box-reduces the image by an integer factor.

    PIL's ``reducing_gap`` shrinks the decoded image by ``floor(scale / gap)`` with a box filter before the
    bicubic resize, which makes the large 375 -> 16 px downscales much cheaper; pixels differ slightly from the
    paper's protocol, so the script reports its top-1 agreement with the exact mode.
    """

    gap = 3.0

    def down(self, image: Image.Image, n: int) -> Image.Image:
        """The reduced-then-bicubic LR image."""
        w, h = image.size
        if self.chain.down == "square":
            size = (n, n)
        else:
            size = (n, int(n * h / w)) if w <= h else (int(n * w / h), n)
        return image.resize(size, Image.BICUBIC, reducing_gap=self.gap)


def run_engine(
    spec: str,
    folder: Path,
    resolutions,
    batch_size: int,
    workers: int,
    output: Path,
    device: str = "cpu",
    protocol: str = "paper",
    views_on_device: bool = False,
) -> Predictions:
    """``lr0fm benchmark`` as users run it (Trainer.validate), from a fresh output folder (no cached classifier).

    The per-sample predictions are read back from the run's predictions file.
    """
    config = BenchmarkConfig(
        models=[spec],
        datasets=[f"folder:{folder}"],
        resolutions=list(resolutions),
        output=str(output),
        batch_size=batch_size,
        workers=workers,
        precision="32",
        accelerator="cpu" if device == "cpu" else "gpu",
        seed=0,
        protocol=protocol,
        views_on_device=views_on_device,
    )
    run_benchmark(config, log=lambda *_: None)
    (path,) = (output / "predictions").rglob("*.jsonl")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return {str(r): [line["top5"][str(r)]["classes"] for line in lines] for r in resolutions}


def run_loop(
    spec: str,
    dataset: ZeroShotDataset,
    resolutions,
    batch_size: int,
    workers: int,
    device: str = "cpu",
    protocol: str = "paper",
) -> dict[str, float]:
    """The engine's plain loop :func:`evaluate_backbone` (no Trainer); top-1 per resolution."""
    backbone = load_backbone(spec, seed=0).eval().to(device)
    records = evaluate_backbone(
        backbone,
        {"speed": dataset},
        resolutions,
        protocol=protocol,
        batch_size=batch_size,
        num_workers=workers,
        device=device,
    )
    return {str(r["resolution"]): r["top1"] for r in records}


@torch.no_grad()
def run_fast(
    spec: str,
    dataset: ZeroShotDataset,
    resolutions,
    batch_size: int,
    workers: int,
    device: str = "cpu",
    protocol: str = "paper",
) -> Predictions:
    """The engine's scoring (one decode, one classifier build) with :class:`FastViewTransform`."""
    backbone = load_backbone(spec, seed=0).eval().to(device)
    exact = get_protocol(protocol).transform(backbone, resolutions)
    transform = FastViewTransform(
        exact.chain, resolutions, size=exact.size, normalization=exact.normalization, preprocess=exact.preprocess
    )
    classifier = ClassifierCache().for_dataset(backbone, dataset, device=torch.device(device))
    loader = make_loader(MultiResolutionDataset(dataset, transform), batch_size=batch_size, num_workers=workers)
    counts = ZeroShotCounts(len(resolutions), dataset.num_classes, keep_predictions=True)
    for views, labels, indices, *_ in loader:
        top5, scores = predict_top5(backbone, classifier, views.to(device))
        counts.update(top5.cpu(), labels, indices, scores=scores.cpu())
    top5 = counts.compute()["preds"]
    return {str(r): top5[:, i].tolist() for i, r in enumerate(resolutions)}


@torch.no_grad()
def model_compute_seconds(
    spec: str, dataset: ZeroShotDataset, num_forwards: int, batch_size: int, device: str = "cpu"
) -> float:
    """Time of ``num_forwards`` image forwards (random 224 px batches) plus one classifier build, alone."""
    backbone = load_backbone(spec, seed=0).eval().to(device)
    batch = torch.randn(batch_size, 3, backbone.image_size, backbone.image_size, device=device)
    backbone.encode_image(batch[:1])  # CUDA context and kernels warm
    _sync(device)
    start = time.perf_counter()
    build_classifier(backbone, dataset.classnames, dataset.templates, device=device)
    done = 0
    while done < num_forwards:
        n = min(batch_size, num_forwards - done)
        backbone.encode_image(batch[:n])
        done += n
    _sync(device)
    return time.perf_counter() - start


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def top1(preds: Predictions, labels: list[int]) -> dict[str, float]:
    """Top-1 accuracy per resolution."""
    return {r: sum(p[0] == y for p, y in zip(v, labels, strict=True)) / len(labels) for r, v in preds.items()}


def agreement(a: Predictions, b: Predictions, k: int = 1) -> float:
    """Fraction of (sample, resolution) pairs whose first ``k`` predicted classes are the same."""
    pairs = [(x, y) for r in a for x, y in zip(a[r], b[r], strict=True)]
    return sum(x[:k] == y[:k] for x, y in pairs) / len(pairs)


def timed(fn, *args):
    """``(seconds, result)`` of ``fn(*args)``."""
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def report(protocol: str, runs: dict, labels: list[int], resolutions, t_compute: float, fast: bool) -> None:
    """Print one protocol's accuracies, identity check and timings."""
    accs = {name: out if name == "loop" else top1(out, labels) for name, (_, out) in runs.items()}
    print(f"\n== protocol {protocol!r}")
    print(f"{'resolution':>10}" + "".join(f" {name + ' top-1':>12}" for name in runs))
    for r in map(str, resolutions):
        print(f"{r:>10}" + "".join(f" {100 * accs[name][r]:>11.2f}%" for name in runs))
    same = runs["engine"][1] == runs["naive"][1]
    print(f"naive vs lr0fm benchmark: identical per-sample top-5 rankings at every resolution: {same}")
    if "loop" in runs:
        print(f"evaluate_backbone top-1 equals the naive top-1: {accs['loop'] == accs['naive']}")
    t_naive = runs["naive"][0]
    titles = {
        "naive": "naive protocol (per-resolution pass + classifier)",
        "engine": "lr0fm benchmark (run_benchmark, Trainer.validate)",
        "loop": "evaluate_backbone (engine loop without Trainer)",
        "fast": "fast mode (opt-in, reducing_gap, not exact)",
        "device": "lr0fm benchmark --views_on_device (not exact)",
    }
    for name, (seconds, _) in runs.items():
        ratio = "" if name == "naive" else f"  speed-up {t_naive / seconds:.2f}x"
        print(f"{titles[name]:<52} {seconds:7.1f} s{ratio}")
    if fast:
        t_exact = runs["loop"][0] if "loop" in runs else runs["engine"][0]
        print(
            f"fast mode vs exact mode ({'evaluate_backbone' if 'loop' in runs else 'lr0fm benchmark'}): "
            f"{t_exact / runs['fast'][0]:.2f}x faster, per-sample top-1 agreement "
            f"{100 * agreement(runs['fast'][1], runs['naive'][1]):.2f}% (top-5 ranking "
            f"{100 * agreement(runs['fast'][1], runs['naive'][1], k=5):.2f}%), top-1 differences (points) "
            + ", ".join(f"{r}: {100 * (accs['fast'][r] - accs['naive'][r]):+.2f}" for r in map(str, resolutions))
        )
    if "device" in runs:
        print(
            f"--views_on_device vs exact lr0fm benchmark: {runs['engine'][0] / runs['device'][0]:.2f}x faster, "
            f"per-sample top-1 agreement {100 * agreement(runs['device'][1], runs['engine'][1]):.2f}%, top-1 "
            "differences (points) "
            + ", ".join(f"{r}: {100 * (accs['device'][r] - accs['engine'][r]):+.2f}" for r in map(str, resolutions))
        )
    print(
        f"end-to-end / model compute ({t_compute:.1f} s): engine {runs['engine'][0] / t_compute:.2f}, "
        f"naive {t_naive / t_compute:.2f}"
    )


def main() -> None:
    """Generate the data, run every protocol naive and one-pass, the compute-only timing; print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--classes", type=int, default=60)
    parser.add_argument("--templates", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--resolutions", nargs="+", default=[str(r) for r in RESOLUTIONS])
    parser.add_argument("--protocols", nargs="+", default=["paper", "shorter-side", "square"])
    parser.add_argument("--threads", type=int, help="torch intra-op threads of the main process (default: torch's)")
    parser.add_argument("--skip-loop", action="store_true", help="do not time the engine loop without Trainer")
    parser.add_argument("--fast", action="store_true", help="also time the opt-in fast (not exact) mode")
    parser.add_argument("--views-on-device", action="store_true", help="also time lr0fm benchmark --views_on_device")
    parser.add_argument("--repeat", type=int, default=1, help="interleaved repetitions; the best time is reported")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (every protocol runs its model there)")
    parser.add_argument("--arch", help="open_clip architecture, random weights (e.g. ViT-B-16)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    resolutions = parse_resolutions(args.resolutions)
    batch, workers = args.batch_size, args.workers

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec_path = tmp / "lr0fm-speed-vit.json"
        spec_path.write_text(json.dumps(SPEED_CLIP))
        spec = f"{args.arch}:none" if args.arch else str(spec_path)
        t_gen, folder = timed(make_dataset, tmp / "data", args.images, args.classes, args.templates)
        dataset = build_dataset(f"folder:{folder}")
        labels = [label for _, label in dataset.samples]
        load1 = os.getloadavg()[0]
        print(
            f"data: {len(dataset)} JPEGs (500x375/375x500), {dataset.num_classes} classes x "
            f"{len(dataset.templates)} templates (generated in {t_gen:.1f} s); resolutions {resolutions}; "
            f"batch {batch}, workers {workers}, torch threads {torch.get_num_threads()}, "
            f"CPUs {os.cpu_count()}, repetitions {args.repeat}, load average before {load1:.2f}; "
            f"model {spec if args.arch else 'small random ViT'} on {args.device}; protocols {args.protocols}"
        )
        runners = {"naive": (run_naive, dataset), "engine": (run_engine, folder)}
        runners.update({} if args.skip_loop else {"loop": (run_loop, dataset)})
        runners.update({"fast": (run_fast, dataset)} if args.fast else {})
        runners.update({"device": (partial(run_engine, views_on_device=True), folder)} if args.views_on_device else {})
        runs: dict[str, dict[str, tuple[float, object]]] = {p: {} for p in args.protocols}
        t_compute = float("inf")
        for rep in range(args.repeat):  # interleaved, best time kept: fair under a fluctuating machine load
            for protocol in args.protocols:
                for name, (fn, data) in runners.items():
                    extra = (tmp / f"{name}-out-{protocol}-{rep}",) if name in ("engine", "device") else ()
                    fn = partial(fn, device=args.device, protocol=protocol)
                    seconds, out = timed(fn, spec, data, resolutions, batch, workers, *extra)
                    previous = runs[protocol].get(name, (seconds,))[0]
                    runs[protocol][name] = (min(seconds, previous), out)
            forwards = len(dataset) * len(resolutions)
            t_compute = min(t_compute, model_compute_seconds(spec, dataset, forwards, batch, args.device))
        load2 = os.getloadavg()[0]

    for protocol in args.protocols:
        report(protocol, runs[protocol], labels, resolutions, t_compute, args.fast)
    print("\nsummary (naive / lr0fm benchmark, same run):")
    for protocol in args.protocols:
        t_naive, t_engine = runs[protocol]["naive"][0], runs[protocol]["engine"][0]
        print(f"  {protocol:<13} {t_naive:6.1f} s / {t_engine:6.1f} s = {t_naive / t_engine:.2f}x")
    forwards = len(dataset) * len(resolutions)
    print(f"model compute alone ({forwards} image forwards + 1 classifier build): {t_compute:.1f} s")
    print(f"load average (1 min) before {load1:.2f}, after {load2:.2f}")


if __name__ == "__main__":
    main()
