"""Original checkpoint files named in a spec: where they live, and reading them without running pickled code.

Families whose weights are published as single files (BLIP's ``model_base.pth``...) take a spec such as
``blip:model_base.pth``: a path (absolute, relative or ``~``) is used as given; a bare file name is looked up
in the folders of the ``LR0FM_WEIGHTS`` environment variable (``os.pathsep``-separated, like ``PATH``), then in
the current directory. When it is nowhere, the error names the folders searched and where to download it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Environment variable listing the folders that bare checkpoint file names are looked up in.
WEIGHTS_ENV = "LR0FM_WEIGHTS"


def weights_folders() -> list[Path]:
    """Folders a bare file name is looked up in: ``$LR0FM_WEIGHTS`` (in order), then the current directory."""
    folders = [Path(p).expanduser() for p in os.environ.get(WEIGHTS_ENV, "").split(os.pathsep) if p]
    return [*folders, Path.cwd()]


def weights_folder_named(name: str) -> Path | None:
    """The first folder called ``name`` inside a ``$LR0FM_WEIGHTS`` folder (e.g. a saved tokenizer), else ``None``."""
    folders = [Path(p).expanduser() for p in os.environ.get(WEIGHTS_ENV, "").split(os.pathsep) if p]
    return next((f / name for f in folders if (f / name).is_dir()), None)


def read_original_state_dict(path: str | Path, *, expected: str, mmap: bool = False) -> dict[str, Any]:
    """Read an original checkpoint file with ``torch.load(weights_only=True)``: a crafted pickle cannot run code.

    Args:
        path: the file.
        expected: what the file should hold, for the messages (e.g. "Salesforce's original BLIP .pth").
        mmap: memory-map the file (zip-format checkpoints; multi-GB files are then read lazily).

    Returns:
        The state dict: the file's ``'model'`` entry (``{'model': state_dict}``) or the file's mapping itself.

    Raises:
        ValueError: the file is not readable with ``weights_only=True``, or holds no state dict of tensors.

    """
    import torch

    try:
        try:
            checkpoint = torch.load(path, map_location="cpu", mmap=mmap, weights_only=True)
        except RuntimeError:
            if not mmap:
                raise
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)  # not zip-format: no mmap
    except Exception as err:  # pickle errors come in many types
        raise ValueError(
            f"{str(path)!r} is not a torch checkpoint readable with weights_only=True ({type(err).__name__}: "
            f"{err}); expected {expected} ({{'model': state_dict}} or a bare state dict)."
        ) from err
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            f"{str(path)!r} holds no state dict of tensors; expected {expected} ({{'model': state_dict}} or a "
            "bare state dict)."
        )
    return dict(state)


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


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file, or of a folder's files (relative names and contents, sorted)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as fh:
            while block := fh.read(chunk):
                digest.update(block)
    return digest.hexdigest()
