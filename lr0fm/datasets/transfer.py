"""Loaders of the ten non-ImageNet datasets of CLIP's zero-shot benchmark, in torchvision's on-disk layouts.

Each loader reads the test split the LR0.FM authors evaluated on (their loaders, e.g.
``BLIP/data/<dataset>.py`` in ``shyammarjit/LR0.FM``; the comparison table is in
``lr0fm/resources/datasets/README.md``) and maps the dataset's own label names (folders, annotation ids)
explicitly onto the order of the shipped ``classnames.txt``. Two datasets have no official test split:

* **Caltech101** -- as the authors' ``caltech101.py``: the classifier has 102 classes, ``background``
  included (no test image belongs to it: the ``BACKGROUND_Google`` folder is skipped), and the test set is
  every image except :data:`CALTECH_TRAIN_PER_CLASS` per category drawn at random with
  ``np.random.seed(1234)`` once, one ``np.random.choice(images, 30, replace=False)`` per category in class
  order. Their image lists come from ``glob`` in the file system's order, which no one can reproduce; lr0fm
  lists them sorted by name, so the draw is the same but may pick other files than theirs did.
* **EuroSAT** -- the authors' test set is the ``val`` list (5,400 images) of CoOp's
  ``split_zhou_EuroSAT.json``, which must lie next to the ``2750/`` folder.

SUN397 uses the official partition 01 (``Testing_01.txt``); torchvision's SUN397 has no partitions, so
the file must be placed at ``<root>/SUN397/Testing_01.txt``. UCF101 is evaluated on the middle frame of
each video of the official ``testlist01.txt`` split (CLIP's protocol); CoOp's ``UCF-101-midframes`` folder
(``Apply_Eye_Makeup/...``) with its ``split_zhou_UCF101.json`` (whose ``test`` list the authors read) works
as well as CamelCase class folders.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lr0fm.catalog import did_you_mean
from lr0fm.datasets.base import DatasetError, ZeroShotDataset, load_image
from lr0fm.datasets.layouts import require
from lr0fm.datasets.registry import register_dataset, torchvision_download
from lr0fm.datasets.resources import classnames, packaged_lines, templates
from lr0fm.datasets.scan import check_files_exist

#: Images per Caltech101 category left out as the training split (drawn at random, as the authors).
CALTECH_TRAIN_PER_CLASS = 30
#: The seed of the authors' Caltech101 split (``np.random.seed(1234)``).
CALTECH_SEED = 1234
#: CoOp's EuroSAT split file; the authors test on its ``val`` list.
EUROSAT_SPLIT_FILE = "split_zhou_EuroSAT.json"
#: CoOp's UCF101 split file (``test`` = the videos of ``testlist01.txt``).
UCF101_SPLIT_FILE = "split_zhou_UCF101.json"
#: Where CoOp publishes its split files (each dataset's section lists the Google Drive link).
COOP_DATASETS_DOC = "https://github.com/KaiyangZhou/CoOp/blob/main/DATASETS.md"


def _dataset(name: str, samples: list[tuple[str, int]]) -> ZeroShotDataset:
    return ZeroShotDataset(name, classnames(name), templates(name), sorted(samples), load_image)


def _label_map(name: str, key: Callable[[str], str] = str) -> dict[str, int]:
    """Shipped class name (normalised by ``key``) -> label."""
    return {key(c): i for i, c in enumerate(classnames(name))}


def _lookup(labels: dict[str, int], raw: str, dataset: str, source: Path) -> int:
    if raw not in labels:
        raise DatasetError(
            f"{dataset}: {str(source)!r} names class {raw!r}, which is not a {dataset} class."
            f"{did_you_mean(raw, list(labels))}"
        )
    return labels[raw]


def _split_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def caltech101_test_images(images_per_class: list[list[Path]], seed: int = CALTECH_SEED) -> list[list[Path]]:
    """The authors' Caltech101 test images of each category (in class order): all but 30 drawn at random.

    One legacy ``RandomState(seed)`` serves every category in order, as their ``np.random.seed(1234)``
    followed by one ``np.random.choice(imgs, 30, replace=False)`` per category.
    """
    rng = np.random.RandomState(seed)
    tests = []
    for images in images_per_class:
        train = set(rng.choice(len(images), CALTECH_TRAIN_PER_CLASS, replace=False).tolist())
        tests.append([path for i, path in enumerate(images) if i not in train])
    return tests


@register_dataset("caltech101", download=torchvision_download("Caltech101"))
def build_caltech101(root: Path) -> ZeroShotDataset:
    """Caltech101 test split of the authors: 102 classes with ``background``, seeded random split."""
    base = root / "caltech101" / "101_ObjectCategories"
    require("caltech101", root, base)
    folders = packaged_lines("caltech101", "folders.txt")
    labels, listed = [], []
    for label, folder in enumerate(folders):
        if folder == "BACKGROUND_Google":  # a class of the classifier, with no test image
            continue
        path = base / folder
        images = sorted(p for p in path.glob("*.jpg") if p.is_file()) if path.is_dir() else []
        if len(images) < CALTECH_TRAIN_PER_CLASS:
            raise DatasetError(
                f"caltech101: category folder {str(path)!r} holds {len(images)} .jpg images; each of the 101 "
                f"categories needs at least {CALTECH_TRAIN_PER_CLASS} (re-extract 101_ObjectCategories)."
            )
        labels.append(label)
        listed.append(images)
    tests = caltech101_test_images(listed)
    return _dataset("caltech101", [(str(p), label) for label, paths in zip(labels, tests) for p in paths])


@register_dataset("dtd", download=torchvision_download("DTD", split="test", partition=1))
def build_dtd(root: Path) -> ZeroShotDataset:
    """DTD partition 1 test split (``labels/test1.txt``)."""
    data = root / "dtd" / "dtd"
    split = data / "labels" / "test1.txt"
    require("dtd", root, data / "images", split)
    labels = _label_map("dtd")
    samples = []
    for line in _split_lines(split):
        texture = line.split("/")[0]
        samples.append((str(data / "images" / line), _lookup(labels, texture, "dtd", split)))
    check_files_exist(samples, "dtd", split)
    return _dataset("dtd", samples)


@register_dataset("food101", download=torchvision_download("Food101", split="test"))
def build_food101(root: Path) -> ZeroShotDataset:
    """Food-101 test split (``meta/test.json``: ``{"apple_pie": ["apple_pie/1011328", ...], ...}``)."""
    base = root / "food-101"
    split = base / "meta" / "test.json"
    require("food101", root, base / "images", split)
    labels = _label_map("food101")
    try:
        listing = json.loads(split.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"food101: {str(split)!r} is not valid JSON ({exc}); re-extract the archive.") from exc
    samples = []
    for dish in sorted(listing):
        label = _lookup(labels, dish.replace("_", " "), "food101", split)
        samples += [(str(base / "images" / f"{entry}.jpg"), label) for entry in sorted(listing[dish])]
    check_files_exist(samples, "food101", split)
    return _dataset("food101", samples)


@register_dataset("sun397", download=torchvision_download("SUN397"))
def build_sun397(root: Path) -> ZeroShotDataset:
    """SUN397 partition 01 test split (``SUN397/Testing_01.txt``, e.g. ``/a/abbey/sun_x.jpg``)."""
    data = root / "SUN397"
    split = data / "Testing_01.txt"
    require("sun397", root, data, split)
    labels = _label_map("sun397")
    samples = []
    for line in _split_lines(split):
        parts = line.strip("/").split("/")  # letter, category[, sub-category], file
        category = " ".join(parts[1:-1]).replace("_", " ")
        samples.append((str(data.joinpath(*parts)), _lookup(labels, category, "sun397", split)))
    check_files_exist(samples, "sun397", split)
    return _dataset("sun397", samples)


def _load_mat(path: Path, dataset: str) -> dict[str, Any]:
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        return loadmat(str(path), squeeze_me=True)
    except (MatReadError, ValueError, OSError) as exc:
        raise DatasetError(f"{dataset}: cannot read {str(path)!r} ({exc}); re-download it.") from exc


def _mat_field(mat: dict[str, Any], key: str, path: Path, dataset: str) -> Any:
    if key not in mat:
        raise DatasetError(f"{dataset}: {str(path)!r} has no {key!r} variable; is it the right file?")
    return mat[key]


@register_dataset("stanford-cars")
def build_stanford_cars(root: Path) -> ZeroShotDataset:
    """Stanford Cars test split (``cars_test_annos_withlabels.mat``: ``fname`` and 1-based ``class``)."""
    base = root / "stanford_cars"
    annos = base / "cars_test_annos_withlabels.mat"
    require("stanford-cars", root, base / "cars_test", annos)
    records = _mat_field(_load_mat(annos, "stanford-cars"), "annotations", annos, "stanford-cars")
    n_classes = len(classnames("stanford-cars"))
    samples = []
    for record in records.reshape(-1):
        label = int(record["class"]) - 1
        if not 0 <= label < n_classes:
            raise DatasetError(f"stanford-cars: {str(annos)!r} has class {label + 1} outside 1..{n_classes}.")
        samples.append((str(base / "cars_test" / str(record["fname"])), label))
    check_files_exist(samples, "stanford-cars", annos)
    return _dataset("stanford-cars", samples)


@register_dataset(
    "fgvc-aircraft", download=torchvision_download("FGVCAircraft", split="test", annotation_level="variant")
)
def build_fgvc_aircraft(root: Path) -> ZeroShotDataset:
    """FGVC-Aircraft test split at the variant level (``images_variant_test.txt``: ``<id> <variant>``)."""
    data = root / "fgvc-aircraft-2013b" / "data"
    split = data / "images_variant_test.txt"
    require("fgvc-aircraft", root, data / "images", split)
    labels = _label_map("fgvc-aircraft")
    samples = []
    for line in _split_lines(split):
        image_id, _, variant = line.partition(" ")
        samples.append((str(data / "images" / f"{image_id}.jpg"), _lookup(labels, variant, "fgvc-aircraft", split)))
    check_files_exist(samples, "fgvc-aircraft", split)
    return _dataset("fgvc-aircraft", samples)


@register_dataset("oxford-pets", download=torchvision_download("OxfordIIITPet", split="test"))
def build_oxford_pets(root: Path) -> ZeroShotDataset:
    """Oxford-IIIT Pet test split (``annotations/test.txt``: ``<image id> <class 1..37> <species> <id>``)."""
    base = root / "oxford-iiit-pet"
    split = base / "annotations" / "test.txt"
    require("oxford-pets", root, base / "images", split)
    n_classes = len(classnames("oxford-pets"))
    samples = []
    for line in _split_lines(split):
        if line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) < 2 or not fields[1].isdigit() or not 1 <= int(fields[1]) <= n_classes:
            raise DatasetError(
                f"oxford-pets: bad line {line!r} in {str(split)!r}; expected '<image id> <class 1..{n_classes}> ...'."
            )
        samples.append((str(base / "images" / f"{fields[0]}.jpg"), int(fields[1]) - 1))
    check_files_exist(samples, "oxford-pets", split)
    return _dataset("oxford-pets", samples)


@register_dataset("flowers102", download=torchvision_download("Flowers102", split="test"))
def build_flowers102(root: Path) -> ZeroShotDataset:
    """Oxford Flowers-102 test split (``setid.mat`` ``tstid``; 1-based labels in ``imagelabels.mat``)."""
    base = root / "flowers-102"
    setid, labels_mat = base / "setid.mat", base / "imagelabels.mat"
    require("flowers102", root, base / "jpg", setid, labels_mat)
    test_ids = _mat_field(_load_mat(setid, "flowers102"), "tstid", setid, "flowers102").reshape(-1).tolist()
    labels = _mat_field(_load_mat(labels_mat, "flowers102"), "labels", labels_mat, "flowers102").reshape(-1)
    samples = []
    for image_id in sorted(int(i) for i in test_ids):
        if not 1 <= image_id <= len(labels):
            raise DatasetError(f"flowers102: test image id {image_id} has no label in {str(labels_mat)!r}.")
        samples.append((str(base / "jpg" / f"image_{image_id:05d}.jpg"), int(labels[image_id - 1]) - 1))
    check_files_exist(samples, "flowers102", setid)
    return _dataset("flowers102", samples)


def _coop_split(path: Path, dataset: str, part: str) -> list[str]:
    """Image paths (relative to the image folder) of one part of a CoOp ``split_zhou_*.json`` file."""
    try:
        listing = json.loads(path.read_text(encoding="utf-8"))
        entries = listing[part]
        return [str(entry[0]) for entry in entries]
    except (json.JSONDecodeError, KeyError, TypeError, IndexError) as exc:
        raise DatasetError(
            f"{dataset}: {str(path)!r} is not a CoOp split file ({exc!r}); expected JSON with 'train', 'val' and "
            f"'test' lists of [image path, label, class name] (see {COOP_DATASETS_DOC})."
        ) from exc


@register_dataset("eurosat", download=torchvision_download("EuroSAT"))
def build_eurosat(root: Path) -> ZeroShotDataset:
    """EuroSAT RGB test set of the authors: the ``val`` list of CoOp's ``split_zhou_EuroSAT.json`` (5,400)."""
    base = root / "eurosat" / "2750"
    split = root / "eurosat" / EUROSAT_SPLIT_FILE
    require("eurosat", root, base)
    if not split.is_file():
        raise DatasetError(
            f"eurosat: {str(split)!r} not found. The LR0.FM authors test on the 'val' list of CoOp's "
            f"{EUROSAT_SPLIT_FILE} (5,400 images); download it from the EuroSAT section of {COOP_DATASETS_DOC} "
            f"and place it next to the 2750/ folder. (CLIP_benchmark's VTAB EuroSAT test split is another set "
            f"of 5,400 images: --dataset wds:/path/to/wds_vtab-eurosat.)"
        )
    label_of = {folder: i for i, folder in enumerate(packaged_lines("eurosat", "folders.txt"))}
    samples = []
    for relative in _coop_split(split, "eurosat", "val"):
        folder = relative.split("/")[0]
        samples.append((str(base / relative), _lookup(label_of, folder, "eurosat", split)))
    check_files_exist(samples, "eurosat", split)
    return _dataset("eurosat", samples)


