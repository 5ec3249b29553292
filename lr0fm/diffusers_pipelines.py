"""Opening a diffusers pipeline from a Hub id or a ``save_pretrained`` folder, with errors that say what to do.

One loader for every command that runs a diffusers pipeline: ``lr0fm synth`` (the text-to-image generator of
the training set) and ``lr0fm benchmark --sr diffusers:...`` (an upscaler in front of the backbone).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class PipelineLoadError(ValueError):
    """The pipeline cannot be opened; the message names the option, the cause and the fix."""


def open_pipeline(name_or_path: str, *, option: str, components: str, example: str, **kwargs: Any) -> Any:
    """A diffusers pipeline on the CPU, its per-step progress bar off.

    Args:
        name_or_path: a Hub id (read from the local Hugging Face cache when offline) or a local folder holding
            ``model_index.json`` (written by ``DiffusionPipeline.save_pretrained``).
        option: how the user gave it, to start each message (``--pipeline 'ID'``, ``--sr 'diffusers:ID'``).
        components: the component folders such a pipeline saves, for the message about a folder without
            ``model_index.json``.
        example: a Hub id that works, for the message about an id that cannot be fetched.
        **kwargs: passed to ``DiffusionPipeline.from_pretrained`` (e.g. ``torch_dtype``).

    Raises:
        PipelineLoadError: a folder without ``model_index.json``, a folder that does not load, or a Hub id that
            cannot be fetched (unknown, or offline and not in the local cache).
    """
    from diffusers import DiffusionPipeline

    local = Path(name_or_path).expanduser()
    if local.is_dir() and not (local / "model_index.json").is_file():
        raise PipelineLoadError(
            f"{option}: {name_or_path} is a folder but holds no model_index.json; expected a folder written by "
            f"DiffusionPipeline.save_pretrained (model_index.json plus {components})"
        )
    try:
        pipeline = DiffusionPipeline.from_pretrained(str(local) if local.is_dir() else name_or_path, **kwargs)
    except Exception as exc:  # diffusers/huggingface_hub raise many types for missing weights
        cause = f"{type(exc).__name__}: {str(exc)[:300]}"
        if local.is_dir():
            raise PipelineLoadError(f"{option}: could not load the pipeline saved in {name_or_path} ({cause})") from exc
        raise PipelineLoadError(
            f"{option}: {name_or_path!r} is not a local folder and its weights could not be fetched from the "
            f"Hugging Face Hub (offline, not in the local cache, or not a valid id; {cause}). Check the id (e.g. "
            f"{example!r}), download it on a machine with internet (`huggingface-cli download ID`), or pass a "
            "folder saved with `DiffusionPipeline.save_pretrained(DIR)`."
        ) from exc
    pipeline.set_progress_bar_config(disable=True)
    return pipeline
