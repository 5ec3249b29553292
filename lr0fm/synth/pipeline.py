"""Load a diffusers text-to-image pipeline from a Hub id or a local ``save_pretrained`` directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lr0fm.synth.config import DEFAULT_PIPELINE, SynthError

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def load_pipeline(name_or_path: str, dtype: str = "float16", device: str = "cuda") -> Any:
    """Load a diffusers pipeline and move it to ``device``.

    Args:
        name_or_path: a Hub id such as ``PixArt-alpha/PixArt-XL-2-1024-MS`` or a local directory
            holding ``model_index.json`` (written by ``DiffusionPipeline.save_pretrained``).
        dtype: ``float16``, ``bfloat16`` or ``float32``.
        device: torch device.

    Returns:
        The pipeline, with its own per-step progress bar disabled.

    Raises:
        SynthError: if the local directory is not a saved pipeline, or the Hub id cannot be loaded
            (unknown id, or offline and not in the local Hugging Face cache).

    """
    from diffusers import DiffusionPipeline

    local = Path(name_or_path).expanduser()
    if local.is_dir() and not (local / "model_index.json").is_file():
        raise SynthError(
            f"--pipeline {name_or_path!r} is a directory but holds no model_index.json; expected a "
            "directory written by DiffusionPipeline.save_pretrained (model_index.json plus one folder "
            "per component: transformer/ or unet/, vae/, text_encoder/, tokenizer/, scheduler/)."
        )
    try:
        pipe = DiffusionPipeline.from_pretrained(
            str(local) if local.is_dir() else name_or_path, torch_dtype=_DTYPES[dtype]
        )
    except Exception as exc:  # diffusers/huggingface_hub raise many types for missing weights
        if local.is_dir():
            raise SynthError(f"could not load the pipeline saved in {name_or_path!r}: {exc}") from exc
        raise SynthError(
            f"could not load diffusers pipeline {name_or_path!r}: it is not a local directory and its "
            "weights could not be fetched from the Hugging Face Hub (offline, not in the local cache, or "
            f"not a valid id; cause: {type(exc).__name__}: {str(exc)[:300]}). Check the id (the paper "
            f"uses {DEFAULT_PIPELINE!r}), download it on a machine with internet "
            "(`huggingface-cli download ID`), or pass a local directory saved with "
            "`DiffusionPipeline.save_pretrained(DIR)` as --pipeline DIR."
        ) from exc
    pipe.set_progress_bar_config(disable=True)
    try:
        return pipe.to(device)
    except (RuntimeError, AssertionError) as exc:
        raise SynthError(f"could not move the pipeline to --device {device!r}: {exc}") from exc
