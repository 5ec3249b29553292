"""Builders of tiny fake datasets in the real on-disk layouts read by lr0fm.datasets (no network).

Each ``make_<dataset>(root)`` writes a handful of 8x8 JPEGs plus the split/annotation files the loader
reads, and returns the expected ``(image path, label, class name)`` triples.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import savemat

from lr0fm.datasets.resources import packaged_lines

Expected = list[tuple[str, int, str]]


def write_jpeg(path: Path, seed: int = 0) -> Path:
    """Write an 8x8 JPEG of a colour derived from ``seed``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (seed * 37 % 256, seed * 91 % 256, seed * 53 % 256)).save(path, "JPEG")
    return path


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def _names(dataset: str) -> tuple[str, ...]:
    return packaged_lines(dataset, "classnames.txt")


def _folder_dataset(dataset: str, base: Path, folder_labels: dict[str, int], ext: str) -> Expected:
    names = _names(dataset)
    out = []
    for i, (folder, label) in enumerate(folder_labels.items()):
        path = write_jpeg(base / folder / f"img_{i}.{ext}", i)
        out.append((str(path), label, names[label]))
    return out


def make_imagenet(root: Path) -> Expected:
    wnids = packaged_lines("imagenet", "wnids.txt")
    return _folder_dataset("imagenet", root / "val", {wnids[0]: 0, wnids[999]: 999, wnids[417]: 417}, "JPEG")


def make_imagenet_v2(root: Path) -> Expected:
    base = root / "imagenetv2-matched-frequency-format-val"
    return _folder_dataset("imagenet-v2", base, {"0": 0, "999": 999, "42": 42}, "jpeg")


def make_imagenet_sketch(root: Path) -> Expected:
    wnids = packaged_lines("imagenet", "wnids.txt")
    return _folder_dataset("imagenet-sketch", root / "sketch", {wnids[1]: 1, wnids[998]: 998}, "JPEG")


def _make_subset(name: str, root: Path) -> Expected:
    wnids = packaged_lines(name, "wnids.txt")
    return _folder_dataset(name, root / name, {wnids[0]: 0, wnids[199]: 199, wnids[50]: 50}, "jpg")


def make_imagenet_a(root: Path) -> Expected:
    return _make_subset("imagenet-a", root)


def make_imagenet_r(root: Path) -> Expected:
    return _make_subset("imagenet-r", root)


def authors_caltech101_split(base: Path) -> list[tuple[str, int]]:
    """The authors' split (BLIP/data/caltech101.py), transcribed: seed once, one choice of 30 per class.

    Their ``glob`` lists files in the file system's order; sorted here, as lr0fm documents.
    """
    folders = packaged_lines("caltech101", "folders.txt")
    np.random.seed(1234)
    out = []
    for label, folder in enumerate(folders):
        if folder == "BACKGROUND_Google":
            continue
        imgs = sorted(str(p) for p in (base / folder).glob("*.jpg"))
        train_images = list(np.random.choice(imgs, 30, replace=False))
        out += [(path, label) for path in sorted(set(imgs) - set(train_images))]
    return out


def make_caltech101(root: Path) -> Expected:
    """All 101 categories with 30-35 images each (the split needs every class), plus BACKGROUND_Google.

    Expected: the authors' split computed by :func:`authors_caltech101_split`; label 0 ("background") has
    no test image.
    """
    base = root / "caltech101" / "101_ObjectCategories"
    names = _names("caltech101")
    jpeg = (write_jpeg(root / "caltech_template.jpg", 1)).read_bytes()
    for k, folder in enumerate(packaged_lines("caltech101", "folders.txt")):
        (base / folder).mkdir(parents=True, exist_ok=True)
        for i in range(1, 31 + k % 5):
            (base / folder / f"image_{i:04d}.jpg").write_bytes(jpeg)
    return [(path, label, names[label]) for path, label in authors_caltech101_split(base)]


