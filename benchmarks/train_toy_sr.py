"""Train the toy world's SR front-end: a tiny Real-ESRGAN Compact x4 that ``lr0fm benchmark --sr FILE`` loads.

The network is spandrel's ``SRVGGNetCompact`` (Real-ESRGAN's compact architecture) with few features, trained
briefly on the CPU with an L1 loss on toy images of the ``lrtk0`` split (the split LR tokens train on; the
evaluation tasks' images are never seen). Its pairs are made by the benchmark's own SR chain
(:class:`lr0fm.sr.chain.SRInputs`: PIL ``Resize(n)`` bicubic + ``CenterCrop(n)``): 64 px -> 16 px (targets at
the native side) and 32 px -> 8 px (the first of the two passes an 8 px view gets). The state dict is saved as
safetensors in the layout spandrel detects, with the recipe and the held-out PSNR (vs bicubic x4) in its metadata.

    python benchmarks/train_toy_sr.py                     # 1.5 to 2.5 minutes on one CPU core
    lr0fm benchmark --config toy --sr lr0fm/resources/toyclip/toy_sr_compact_x4.safetensors
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "lr0fm" / "resources" / "toyclip" / "toy_sr_compact_x4.safetensors"


def make_pairs(count: int, seed: int, split: str = "lrtk0") -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """``{n: (LR [N,3,n,n], target [N,3,4n,4n])}`` in [0, 1] for n = 16 and 8, made by the benchmark's SR chain."""
    from lr0fm.sr.chain import SR_CHAIN, SRInputs
    from lr0fm.toy.world import NATIVE_SIZE, render_split

    def views(sides: list[int]) -> SRInputs:
        transform = SR_CHAIN.transform(sides, size=NATIVE_SIZE, mean=(0, 0, 0), std=(1, 1, 1), preprocess=None)
        return SRInputs(transform.split_uint8()[0])

    inputs = views([8, 16, 32])
    images, _ = render_split(split, range(seed * 1_000_000, seed * 1_000_000 + count))
    out: dict[int, list] = {16: ([], []), 8: ([], [])}
    for array in images:
        image = Image.fromarray(array)
        hr = torch.from_numpy(array).permute(2, 0, 1)
        out[16][0].append(inputs.view(image, 16))
        out[16][1].append(hr)
        out[8][0].append(inputs.view(image, 8))
        out[8][1].append(inputs.view(image, 32))
    return {n: (torch.stack(lr).float() / 255, torch.stack(hr).float() / 255) for n, (lr, hr) in out.items()}


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Mean PSNR (dB) over images in [0, 1]."""
    mse = ((prediction.clamp(0, 1) - target) ** 2).flatten(1).mean(1)
    return float((10 * torch.log10(1 / mse.clamp_min(1e-10))).mean())


def evaluate(model: torch.nn.Module, pairs: dict) -> dict[str, float]:
    """Held-out PSNR of the model and of bicubic x4, per LR side."""
    out = {}
    with torch.no_grad():
        for n, (lr, hr) in pairs.items():
            out[f"psnr_{n}px_model"] = round(psnr(model(lr), hr), 3)
            out[f"psnr_{n}px_bicubic"] = round(psnr(F.interpolate(lr, scale_factor=4, mode="bicubic"), hr), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--convs", type=int, default=4)
    parser.add_argument("--images", type=int, default=4096, help="training images (rendered once)")
    parser.add_argument("--held_out", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from safetensors.torch import save_file
    from spandrel import ModelLoader
    from spandrel.architectures.Compact import Compact

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    train, held_out = make_pairs(args.images, seed=1), make_pairs(args.held_out, seed=2)
    print(f"pairs rendered in {time.perf_counter() - start:.1f} s", flush=True)
    model = Compact(num_in_ch=3, num_out_ch=3, num_feat=args.features, num_conv=args.convs, upscale=4)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / args.steps)))
    generator = torch.Generator().manual_seed(args.seed)
    sides = sorted(train)
    for step in range(args.steps):
        lr, hr = train[sides[step % len(sides)]]
        pick = torch.randint(len(lr), (args.batch_size,), generator=generator)
        x, y = lr[pick], hr[pick]
        if step % 2:  # a horizontal flip keeps the axis-aligned toy textures what they are
            x, y = x.flip(-1), y.flip(-1)
        loss = F.l1_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 250 == 0 or step == args.steps - 1:
            print(f"step {step}: L1 {loss.item():.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
    model.eval()
    scores = evaluate(model, held_out)
    recipe = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "output"}
    metadata = {"recipe": json.dumps(recipe), "held_out": json.dumps(scores), "split": "lrtk0"}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(args.output), metadata=metadata)
    descriptor = ModelLoader().load_from_file(str(args.output))  # the layout spandrel detects
    params = sum(p.numel() for p in model.parameters())
    print(f"saved {args.output} ({args.output.stat().st_size} bytes, {params} parameters, spandrel: "
          f"{descriptor.architecture.name} x{descriptor.scale}) in {time.perf_counter() - start:.0f} s")  # fmt: skip
    print(json.dumps(scores, indent=1))


if __name__ == "__main__":
    main()
