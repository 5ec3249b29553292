"""Loaders of the ten non-ImageNet datasets of CLIP's zero-shot benchmark, in torchvision's on-disk layouts.

Each loader reads the official test split and maps the dataset's own label names (folders, annotation
ids) explicitly onto the order of the shipped ``classnames.txt``. Two datasets have no official test
split, so this module fixes a deterministic one:

* **Caltech101** -- following CLIP's protocol (30 training images per class, the rest for testing), the
  first :data:`CALTECH_TRAIN_PER_CLASS` images of each category (sorted by file name) are left out and the
  remaining ones form the test set; ``BACKGROUND_Google`` is not a class (as in torchvision). CLIP drew
  its 30 at random, so the images differ from CLIP's while the protocol and size match.
* **EuroSAT** -- every :data:`EUROSAT_STRIDE`-th image of each class (sorted by file name), i.e. 5,400 of
  the 27,000 images: the size of the VTAB test split that CLIP_benchmark uses, but not the same images
  (for those, load CLIP_benchmark's shards with ``wds:/path``).

SUN397 uses the official partition 01 (``Testing_01.txt``); torchvision's SUN397 has no partitions, so
the file must be placed at ``<root>/SUN397/Testing_01.txt``. UCF101 is evaluated on the middle frame of
each video of the official ``testlist01.txt`` split (CLIP's protocol).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lr0fm.catalog import did_you_mean
from lr0fm.datasets.base import DatasetError, ZeroShotDataset, load_rgb
from lr0fm.datasets.layouts import require
from lr0fm.datasets.resources import classnames, packaged_lines, templates
from lr0fm.datasets.scan import check_files_exist, scan_class_folders

#: Images per Caltech101 category left out as CLIP's training split (the first ones, sorted by name).
CALTECH_TRAIN_PER_CLASS = 30
#: EuroSAT test subset: every n-th image of each class (sorted by name).
EUROSAT_STRIDE = 5


def _dataset(name: str, samples: list[tuple[str, int]]) -> ZeroShotDataset:
    return ZeroShotDataset(name, classnames(name), templates(name), sorted(samples), load_rgb)


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


def _skip_caltech_train(images: list[Path]) -> list[Path]:
    return images[CALTECH_TRAIN_PER_CLASS:]


def _eurosat_subset(images: list[Path]) -> list[Path]:
    return images[::EUROSAT_STRIDE]


def build_caltech101(root: Path) -> ZeroShotDataset:
    """Caltech101 test split (see the module docstring)."""
    base = root / "caltech101" / "101_ObjectCategories"
    require("caltech101", root, base)
    label_of = {folder: i for i, folder in enumerate(packaged_lines("caltech101", "folders.txt"))}
    samples = scan_class_folders(
        base, label_of, "caltech101", ignore={"BACKGROUND_Google"}, select=_skip_caltech_train
    )
    return _dataset("caltech101", samples)


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


def build_food101(root: Path) -> ZeroShotDataset:
    """Food-101 test split (``meta/test.json``: ``{"apple_pie": ["apple_pie/1011328", ...], ...}``)."""
    base = root / "food-101"
    split = base / "meta" / "test.json"
    require("food101", root, base / "images", split)
    labels = _label_map("food101")
    try:
        listing = json.loads(split.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"food101: {str(split)!r} is not valid JSON ({exc}); re-extract the archive."
        ) from exc
    samples = []
    for dish in sorted(listing):
        label = _lookup(labels, dish.replace("_", " "), "food101", split)
        samples += [(str(base / "images" / f"{entry}.jpg"), label) for entry in sorted(listing[dish])]
    check_files_exist(samples, "food101", split)
    return _dataset("food101", samples)


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


def build_fgvc_aircraft(root: Path) -> ZeroShotDataset:
    """FGVC-Aircraft test split at the variant level (``images_variant_test.txt``: ``<id> <variant>``)."""
    data = root / "fgvc-aircraft-2013b" / "data"
    split = data / "images_variant_test.txt"
    require("fgvc-aircraft", root, data / "images", split)
    labels = _label_map("fgvc-aircraft")
    samples = []
    for line in _split_lines(split):
        image_id, _, variant = line.partition(" ")
        samples.append(
            (str(data / "images" / f"{image_id}.jpg"), _lookup(labels, variant, "fgvc-aircraft", split))
        )
    check_files_exist(samples, "fgvc-aircraft", split)
    return _dataset("fgvc-aircraft", samples)


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
                f"oxford-pets: bad line {line!r} in {str(split)!r}; "
                f"expected '<image id> <class 1..{n_classes}> ...'."
            )
        samples.append((str(base / "images" / f"{fields[0]}.jpg"), int(fields[1]) - 1))
    check_files_exist(samples, "oxford-pets", split)
    return _dataset("oxford-pets", samples)


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


def build_eurosat(root: Path) -> ZeroShotDataset:
    """EuroSAT RGB: the deterministic 20 % test subset described in the module docstring."""
    base = root / "eurosat" / "2750"
    require("eurosat", root, base)
    label_of = {folder: i for i, folder in enumerate(packaged_lines("eurosat", "folders.txt"))}
    return _dataset("eurosat", scan_class_folders(base, label_of, "eurosat", select=_eurosat_subset))


def _squash(name: str) -> str:
    """UCF101 class key: CamelCase folder and spaced class name agree once case and separators go."""
    return name.replace(" ", "").replace("_", "").lower()


def build_ucf101(root: Path) -> ZeroShotDataset:
    """UCF101 split-1 test videos as middle frames (``testlist01.txt`` lines ``<Class>/v_<...>.avi``)."""
    base = root / "ucf101"
    frames, split = base / "UCF-101-midframes", base / "ucfTrainTestlist" / "testlist01.txt"
    require("ucf101", root, frames, split)
    labels = _label_map("ucf101", _squash)
    samples = []
    for line in _split_lines(split):
        video = Path(line.split()[0])
        label = _lookup(labels, _squash(video.parent.name), "ucf101", split)
        samples.append((str(frames / video.parent / f"{video.stem}.jpg"), label))
    check_files_exist(samples, "ucf101", split)
    return _dataset("ucf101", samples)