def make_dtd(root: Path) -> Expected:
    data = root / "dtd" / "dtd"
    names = _names("dtd")
    rows = [("banded", "banded_0004.jpg", 0), ("zigzagged", "zigzagged_0133.jpg", 46)]
    write_jpeg(data / "images" / "banded" / "banded_0001.jpg")  # a training image: not in test1.txt
    write_lines(data / "labels" / "test1.txt", [f"{c}/{f}" for c, f, _ in rows])
    return [(str(write_jpeg(data / "images" / c / f, i)), lab, names[lab]) for i, (c, f, lab) in enumerate(rows)]


def make_food101(root: Path) -> Expected:
    base = root / "food-101"
    names = _names("food101")
    listing = {"apple_pie": ["apple_pie/1011328"], "waffles": ["waffles/2009", "waffles/1001"]}
    (base / "meta").mkdir(parents=True)
    (base / "meta" / "test.json").write_text(json.dumps(listing))
    labels = {"apple_pie": 0, "waffles": 100}
    return [
        (str(write_jpeg(base / "images" / f"{entry}.jpg", i)), labels[dish], names[labels[dish]])
        for i, (dish, entries) in enumerate(listing.items())
        for entry in entries
    ]


def make_sun397(root: Path) -> Expected:
    data = root / "SUN397"
    names = _names("sun397")
    rows = [
        ("/a/abbey/sun_aaa.jpg", 0),
        ("/a/apartment_building/outdoor/sun_bbb.jpg", 8),
        ("/y/youth_hostel/sun_c.jpg", 396),
    ]
    write_lines(data / "Testing_01.txt", [r for r, _ in rows])
    return [(str(write_jpeg(data / r.strip("/"), i)), lab, names[lab]) for i, (r, lab) in enumerate(rows)]


def make_stanford_cars(root: Path) -> Expected:
    base = root / "stanford_cars"
    names = _names("stanford-cars")
    rows = [("00002.jpg", 196), ("00001.jpg", 1), ("00003.jpg", 14)]
    annotations = np.array(
        [(np.uint8(1), np.uint8(2), np.uint8(3), np.uint8(4), c, f) for f, c in rows],
        dtype=[
            ("bbox_x1", "O"),
            ("bbox_y1", "O"),
            ("bbox_x2", "O"),
            ("bbox_y2", "O"),
            ("class", "O"),
            ("fname", "O"),
        ],
    )
    base.mkdir(parents=True)
    savemat(str(base / "cars_test_annos_withlabels.mat"), {"annotations": annotations})
    return [(str(write_jpeg(base / "cars_test" / f, c)), c - 1, names[c - 1]) for f, c in rows]


def make_fgvc_aircraft(root: Path) -> Expected:
    data = root / "fgvc-aircraft-2013b" / "data"
    names = _names("fgvc-aircraft")
    rows = [("0034309", "707-320", 0), ("1514522", "F/A-18", 73), ("0056978", "Yak-42", 99)]
    write_lines(data / "images_variant_test.txt", [f"{i} {v}" for i, v, _ in rows])
    return [(str(write_jpeg(data / "images" / f"{i}.jpg", n)), lab, names[lab]) for n, (i, _, lab) in enumerate(rows)]


def make_oxford_pets(root: Path) -> Expected:
    base = root / "oxford-iiit-pet"
    names = _names("oxford-pets")
    rows = [("Abyssinian_201", 1, 1), ("yorkshire_terrier_9", 37, 2), ("Bengal_3", 6, 1)]
    write_lines(base / "annotations" / "test.txt", [f"{i} {c} {s} 1" for i, c, s in rows])
    return [(str(write_jpeg(base / "images" / f"{i}.jpg", c)), c - 1, names[c - 1]) for i, c, _ in rows]


def make_flowers102(root: Path) -> Expected:
    base = root / "flowers-102"
    names = _names("flowers102")
    labels = [1, 102, 5, 77]  # 1-based, image_00001 .. image_00004
    base.mkdir(parents=True)
    savemat(str(base / "imagelabels.mat"), {"labels": np.array([labels], dtype=np.uint8)})
    savemat(
        str(base / "setid.mat"),
        {"trnid": np.array([[3]]), "valid": np.array([[2]]), "tstid": np.array([[4, 1]])},
    )
    for i in range(1, 5):
        write_jpeg(base / "jpg" / f"image_{i:05d}.jpg", i)
    return [(str(base / "jpg" / f"image_{i:05d}.jpg"), labels[i - 1] - 1, names[labels[i - 1] - 1]) for i in (1, 4)]


