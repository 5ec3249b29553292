"""Where an original checkpoint file named in a spec lives: a path, or a bare file name looked up in folders.

Families whose weights are published as single files (BLIP's ``model_base.pth``...) take a spec such as
``blip:model_base.pth``: a path (absolute, relative or ``~``) is used as given; a bare file name is looked up
in the folders of the ``LR0FM_WEIGHTS`` environment variable (``os.pathsep``-separated, like ``PATH``), then in
the current directory. When it is nowhere, the error names the folders searched and where to download it.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable listing the folders that bare checkpoint file names are looked up in.
WEIGHTS_ENV = "LR0FM_WEIGHTS"


def weights_folders() -> list[Path]:
    """Folders a bare file name is looked up in: ``$LR0FM_WEIGHTS`` (in order), then the current directory."""
    folders = [Path(p).expanduser() for p in os.environ.get(WEIGHTS_ENV, "").split(os.pathsep) if p]
    return [*folders, Path.cwd()]


def resolve_weights_file(name_or_path: str, *, url: str | None = None) -> Path:
    """Find a checkpoint file named in a spec.

    Args:
        name_or_path: a path (contains a separator or starts with ``~``/``.``), or a bare file name.
        url: where the file is published, for the error message.

    Returns:
        The absolute path of an existing file.

    Raises:
        FileNotFoundError: the path does not exist, or the bare name is in none of the folders; the message
            names the folders searched and how to get the file.

    """
    if not name_or_path:
        raise FileNotFoundError("Empty checkpoint file name; expected a path or a file name such as 'model_base.pth'.")
    get = f" Download it from {url} and" if url else " Put it"
    is_path = os.sep in name_or_path or "/" in name_or_path or name_or_path.startswith(("~", "."))
    if is_path:
        path = Path(name_or_path).expanduser()
        if path.is_file():
            return path.resolve()
        raise FileNotFoundError(
            f"Checkpoint file {str(path)!r} does not exist.{get} pass its path, or put it in a folder "
            f"listed in ${WEIGHTS_ENV} and pass only its file name."
        )
    folders = weights_folders()
    for folder in folders:
        candidate = folder / name_or_path
        if candidate.is_file():
            return candidate.resolve()
    searched = ", ".join(str(f) for f in folders)
    raise FileNotFoundError(
        f"Checkpoint file {name_or_path!r} was not found in {searched} (${WEIGHTS_ENV}, then the current "
        f"directory).{get.replace(' and', '')} into a folder listed in ${WEIGHTS_ENV} (e.g. "
        f"'export {WEIGHTS_ENV}=~/weights'), or give its full path in the spec."
    )
