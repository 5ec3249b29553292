"""CLIP_benchmark webdataset shards (read by :mod:`lr0fm.datasets.shards`; no webdataset dependency).

Layout (as published on https://huggingface.co/clip-benchmark)::

    <path>/classnames.txt                          one class name per line, index = label
    <path>/zeroshot_classification_templates.txt   one prompt per line, with {c}
    <path>/<split>/*.tar                           samples <key>.{jpg,jpeg,png,webp} + <key>.cls

The shards are indexed once (member offsets); images are read lazily by seeking into the shard, so the
dataset is map-style and picklable, and each DataLoader worker reopens the shards it reads.
"""

from __future__ import annotations

from pathlib import Path

from lr0fm.datasets.base import DatasetError, ZeroShotDataset
from lr0fm.datasets.registry import register_dataset_scheme
from lr0fm.datasets.resources import check_templates, read_text_lines
from lr0fm.datasets.shards import ShardMember, ShardReader, natural_key, scan_shard

#: Image extensions of webdataset samples, in order of preference.
WDS_IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
CLASSNAMES_FILE = "classnames.txt"
TEMPLATES_FILE = "zeroshot_classification_templates.txt"
LAYOUT = (
    "<path>/classnames.txt\n  <path>/zeroshot_classification_templates.txt\n"
    "  <path>/<split>/*.tar   (samples <key>.{jpg,jpeg,png,webp} + <key>.cls)"
)
HOW_TO_GET = (
    "download a CLIP_benchmark dataset repository, e.g. `git clone "
    "https://huggingface.co/datasets/clip-benchmark/wds_dtd`, and pass wds:/path/to/wds_dtd"
)


def index_shard(shard: Path, num_classes: int) -> list[tuple[ShardMember, int]]:
    """Index one tar shard: ``(image member, label)`` per sample, sorted by key.

    Raises:
        DatasetError: on an unreadable tar, a sample without image or ``.cls``, or a label out of range.

    """
    pairs = []
    for sample in scan_shard(shard, text_extensions=("cls",)):
        image = next((sample.members[ext] for ext in WDS_IMAGE_EXTENSIONS if ext in sample.members), None)
        raw = sample.texts.get("cls")
        if image is None or raw is None:
            has = "an image but no .cls label" if image is not None else "a .cls label but no image"
            if image is None and raw is None:
                continue  # neither: a member this format does not use
            raise DatasetError(
                f"wds: sample {sample.key!r} in {str(shard)!r} has {has}; every sample needs <key>.cls and one "
                f"of <key>.{{{','.join(WDS_IMAGE_EXTENSIONS)}}}."
            )
        if not raw.lstrip("-").isdigit() or not 0 <= int(raw) < num_classes:
            raise DatasetError(
                f"wds: {shard}#{sample.key}.cls holds {raw!r}; expected a label in 0..{num_classes - 1} "
                "(one per line of classnames.txt)."
            )
        pairs.append((image, int(raw)))
    return sorted(pairs, key=lambda pair: pair[0].key)


@register_dataset_scheme("wds")
def build_wds_dataset(path: Path, split: str = "test") -> ZeroShotDataset:
    """Load CLIP_benchmark webdataset shards from ``path`` (layout in the module docstring).

    Raises:
        DatasetError: when a file of the layout is missing or malformed.

    """
    for required in (path, path / CLASSNAMES_FILE, path / TEMPLATES_FILE, path / split):
        if not required.exists():
            raise DatasetError(
                f"wds: {str(required)!r} not found.\nExpected layout:\n  {LAYOUT}\nTo obtain it: {HOW_TO_GET}."
            )
    names = read_text_lines(path / CLASSNAMES_FILE)
    if not names:
        raise DatasetError(f"wds: {str(path / CLASSNAMES_FILE)!r} is empty; write one class name per line.")
    prompts = check_templates(read_text_lines(path / TEMPLATES_FILE), str(path / TEMPLATES_FILE))
    shards = sorted(path.joinpath(split).glob("*.tar"), key=natural_key)
    if not shards:
        raise DatasetError(f"wds: no *.tar shards in {str(path / split)!r}.\nExpected layout:\n  {LAYOUT}")
    samples = [sample for shard in shards for sample in index_shard(shard, len(names))]
    return ZeroShotDataset(f"wds:{path}", names, prompts, samples, ShardReader())
