"""GFLOPs of the backbone table's models, measured with ``torch.utils.flop_counter`` and cached as CSV.

Each open_clip backbone is built from its architecture config on the ``meta`` device (shapes only: no
weights are loaded or allocated, so even EVA02-E-14+ takes a second) and one image at the model's input size
goes through the image tower, one prompt of the model's context length through the text tower. The counter
counts 2 FLOPs per multiply-add (open_clip's ``docs/model_profile.csv``, made with fvcore, counts 1: its
numbers are about half of these). Backbones that cannot be instantiated offline from a config (BLIP through
``hf:`` repositories, original ``blip:`` and ``albef:`` checkpoint files, and lr0fm's own modules: ``eva-clip:``
EVA-CLIP-8B and ``m2-encoder:`` M²-Encoder) are listed with the reason instead of a number.

The report reads the cache (``lr0fm/resources/backbones/lr0fm66_gflops.csv``) and never re-measures;
regenerate it with::

    python -m lr0fm.analysis.gflops [--backbones TABLE] [--output CSV]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from typing import Any

from lr0fm.analysis.figures import write_rows_csv
from lr0fm.analysis.properties import DEFAULT_GFLOPS

COLUMNS = ("name", "spec", "image_size", "params_m", "image_gflops", "text_gflops", "status")


def measure_open_clip(arch: str) -> dict[str, Any]:
    """Measure one open_clip architecture (config name, e.g. ``ViT-B-32``) on the meta device.

    Returns:
        ``image_size`` (px), ``params_m`` (millions), ``image_gflops`` (one image), ``text_gflops`` (one prompt).
    """
    import logging

    import open_clip
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    logging.getLogger().setLevel(logging.ERROR)  # "No pretrained weights loaded": random (meta) weights on purpose
    with torch.device("meta"):
        model = open_clip.create_model(arch, pretrained=None, device="meta").eval()
    size = model.visual.image_size
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    image = torch.empty(1, 3, height, width, device="meta")
    text = torch.zeros(1, int(getattr(model, "context_length", 77)), dtype=torch.long, device="meta")
    # no torch.no_grad(): the counter's module tracker fails under it on timm towers (SigLIP), and meta
    # tensors cost nothing to track
    with FlopCounterMode(display=False) as counter:
        model.encode_image(image)
    image_flops = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        model.encode_text(text)
    text_flops = counter.get_total_flops()
    return {
        "image_size": height,
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "image_gflops": round(image_flops / 1e9, 3),
        "text_gflops": round(text_flops / 1e9, 3),
    }


def measure_backbones(backbones: Mapping[str, Mapping[str, Any]], progress: bool = True) -> list[dict[str, Any]]:
    """One cache row per backbone-table entry: measured, or the reason it could not be."""
    import open_clip

    archs = set(open_clip.list_models())
    rows = []
    for name, entry in backbones.items():
        spec = str(entry.get("spec") or "")
        row: dict[str, Any] = {"name": name, "spec": spec}
        arch = spec.split(":", 1)[0]
        if entry.get("needs_adapter") or not spec:
            row["status"] = "not measured: no lr0fm loader (needs_adapter)"
        elif spec.startswith("hf:"):
            row["status"] = "not measured: a Hugging Face repository, whose config needs a download"
        elif spec.startswith("albef:"):
            row["status"] = "not measured: an original ALBEF checkpoint file (sizes are read from its weights)"
        elif spec.startswith("blip:"):
            row["status"] = "not measured: an original BLIP checkpoint, whose sizes are read from the file"
        elif spec.startswith("eva-clip:"):
            row["status"] = "not measured: an eva-clip: model (its config is lr0fm's, not in open_clip's registry)"
        elif spec.startswith("m2-encoder:"):
            row["status"] = "not measured: an m2-encoder: model (lr0fm's module of Ant's code, not an open_clip config)"
        elif arch not in archs:
            row["status"] = f"not measured: {arch!r} is not an open_clip architecture config"
        else:
            t0 = time.perf_counter()
            try:
                row.update(measure_open_clip(arch), status="measured")
            except Exception as exc:  # one failing config must not stop the table: say why in its row
                row["status"] = f"not measured: {type(exc).__name__}: {exc}"[:200]
            if progress:
                print(
                    f"  {name}: {row.get('image_gflops', '-')} GFLOPs ({time.perf_counter() - t0:.1f} s)",
                    file=sys.stderr,
                )
        rows.append({c: row.get(c, "") for c in COLUMNS})
    return rows


def main(argv: list[str] | None = None) -> int:
    """``python -m lr0fm.analysis.gflops``: measure the backbone table and write the GFLOPs cache."""
    from lr0fm.models.paper_backbones import read_paper_backbones

    parser = argparse.ArgumentParser(prog="python -m lr0fm.analysis.gflops", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", default=None, help="backbone table YAML (default: the packaged lr0fm66.yaml)")
    parser.add_argument("--output", default=str(DEFAULT_GFLOPS), help="where to write the cache CSV")
    args = parser.parse_args(argv)
    rows = measure_backbones(read_paper_backbones(args.backbones))
    write_rows_csv(args.output, rows)
    measured = sum(r["status"] == "measured" for r in rows)
    print(f"wrote {args.output}: {measured} of {len(rows)} backbones measured")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
