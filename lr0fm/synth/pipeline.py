"""Load a diffusers text-to-image pipeline from a Hub id or a local ``save_pretrained`` directory."""

from __future__ import annotations

from typing import Any

import torch

from lr0fm.diffusers_pipelines import PipelineLoadError, open_pipeline
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
    try:
        pipe = open_pipeline(
            name_or_path,
            option=f"--pipeline {name_or_path!r}",
            components="one folder per component: transformer/ or unet/, vae/, text_encoder/, tokenizer/, scheduler/",
            example=DEFAULT_PIPELINE,
            torch_dtype=_DTYPES[dtype],
        )
    except PipelineLoadError as exc:
        raise SynthError(str(exc)) from exc
    try:
        return pipe.to(device)
    except (RuntimeError, AssertionError) as exc:
        raise SynthError(f"could not move the pipeline to --device {device!r}: {exc}") from exc