def make_eurosat(root: Path) -> Expected:
    """AnnualCrop: 6 images, SeaLake: 2, and CoOp's split file whose ``val`` list (the test set) holds 3."""
    base = root / "eurosat" / "2750"
    names = _names("eurosat")
    for i in range(1, 7):
        write_jpeg(base / "AnnualCrop" / f"AnnualCrop_{i}.jpg", i)
    for i in (1, 2):
        write_jpeg(base / "SeaLake" / f"SeaLake_{i}.jpg", 10 + i)
    split = {  # [image path relative to 2750/, CoOp label, CoOp class name]
        "train": [["AnnualCrop/AnnualCrop_1.jpg", 0, "Annual Crop Land"], ["SeaLake/SeaLake_1.jpg", 9, "Sea or Lake"]],
        "val": [
            ["AnnualCrop/AnnualCrop_2.jpg", 0, "Annual Crop Land"],
            ["AnnualCrop/AnnualCrop_5.jpg", 0, "Annual Crop Land"],
            ["SeaLake/SeaLake_2.jpg", 9, "Sea or Lake"],
        ],
        "test": [["AnnualCrop/AnnualCrop_6.jpg", 0, "Annual Crop Land"]],
    }
    (root / "eurosat" / "split_zhou_EuroSAT.json").write_text(json.dumps(split))
    return [(str(base / p), label, names[label]) for p, label, _ in split["val"]]


def make_ucf101(root: Path) -> Expected:
    base = root / "ucf101"
    names = _names("ucf101")
    rows = [
        ("ApplyEyeMakeup", "v_ApplyEyeMakeup_g01_c01", 0),
        ("HandstandPushups", "v_HandStandPushups_g01_c01", 36),
        ("YoYo", "v_YoYo_g07_c03", 100),
    ]
    write_lines(base / "ucfTrainTestlist" / "testlist01.txt", [f"{c}/{v}.avi" for c, v, _ in rows])
    frames = base / "UCF-101-midframes"
    return [(str(write_jpeg(frames / c / f"{v}.jpg", n)), lab, names[lab]) for n, (c, v, lab) in enumerate(rows)]


#: canonical dataset name -> layout builder
MAKERS: dict[str, Callable[[Path], Expected]] = {
    "imagenet": make_imagenet,
    "imagenet-a": make_imagenet_a,
    "imagenet-v2": make_imagenet_v2,
    "imagenet-r": make_imagenet_r,
    "imagenet-sketch": make_imagenet_sketch,
    "caltech101": make_caltech101,
    "dtd": make_dtd,
    "food101": make_food101,
    "sun397": make_sun397,
    "stanford-cars": make_stanford_cars,
    "fgvc-aircraft": make_fgvc_aircraft,
    "oxford-pets": make_oxford_pets,
    "flowers102": make_flowers102,
    "eurosat": make_eurosat,
    "ucf101": make_ucf101,
}


def jpeg_bytes(seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (seed * 37 % 256, 0, 0)).save(buffer, "JPEG")
    return buffer.getvalue()


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def make_wds(path: Path, classnames: list[str], shards: list[list[tuple[str, str, bytes, bytes]]]) -> None:
    """Write CLIP_benchmark shards: ``shards[i]`` = ``[(key, image ext, image bytes, cls bytes), ...]``."""
    write_lines(path / "classnames.txt", classnames)
    write_lines(path / "zeroshot_classification_templates.txt", ["a photo of a {c}.", "a drawing of a {c}."])
    (path / "test").mkdir(parents=True)
    for index, members in enumerate(shards):
        with tarfile.open(path / "test" / f"{index}.tar", "w") as tar:
            for key, ext, image, cls in members:
                add_member(tar, f"{key}.{ext}", image)
                add_member(tar, f"{key}.cls", cls)