def _squash(name: str) -> str:
    """UCF101 class key: CamelCase folder and spaced class name agree once case and separators go."""
    return name.replace(" ", "").replace("_", "").lower()


@register_dataset("ucf101")
def build_ucf101(root: Path) -> ZeroShotDataset:
    """UCF101 split-1 test videos as middle frames.

    The list comes from CoOp's ``split_zhou_UCF101.json`` (``test``, the authors' choice) when it is in
    ``<root>/ucf101``, else from ``ucfTrainTestlist/testlist01.txt`` (lines ``<Class>/v_<...>.avi``); a
    video's frame is ``UCF-101-midframes/<Class>/<video>.jpg`` with CamelCase or CoOp's ``Apply_Eye_Makeup``
    class folders.
    """
    base = root / "ucf101"
    frames, coop = base / "UCF-101-midframes", base / UCF101_SPLIT_FILE
    split = coop if coop.is_file() else base / "ucfTrainTestlist" / "testlist01.txt"
    require("ucf101", root, frames, split)
    labels = _label_map("ucf101", _squash)
    folders = {_squash(p.name): p for p in frames.iterdir() if p.is_dir()}
    if split == coop:
        videos = [Path(relative) for relative in _coop_split(coop, "ucf101", "test")]
    else:
        videos = [Path(line.split()[0]) for line in _split_lines(split)]
    samples = []
    for video in videos:
        key = _squash(video.parent.name)
        label = _lookup(labels, key, "ucf101", split)
        folder = folders.get(key, frames / video.parent.name)
        samples.append((str(folder / f"{video.stem}.jpg"), label))
    check_files_exist(samples, "ucf101", split)
    return _dataset("ucf101", samples)
