"""The 15 canonical LR0.FM evaluation datasets: names, true class counts and display names.

Pure Python, no heavy imports: the metrics, the dataset registry and the CLI all read this one table.
"""

from __future__ import annotations

import difflib

#: Canonical dataset names of the project, in the order of the LR0.FM paper.
DATASETS: tuple[str, ...] = (
    "imagenet",
    "imagenet-a",
    "imagenet-v2",
    "imagenet-r",
    "imagenet-sketch",
    "caltech101",
    "dtd",
    "food101",
    "sun397",
    "stanford-cars",
    "fgvc-aircraft",
    "oxford-pets",
    "flowers102",
    "eurosat",
    "ucf101",
)

#: Number of classes of each canonical dataset as lr0fm scores it (chance accuracy is 1 / count). Caltech101
#: has 102: the authors' classifier keeps the "background" class (their Caltech101 loader and
#: MetaData/generate_SAR_WAR.py), though no test image belongs to it.
NUM_CLASSES: dict[str, int] = {
    "imagenet": 1000,
    "imagenet-a": 200,
    "imagenet-v2": 1000,
    "imagenet-r": 200,
    "imagenet-sketch": 1000,
    "caltech101": 102,
    "dtd": 47,
    "food101": 101,
    "sun397": 397,
    "stanford-cars": 196,
    "fgvc-aircraft": 100,
    "oxford-pets": 37,
    "flowers102": 102,
    "eurosat": 10,
    "ucf101": 101,
}

#: The class counts of the authors' ``MetaData/generate_SAR_WAR.py`` (Gamma's chance level): 102 for Food101
#: and FGVC Aircraft are copy errors there (true 101 and 100), kept here only to reproduce the published
#: SAR/WAR exactly (``lr0fm metrics report --num_classes paper``).
AUTHORS_NUM_CLASSES: dict[str, int] = {**NUM_CLASSES, "food101": 102, "fgvc-aircraft": 102}

#: Short names used in the paper's tables and figures.
DISPLAY_NAMES: dict[str, str] = {
    "imagenet": "ImageNet",
    "imagenet-a": "ImageNet-A",
    "imagenet-v2": "ImageNet-V2",
    "imagenet-r": "ImageNet-R",
    "imagenet-sketch": "ImageNet-SK",
    "caltech101": "Caltech101",
    "dtd": "DTD",
    "food101": "Food101",
    "sun397": "SUN397",
    "stanford-cars": "Cars",
    "fgvc-aircraft": "Aircraft",
    "oxford-pets": "Pets",
    "flowers102": "Flowers102",
    "eurosat": "EuroSAT",
    "ucf101": "UCF101",
}


def close_matches(name: str, candidates: list[str] | tuple[str, ...], n: int = 3) -> list[str]:
    """Return up to ``n`` candidates that look like ``name`` (for "did you mean" hints)."""
    lowered = {c.lower(): c for c in candidates}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    return [lowered[h] for h in hits]


def did_you_mean(name: str, candidates: list[str] | tuple[str, ...]) -> str:
    """Format a " Did you mean ...?" suffix, or an empty string when nothing is close."""
    hits = close_matches(name, candidates)
    return f" Did you mean {', '.join(repr(h) for h in hits)}?" if hits else ""
