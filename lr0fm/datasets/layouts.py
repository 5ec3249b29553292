"""The expected on-disk layout of each canonical dataset and how to obtain it (for error messages).

Layouts follow torchvision's dataset classes (the ``root`` passed to ``build_dataset`` is the directory
torchvision would be given). Every dataset except UCF101 is also published by CLIP_benchmark as
webdataset shards, loadable with the ``wds:/path`` spec.
"""

from __future__ import annotations

from pathlib import Path

from lr0fm.datasets.base import DatasetError

_HF = "https://huggingface.co/datasets/clip-benchmark/"
_TV = "pass download=True (--download) to use torchvision's download, or the webdataset "

#: dataset -> (expected tree under <root>, how to obtain it)
LAYOUTS: dict[str, tuple[str, str]] = {
    "imagenet": (
        "<root>/val/<wnid>/*.JPEG   (1000 folders, e.g. val/n01440764/ILSVRC2012_val_00000293.JPEG)\n"
        "  or the raw archives <root>/ILSVRC2012_img_val.tar + <root>/ILSVRC2012_devkit_t12.tar.gz\n"
        "  (unpacked into val/<wnid>/ by torchvision.datasets.ImageNet on first use)",
        "download the ILSVRC2012 validation images and devkit from https://image-net.org/download-images "
        f"(registration required), or the webdataset {_HF}wds_imagenet1k",
    ),
    "imagenet-v2": (
        "<root>/imagenetv2-matched-frequency-format-val/<class index 0..999>/*.jpeg",
        "download and extract https://huggingface.co/datasets/vaishaal/ImageNetV2/resolve/main/"
        f"imagenetv2-matched-frequency.tar.gz, or the webdataset {_HF}wds_imagenetv2",
    ),
    "imagenet-a": (
        "<root>/imagenet-a/<wnid>/*.jpg          (200 folders)",
        "download and extract https://people.eecs.berkeley.edu/~hendrycks/imagenet-a.tar, "
        f"or the webdataset {_HF}wds_imagenet-a",
    ),
    "imagenet-r": (
        "<root>/imagenet-r/<wnid>/*.jpg          (200 folders)",
        "download and extract https://people.eecs.berkeley.edu/~hendrycks/imagenet-r.tar, "
        f"or the webdataset {_HF}wds_imagenet-r",
    ),
    "imagenet-sketch": (
        "<root>/sketch/<wnid>/*.JPEG             (1000 folders)",
        "download ImageNet-Sketch.zip (https://github.com/HaohanWang/ImageNet-Sketch) and extract it, "
        f"or the webdataset {_HF}wds_imagenet_sketch",
    ),
    "caltech101": (
        "<root>/caltech101/101_ObjectCategories/<category>/image_0001.jpg   (101 categories; BACKGROUND_Google "
        "is a class of the classifier but gives no test image)",
        _TV + f"{_HF}wds_vtab-caltech101",
    ),
    "dtd": (
        "<root>/dtd/dtd/images/<texture>/*.jpg\n<root>/dtd/dtd/labels/test1.txt",
        _TV + f"{_HF}wds_dtd",
    ),
    "food101": (
        "<root>/food-101/images/<dish>/<id>.jpg\n<root>/food-101/meta/test.json",
        _TV + f"{_HF}wds_food101",
    ),
    "sun397": (
        "<root>/SUN397/<letter>/<category>[/<sub-category>]/sun_*.jpg\n"
        "<root>/SUN397/Testing_01.txt            (official partition 01, from Partitions.zip)",
        "pass download=True (--download) for torchvision's image download, then extract Testing_01.txt from "
        "https://vision.princeton.edu/projects/2010/SUN/download/Partitions.zip into <root>/SUN397/; "
        f"or use the webdataset {_HF}wds_sun397",
    ),
    "stanford-cars": (
        "<root>/stanford_cars/cars_test/*.jpg\n<root>/stanford_cars/cars_test_annos_withlabels.mat",
        "the original Stanford URLs are offline and torchvision no longer downloads it; get the archive "
        f"from a mirror (e.g. Kaggle 'stanford-cars-dataset') or use the webdataset {_HF}wds_cars",
    ),
    "fgvc-aircraft": (
        "<root>/fgvc-aircraft-2013b/data/images/<id>.jpg\n<root>/fgvc-aircraft-2013b/data/images_variant_test.txt",
        f"pass download=True (--download) to use torchvision's download, or the webdataset {_HF}wds_fgvc_aircraft",
    ),
    "oxford-pets": (
        "<root>/oxford-iiit-pet/images/<Breed_id>.jpg\n<root>/oxford-iiit-pet/annotations/test.txt",
        _TV + f"{_HF}wds_vtab-pets",
    ),
    "flowers102": (
        "<root>/flowers-102/jpg/image_00001.jpg\n<root>/flowers-102/imagelabels.mat\n<root>/flowers-102/setid.mat",
        _TV + f"{_HF}wds_vtab-flowers",
    ),
    "eurosat": (
        "<root>/eurosat/2750/<Class>/<Class>_<n>.jpg   (10 folders: AnnualCrop ... SeaLake)\n"
        "<root>/eurosat/split_zhou_EuroSAT.json   (CoOp's split; its 'val' list is the LR0.FM test set)",
        "torchvision's EuroSAT download (--download) gives 2750/; split_zhou_EuroSAT.json is linked in the EuroSAT "
        "section of https://github.com/KaiyangZhou/CoOp/blob/main/DATASETS.md; CLIP_benchmark's other (VTAB) "
        f"split is the webdataset {_HF}wds_vtab-eurosat",
    ),
    "ucf101": (
        "<root>/ucf101/UCF-101-midframes/<Class>/v_<Class>_gXX_cYY.jpg   (middle frame of each video; CoOp's\n"
        "    Apply_Eye_Makeup-style class folders work too)\n"
        "<root>/ucf101/split_zhou_UCF101.json   (CoOp's split, read when present), or\n"
        "<root>/ucf101/ucfTrainTestlist/testlist01.txt",
        "download https://www.crcv.ucf.edu/data/UCF101/UCF101.rar and "
        "https://www.crcv.ucf.edu/data/UCF101/UCF101TrainTestSplits-RecognitionTask.zip, then save the "
        "middle frame of each video as UCF-101-midframes/<Class>/<video name>.jpg (e.g. with ffmpeg), or take "
        "CoOp's UCF-101-midframes and split_zhou_UCF101.json (https://github.com/KaiyangZhou/CoOp/blob/main/"
        "DATASETS.md); CLIP_benchmark publishes no webdataset of UCF101",
    ),
}


def missing_error(dataset: str, root: Path, missing: Path) -> DatasetError:
    """Build the error for a missing dataset root or split file, with the expected tree and how to get it."""
    tree, how = LAYOUTS[dataset]
    what = "dataset root" if missing == root else "file or folder"
    return DatasetError(
        f"{dataset}: {what} {str(missing)!r} not found.\n"
        f"Expected layout (root={str(root)!r}):\n  {tree.replace(chr(10), chr(10) + '  ')}\n"
        f"To obtain it: {how}."
    )


def require(dataset: str, root: Path, *paths: Path) -> None:
    """Raise :func:`missing_error` for the first of ``root`` and ``paths`` that does not exist."""
    for path in (root, *paths):
        if not path.exists():
            raise missing_error(dataset, root, path)
