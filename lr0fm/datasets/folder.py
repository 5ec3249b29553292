"""A custom image-folder dataset: one sub-folder of images per class.

Layout::

    <path>/<class folder>/*.{jpg,jpeg,png,webp,bmp}      classes = sorted folder names
    <path>/classnames.txt                                optional, one name per class folder (sorted order)
    <path>/zeroshot_classification_templates.txt         optional, one prompt per line with {c}

Without ``classnames.txt`` a class is named by its folder (underscores become spaces); without the
templates file the single prompt :data:`DEFAULT_TEMPLATES` is used.
"""

from __future__ import annotations

from pathlib import Path

from lr0fm.datasets.base import DatasetError, ZeroShotDataset, load_image
from lr0fm.datasets.registry import register_dataset_scheme
from lr0fm.datasets.resources import check_templates, read_text_lines
from lr0fm.datasets.scan import class_folders, scan_class_folders

DEFAULT_TEMPLATES = ["a photo of a {c}."]
CLASSNAMES_FILE = "classnames.txt"
TEMPLATES_FILE = "zeroshot_classification_templates.txt"


@register_dataset_scheme("folder")
def build_folder_dataset(path: Path, split: str = "test") -> ZeroShotDataset:
    """Load the image folder at ``path`` (layout in the module docstring); it has only the ``test`` split.

    Raises:
        DatasetError: on a missing folder, no class folders, an empty class folder, a class-name count
            that differs from the folder count, a template without ``{c}``, or another split than ``test``.

    """
    if split != "test":
        raise DatasetError(f"dataset 'folder:{path}' provides only the 'test' split, not {split!r}.")
    if not path.is_dir():
        raise DatasetError(
            f"folder: {str(path)!r} is not a directory; expected <path>/<class folder>/*.jpg with one "
            "sub-folder per class."
        )
    folders = [f.name for f in class_folders(path)]
    samples = scan_class_folders(path, {name: i for i, name in enumerate(folders)}, f"folder:{path}")
    names = [name.replace("_", " ") for name in folders]
    if (path / CLASSNAMES_FILE).is_file():
        names = read_text_lines(path / CLASSNAMES_FILE)
        if len(names) != len(folders):
            raise DatasetError(
                f"folder: {str(path / CLASSNAMES_FILE)!r} has {len(names)} class names but {str(path)!r} has "
                f"{len(folders)} class folders; write one name per folder, in sorted folder order: "
                f"{', '.join(folders[:5])}{', ...' if len(folders) > 5 else ''}."
            )
    prompts = list(DEFAULT_TEMPLATES)
    if (path / TEMPLATES_FILE).is_file():
        prompts = check_templates(read_text_lines(path / TEMPLATES_FILE), str(path / TEMPLATES_FILE))
    return ZeroShotDataset(f"folder:{path}", names, prompts, samples, load_image)
