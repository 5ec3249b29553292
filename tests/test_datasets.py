"""Tests of lr0fm.datasets: packaged class names, every loader on its real layout, wds, folders, errors."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
from datasets_fixtures import MAKERS, jpeg_bytes, make_wds, write_jpeg, write_lines
from PIL import Image

from lr0fm.catalog import DATASETS, NUM_CLASSES
from lr0fm.datasets import (
    CorruptImageError,
    DatasetError,
    ZeroShotDataset,
    build_dataset,
    list_datasets,
    prepare_dataset,
    register_dataset,
)
from lr0fm.datasets import registry as registry_module
from lr0fm.datasets.imagenet import subset_indices
from lr0fm.datasets.resources import classnames, packaged_lines, templates

os.environ.setdefault("HF_HUB_OFFLINE", "1")


# ---------------------------------------------------------------- packaged class names and templates


@pytest.mark.parametrize("name", DATASETS)
def test_packaged_classnames_and_templates(name: str) -> None:
    names = classnames(name)
    assert len(names) == NUM_CLASSES[name]
    # CLIP's curated ImageNet names repeat "missile" and "sunglasses" (two synsets each); others are unique.
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert duplicates == (["missile", "sunglasses"] if len(names) == 1000 else [])
    prompts = templates(name)
    assert prompts and all("{c}" in t for t in prompts)


def test_template_counts_match_clip() -> None:
    assert len(templates("imagenet")) == 80
    assert len(templates("caltech101")) == 34
    assert len(templates("ucf101")) == 48
    assert templates("food101") == ["a photo of {c}, a type of food."]


def test_imagenet_variants_share_imagenet_classes() -> None:
    assert classnames("imagenet-v2") == classnames("imagenet") == classnames("imagenet-sketch")
    assert len(packaged_lines("imagenet", "wnids.txt")) == 1000
    assert packaged_lines("imagenet", "wnids.txt")[0] == "n01440764"
    assert classnames("imagenet")[0] == "tench"


@pytest.mark.parametrize("name", ["imagenet-a", "imagenet-r"])
def test_subset_indices_consistent_with_wnids(name: str) -> None:
    wnids = packaged_lines("imagenet", "wnids.txt")
    sub_wnids = packaged_lines(name, "wnids.txt")
    indices = subset_indices(name)
    assert len(indices) == 200 == len(set(indices))
    assert indices == sorted(indices)
    assert [wnids[i] for i in indices] == list(sub_wnids)
    assert [classnames("imagenet")[i] for i in indices] == classnames(name)


def test_imagenet_a_known_entry() -> None:
    # ImageNet-A's first class is the stingray (n01498041), ImageNet label 6.
    assert subset_indices("imagenet-a")[0] == 6
    assert classnames("imagenet-a")[0] == "stingray"


def test_folder_maps_have_one_folder_per_class() -> None:
    folders, names = packaged_lines("caltech101", "folders.txt"), classnames("caltech101")
    assert len(folders) == len(names) == NUM_CLASSES["caltech101"] == 102  # the authors' classifier
    assert (folders[0], names[0]) == ("BACKGROUND_Google", "background")
    assert list(folders[1:]) == sorted(folders[1:]) and "head of a crocodile" in names  # their single space
    assert packaged_lines("eurosat", "folders.txt")[2] == "HerbaceousVegetation"
    assert classnames("eurosat")[2] == "brushland or shrubland"


# ---------------------------------------------------------------- registry


def test_list_datasets() -> None:
    assert list_datasets()[:15] == list(DATASETS)
    assert list_datasets("imagenet-*") == ["imagenet-a", "imagenet-v2", "imagenet-r", "imagenet-sketch"]
    assert list_datasets("nothing*") == []


def test_every_canonical_dataset_has_a_layout_test() -> None:
    assert set(MAKERS) == set(DATASETS) == set(list_datasets()) & set(DATASETS)


@pytest.mark.parametrize("name", DATASETS)
def test_loader_reads_real_layout(name: str, tmp_path: Path) -> None:
    expected = MAKERS[name](tmp_path)
    ds = build_dataset(name, str(tmp_path))
    assert isinstance(ds, ZeroShotDataset) and ds.name == name
    assert ds.num_classes == NUM_CLASSES[name]
    assert list(ds.samples) == sorted((path, label) for path, label, _ in expected)
    by_path = {path: (label, cname) for path, label, cname in expected}
    for index in range(len(ds)):
        image, label = ds[index]
        assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (8, 8)
        assert (label, ds.classnames[label]) == by_path[ds.sample_id(index)]
    assert pickle.loads(pickle.dumps(ds)).samples == ds.samples


def test_imagenet_subsets_point_into_imagenet_classifier(tmp_path: Path) -> None:
    MAKERS["imagenet-r"](tmp_path)
    ds = build_dataset("imagenet-r", tmp_path)
    assert ds.parent_classifier == "imagenet" and ds.class_subset == subset_indices("imagenet-r")
    imagenet_names = classnames("imagenet")
    for _, label in ds.samples:
        assert imagenet_names[ds.class_subset[label]] == ds.classnames[label]
    MAKERS["imagenet-v2"](tmp_path)
    v2 = build_dataset("imagenet-v2", tmp_path)
    assert v2.parent_classifier == "imagenet" and v2.class_subset is None


def test_unknown_name_suggests_close_match() -> None:
    with pytest.raises(DatasetError, match="Did you mean 'imagenet'"):
        build_dataset("imagenett", "/tmp")
    with pytest.raises(DatasetError, match="'fgvc-aircraft'"):
        build_dataset("fgvc_aircraft", "/tmp")


def test_missing_root_states_layout_and_how_to_obtain(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as info:
        build_dataset("dtd", tmp_path / "absent")
    message = str(info.value)
    assert "dataset root" in message and "labels/test1.txt" in message
    assert "download=True" in message and "wds_dtd" in message


def test_missing_split_file_is_named(tmp_path: Path) -> None:
    MAKERS["sun397"](tmp_path)
    (tmp_path / "SUN397" / "Testing_01.txt").unlink()
    with pytest.raises(DatasetError, match=r"Testing_01\.txt.*not found(.|\n)*Partitions\.zip"):
        build_dataset("sun397", tmp_path)


def test_root_required_and_split_checked(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"(?s)needs the directory that holds it: pass eurosat=ROOT.*layout"):
        build_dataset("eurosat")
    with pytest.raises(DatasetError, match="only the 'test' split"):
        build_dataset("eurosat", tmp_path, split="train")


def test_images_listed_but_missing(tmp_path: Path) -> None:
    MAKERS["dtd"](tmp_path)
    with (tmp_path / "dtd" / "dtd" / "labels" / "test1.txt").open("a") as f:
        f.write("banded/banded_9999.jpg\n")
    with pytest.raises(DatasetError, match="1 of 3 images.*banded_9999"):
        build_dataset("dtd", tmp_path)


def test_unknown_class_folder_and_label_names(tmp_path: Path) -> None:
    MAKERS["imagenet-a"](tmp_path)
    write_jpeg(tmp_path / "imagenet-a" / "n01440764" / "x.jpg")  # tench: in ImageNet but not in ImageNet-A
    with pytest.raises(DatasetError, match="n01440764.*not a class of imagenet-a"):
        build_dataset("imagenet-a", tmp_path)
    MAKERS["fgvc-aircraft"](tmp_path)
    write_lines(tmp_path / "fgvc-aircraft-2013b" / "data" / "images_variant_test.txt", ["0034309 Boeing 999"])
    with pytest.raises(DatasetError, match="'Boeing 999', which is not a fgvc-aircraft class"):
        build_dataset("fgvc-aircraft", tmp_path)


def test_empty_class_folder(tmp_path: Path) -> None:
    MAKERS["imagenet-sketch"](tmp_path)
    empty = packaged_lines("imagenet", "wnids.txt")[7]
    (tmp_path / "sketch" / empty).mkdir()
    with pytest.raises(DatasetError, match=f"{empty}.*holds no images"):
        build_dataset("imagenet-sketch", tmp_path)


def test_caltech101_is_the_authors_seeded_split_with_a_background_class(tmp_path: Path) -> None:
    expected = MAKERS["caltech101"](tmp_path)  # the authors' code, transcribed, on all 101 folders
    first = build_dataset("caltech101", tmp_path)
    assert first.num_classes == 102 and first.classnames[0] == "background"
    assert 0 not in {label for _, label in first.samples}  # background: in the classifier, never a test image
    per_class: dict[int, int] = {}
    for _, label in first.samples:
        per_class[label] = per_class.get(label, 0) + 1
    base = tmp_path / "caltech101" / "101_ObjectCategories"
    for label, folder in enumerate(packaged_lines("caltech101", "folders.txt")[1:], start=1):
        assert per_class.get(label, 0) == len(list((base / folder).glob("*.jpg"))) - 30
    again = build_dataset("caltech101", tmp_path)
    assert list(again.samples) == list(first.samples) == sorted((p, label) for p, label, _ in expected)
    # not the first 30 by name: the split is drawn
    assert any(Path(p).name <= "image_0030.jpg" for p, _ in first.samples)


def test_caltech101_needs_every_category(tmp_path: Path) -> None:
    MAKERS["caltech101"](tmp_path)
    folder = tmp_path / "caltech101" / "101_ObjectCategories" / "yin_yang"
    for path in sorted(folder.glob("*.jpg"))[10:]:
        path.unlink()
    with pytest.raises(DatasetError, match="yin_yang.*holds 10 .jpg images; each of the 101 categories needs"):
        build_dataset("caltech101", tmp_path)


def test_eurosat_reads_the_val_list_of_coops_split_and_explains_a_missing_one(tmp_path: Path) -> None:
    expected = MAKERS["eurosat"](tmp_path)
    ds = build_dataset("eurosat", tmp_path)
    assert len(ds) == 3 and {Path(p).name for p, _ in ds.samples} == {Path(p).name for p, _, _ in expected}
    (tmp_path / "eurosat" / "split_zhou_EuroSAT.json").unlink()
    with pytest.raises(DatasetError, match=r"split_zhou_EuroSAT.json' not found.*'val' list.*KaiyangZhou/CoOp"):
        build_dataset("eurosat", tmp_path)
    (tmp_path / "eurosat" / "split_zhou_EuroSAT.json").write_text('{"train": []}')
    with pytest.raises(DatasetError, match="is not a CoOp split file"):
        build_dataset("eurosat", tmp_path)


def test_ucf101_reads_coops_midframes_and_split(tmp_path: Path) -> None:
    base = tmp_path / "ucf101"
    frames = base / "UCF-101-midframes"
    paths = [
        write_jpeg(frames / "Apply_Eye_Makeup" / "v_ApplyEyeMakeup_g01_c01.jpg", 1),
        write_jpeg(frames / "Yo_Yo" / "v_YoYo_g07_c03.jpg", 2),
        write_jpeg(frames / "Yo_Yo" / "v_YoYo_g01_c01.jpg", 3),  # a training video: not in 'test'
    ]
    split = {
        "train": [["Yo_Yo/v_YoYo_g01_c01.jpg", 100, "Yo_Yo"]],
        "val": [],
        "test": [["Apply_Eye_Makeup/v_ApplyEyeMakeup_g01_c01.jpg", 0, "Apply_Eye_Makeup"],
                 ["Yo_Yo/v_YoYo_g07_c03.jpg", 100, "Yo_Yo"]],
    }  # fmt: skip
    (base / "split_zhou_UCF101.json").write_text(json.dumps(split))
    ds = build_dataset("ucf101", tmp_path)
    assert list(ds.samples) == [(str(paths[0]), 0), (str(paths[1]), 100)]
    assert (ds.classnames[0], ds.classnames[100]) == ("Apply Eye Makeup", "Yo Yo")
    (base / "split_zhou_UCF101.json").unlink()  # without CoOp's file: testlist01.txt, same frame folders
    write_lines(base / "ucfTrainTestlist" / "testlist01.txt", ["YoYo/v_YoYo_g07_c03.avi"])
    assert list(build_dataset("ucf101", tmp_path).samples) == [(str(paths[1]), 100)]


def test_bad_annotation_files(tmp_path: Path) -> None:
    MAKERS["oxford-pets"](tmp_path)
    write_lines(tmp_path / "oxford-iiit-pet" / "annotations" / "test.txt", ["Abyssinian_201 99 1 1"])
    with pytest.raises(DatasetError, match="bad line 'Abyssinian_201 99 1 1'"):
        build_dataset("oxford-pets", tmp_path)
    MAKERS["flowers102"](tmp_path)
    (tmp_path / "flowers-102" / "setid.mat").write_bytes(b"not a mat file")
    with pytest.raises(DatasetError, match="cannot read .*setid.mat"):
        build_dataset("flowers102", tmp_path)


def test_corrupt_image_raised_lazily_with_path(tmp_path: Path) -> None:
    MAKERS["caltech101"](tmp_path)
    ds = build_dataset("caltech101", tmp_path)
    index = len(ds) - 1
    bad = Path(ds.sample_id(index))
    bad.write_bytes(b"\xff\xd8garbage")
    ds[0]  # other samples still decode
    with pytest.raises(CorruptImageError, match=bad.name) as info:
        ds[index]
    assert info.value.path == str(bad)


def test_register_custom_dataset(tmp_path: Path) -> None:
    @register_dataset("mine-test")
    def build(root: Path) -> ZeroShotDataset:
        return ZeroShotDataset("mine", ["a", "b"], ["{c}"], [(str(root / "x.jpg"), 1)], Image.open)

    try:
        assert "mine-test" in list_datasets("mine-*")
        assert build_dataset("mine-test", tmp_path).samples == [(str(tmp_path / "x.jpg"), 1)]
    finally:
        registry_module.DATASETS.remove("mine-test")
    with pytest.raises(ValueError, match="may not contain"):
        register_dataset("folder:x")(build)


def test_toy_world_registers_its_datasets_as_a_plug_in() -> None:
    from lr0fm.toy.datasets import TOY_DATASETS
    from lr0fm.toy.plugin import TOY_DATASET_NAMES

    assert set(TOY_DATASET_NAMES) == set(TOY_DATASETS)
    assert list_datasets("toy-*") == sorted(TOY_DATASETS)  # listed like any other dataset
    dataset = build_dataset("toy-color")  # generated: no root needed
    assert dataset.name == "toy-color" and len(dataset) > 0
    with pytest.raises(DatasetError, match="Did you mean 'toy-shape'"):
        build_dataset("toy-shapes")


def test_prepare_uses_torchvision_download(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torchvision.datasets

    seen = {}

    class FakeDTD:
        def __init__(self, root: str, **kwargs: object) -> None:
            seen.update(kwargs, root=root)

    class BrokenDTD:
        def __init__(self, root: str, **kwargs: object) -> None:
            raise RuntimeError("File not found or corrupted.")

    monkeypatch.setattr(torchvision.datasets, "DTD", FakeDTD)
    prepare_dataset("dtd", tmp_path / "dl", download=True)
    assert seen == {"root": str(tmp_path / "dl"), "download": True, "split": "test", "partition": 1}
    prepare_dataset("ucf101", tmp_path, download=True)  # no torchvision download: nothing to do
    prepare_dataset("folder:/anywhere", None, download=True)
    monkeypatch.setattr(torchvision.datasets, "DTD", BrokenDTD)
    with pytest.raises(DatasetError, match="DTD download into .* failed: File not found"):
        build_dataset("dtd", tmp_path / "dl2", download=True)


# ---------------------------------------------------------------- webdataset shards


def _wds_fixture(path: Path) -> None:
    make_wds(
        path,
        ["cat", "dog", "bird"],
        [
            [("s000", "jpg", jpeg_bytes(1), b"2"), ("s001", "webp", _webp(), b"0")],
            [("s002", "png", _png(), b"1\n")],
        ],
    )


def _webp() -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 255, 0)).save(buffer, "WEBP")
    return buffer.getvalue()


def _png() -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 0, 255)).save(buffer, "PNG")
    return buffer.getvalue()


def test_wds_round_trip(tmp_path: Path) -> None:
    _wds_fixture(tmp_path / "wds_toy")
    ds = build_dataset(f"wds:{tmp_path / 'wds_toy'}")
    assert ds.classnames == ["cat", "dog", "bird"]
    assert ds.templates == ["a photo of a {c}.", "a drawing of a {c}."]
    assert [label for _, label in ds.samples] == [2, 0, 1]
    assert ds.sample_id(2) == f"{tmp_path / 'wds_toy' / 'test' / '1.tar'}#s002"
    image, label = ds[1]
    assert image.mode == "RGB" and image.getpixel((4, 4))[1] > 200 and label == 0
    clone = pickle.loads(pickle.dumps(ds))
    image, label = clone[2]
    assert image.getpixel((4, 4))[2] > 200 and label == 1


def test_wds_in_dataloader_workers(tmp_path: Path) -> None:
    from torch.utils.data import DataLoader

    _wds_fixture(tmp_path / "w")
    ds = build_dataset("wds:" + str(tmp_path / "w"))
    ds[0]  # open a handle in the parent first: workers must reopen their own
    loader = DataLoader(ds, batch_size=None, num_workers=2, collate_fn=lambda item: item[1])
    assert sorted(loader) == [0, 1, 2]


def test_wds_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="classnames.txt' not found(.|\n)*clip-benchmark"):
        build_dataset(f"wds:{tmp_path}")
    path = tmp_path / "a"
    make_wds(path, ["x", "y"], [[("k", "jpg", jpeg_bytes(), b"5")]])
    with pytest.raises(DatasetError, match=r"k\.cls holds '5'; expected a label in 0\.\.1"):
        build_dataset(f"wds:{path}")
    path = tmp_path / "b"
    make_wds(path, ["x", "y"], [[("k", "jpg", jpeg_bytes(), b"1")]])
    write_lines(path / "zeroshot_classification_templates.txt", ["a photo of a {}."])
    with pytest.raises(DatasetError, match=r"template 1 'a photo of a \{\}\.' has no '\{c\}'"):
        build_dataset(f"wds:{path}")
    path = tmp_path / "c"
    make_wds(path, ["x", "y"], [[("k", "jpg", b"garbage", b"1")]])
    ds = build_dataset(f"wds:{path}")
    with pytest.raises(CorruptImageError, match=r"0\.tar#k"):
        ds[0]
    (path / "test" / "1.tar").write_bytes(b"x" * 600)
    with pytest.raises(DatasetError, match=r"cannot read shard .*1\.tar"):
        build_dataset(f"wds:{path}")


def test_wds_image_without_label(tmp_path: Path) -> None:
    import tarfile

    from datasets_fixtures import add_member

    make_wds(tmp_path, ["x"], [[]])
    with tarfile.open(tmp_path / "test" / "0.tar", "w") as tar:
        add_member(tar, "only.jpg", jpeg_bytes())
    with pytest.raises(DatasetError, match="'only' .* has an image but no .cls label"):
        build_dataset(f"wds:{tmp_path}")


# ---------------------------------------------------------------- custom folders


def _folder(root: Path) -> None:
    for i, cls in enumerate(["red_fox", "cat", "zebra"]):
        write_jpeg(root / cls / f"{i}a.jpg", i)
        write_jpeg(root / cls / f"{i}b.png", i + 1)
    (root / "cat" / "notes.txt").write_text("not an image")


def test_folder_defaults(tmp_path: Path) -> None:
    _folder(tmp_path)
    ds = build_dataset(f"folder:{tmp_path}")
    assert ds.classnames == ["cat", "red fox", "zebra"]
    assert ds.templates == ["a photo of a {c}."]
    assert [Path(p).name for p, _ in ds.samples] == [
        "1a.jpg",
        "1b.png",
        "0a.jpg",
        "0b.png",
        "2a.jpg",
        "2b.png",
    ]
    assert [label for _, label in ds.samples] == [0, 0, 1, 1, 2, 2]
    assert ds[5][0].mode == "RGB"


def test_folder_with_classnames_and_templates(tmp_path: Path) -> None:
    _folder(tmp_path)
    write_lines(tmp_path / "classnames.txt", ["house cat", "fox", "zebra"])
    write_lines(tmp_path / "zeroshot_classification_templates.txt", ["a {c}.", "art of a {c}."])
    ds = build_dataset("folder:", tmp_path)
    assert ds.classnames == ["house cat", "fox", "zebra"] and ds.templates == ["a {c}.", "art of a {c}."]


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="is not a directory"):
        build_dataset(f"folder:{tmp_path / 'nope'}")
    with pytest.raises(DatasetError, match="no class folders"):
        build_dataset(f"folder:{tmp_path}")
    _folder(tmp_path)
    write_lines(tmp_path / "classnames.txt", ["one", "two"])
    with pytest.raises(DatasetError, match="2 class names but .* has 3 class folders(.|\n)*cat, red_fox, zebra"):
        build_dataset(f"folder:{tmp_path}")
    write_lines(tmp_path / "classnames.txt", ["one", "two", "three"])
    write_lines(tmp_path / "zeroshot_classification_templates.txt", ["a {c}.", "a photo."])
    with pytest.raises(DatasetError, match="template 2 'a photo.' has no"):
        build_dataset(f"folder:{tmp_path}")
    (tmp_path / "zeroshot_classification_templates.txt").unlink()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty' holds no images"):
        build_dataset(f"folder:{tmp_path}")
    (tmp_path / "empty").rmdir()
    (tmp_path / "zebra" / "2a.jpg").write_bytes(b"")
    ds = build_dataset(f"folder:{tmp_path}")
    with pytest.raises(CorruptImageError, match="2a.jpg"):
        ds[4]
