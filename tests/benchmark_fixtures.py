"""Shared test data for the benchmark: a tiny random open_clip model and small generated image folders."""

import json
from pathlib import Path

import numpy as np
from PIL import Image

TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def tiny_clip_json(directory: Path, name: str = "lr0fm-bench-tiny") -> Path:
    """Write the tiny model config; load it with ``load_backbone(str(path), seed=...)``."""
    path = Path(directory) / f"{name}.json"
    path.write_text(json.dumps(TINY_CLIP))
    return path


def make_image_folder(
    root: Path, num_classes: int = 4, per_class: int = 5, sizes=((50, 38), (38, 50)), seed: int = 0
) -> Path:
    """One sub-folder per class with JPEGs of mixed aspect ratio; class-dependent colour so labels matter."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for c in range(num_classes):
        folder = root / f"class_{c:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            w, h = sizes[i % len(sizes)]
            base = np.array([(c * 60) % 255, (c * 110) % 255, (c * 170) % 255], dtype=float)
            img = np.clip(base + rng.normal(0, 40, size=(h, w, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(folder / f"img_{i:03d}.jpg", quality=90)
    return root
