"""LR-TK0 training-step throughput and peak memory on a ViT-B-16-sized random backbone.

Variants: fp32 vs bf16 autocast, with/without activation checkpointing, with/without the teacher-feature
cache. Each variant runs in its own process so peak memory is its own (CUDA: max allocated; CPU: peak RSS).

    python benchmarks/lrtk0_step.py                          # CPU, ViT-B-16 at 224, batch 4, 3 LR views
    python benchmarks/lrtk0_step.py --device cuda --batch-size 64
    python benchmarks/lrtk0_step.py --backbone ViT-S-16:none --batch-size 8 --steps 3   # quicker on CPU

"images/s" counts HR images (each with its LR views). On CPUs without native bf16 matmuls, bf16 autocast is
slower than fp32; the bf16 rows are meant for GPUs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import time

VARIANTS = [
    {"precision": p, "checkpointing": c, "cache": k} for p, c, k in itertools.product(("fp32", "bf16"), (0, 1), (0, 1))
]


def run_variant(args: argparse.Namespace, variant: dict) -> dict:
    import torch

    from lr0fm.lrtk0.module import LRTK0Module

    torch.manual_seed(0)
    device = torch.device(args.device)
    module = LRTK0Module(
        backbone=args.backbone,
        teacher_cache=bool(variant["cache"]),
        activation_checkpointing=bool(variant["checkpointing"]),
    ).to(device)
    module.train()
    module.log = lambda *a, **k: None  # no Trainer: skip logging
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=5e-4)
    size, b, k = module.backbone.image_size, args.batch_size, args.views
    batch = {
        "hr": torch.randn(b, 3, size, size, device=device),
        "lr": torch.randn(b, k, 3, size, size, device=device),
        "index": torch.arange(b),
        "caption": torch.zeros(b, dtype=torch.long, device=device),
    }
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=variant["precision"] == "bf16")

    def step() -> None:
        with autocast:
            loss = module.training_step(batch, 0)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up (and fills the teacher cache: steady state of later epochs)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB (Linux)
    seconds = (time.perf_counter() - start) / args.steps
    return {**variant, "images_per_s": b / seconds, "step_s": seconds, "peak_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="ViT-B-16:none", help="backbone spec (random weights: ARCH:none)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=4, help="HR images per step")
    parser.add_argument("--views", type=int, default=3, help="LR views per HR image")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant (after 1 warm-up)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.variant:
        print(json.dumps(run_variant(args, json.loads(args.variant))))
        return
    print(f"{args.backbone} on {args.device}: batch {args.batch_size} HR + {args.views} LR views per image")
    print(f"{'precision':>9} {'act.ckpt':>8} {'t.cache':>7} {'images/s':>9} {'s/step':>7} {'peak MiB':>9}")
    rows = []
    for variant in VARIANTS:
        command = [sys.executable, __file__, *sys.argv[1:], "--variant", json.dumps(variant)]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        row = json.loads(out)
        rows.append(row)
        print(
            f"{row['precision']:>9} {row['checkpointing']:>8} {row['cache']:>7} {row['images_per_s']:>9.2f} "
            f"{row['step_s']:>7.2f} {row['peak_mib']:>9.0f}",
            flush=True,
        )
    for precision, ckpt in itertools.product(("fp32", "bf16"), (0, 1)):
        off, on = (
            next(r for r in rows if r["precision"] == precision and r["checkpointing"] == ckpt and r["cache"] == c)
            for c in (0, 1)
        )
        print(f"teacher-cache speed-up ({precision}, act.ckpt={ckpt}): {on['images_per_s'] / off['images_per_s']:.2f}x")


if __name__ == "__main__":
    main()
