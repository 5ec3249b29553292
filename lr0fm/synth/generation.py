"""Generate the synthetic image set: plan the work of this worker, skip what exists, write the rest.

The unit of work is a *chunk*: images ``[k * B, (k + 1) * B)`` of one caption, with ``B`` the batch
size. Each image's initial noise comes from its own CPU ``torch.Generator`` seeded by
:func:`~lr0fm.synth.seeds.image_seed`. A chunk with any missing or truncated image is generated again
as a whole and only the missing files are written, so every image comes from the same batch
composition whatever the sharding or the number of interruptions: results are bit-identical across
splits and resumes for a fixed batch size (another batch size changes only floating-point rounding).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lr0fm.atomic import write_text_atomic
from lr0fm.synth.captions import Caption, read_caption_file, sample_captions, write_captions_tsv
from lr0fm.synth.config import SynthConfig, SynthError, writing
from lr0fm.synth.manifest import ManifestWriter, manifest_name
from lr0fm.synth.seeds import image_seed
from lr0fm.synth.sharding import local_device, shard_caption_ids, shard_from_env
from lr0fm.synth.storage import (
    is_valid_image,
    relative_image_path,
    resize_shorter_side,
    save_image_atomic,
)
from lr0fm.synth.webdataset import PackReport, pack_webdataset

#: Settings file inside the output directory (the pixel-affecting settings of the run).
SETTINGS_FILE = "synth.json"


@dataclass(frozen=True)
class ImageTask:
    """One image to produce.

    Attributes:
        caption: its caption.
        image_index: its index within the caption.
        seed: its generator seed.
        path: its path relative to the output directory.

    """

    caption: Caption
    image_index: int
    seed: int
    path: str

    def record(self) -> dict[str, Any]:
        """Its manifest record."""
        return {
            "caption_id": self.caption.caption_id,
            "image_index": self.image_index,
            "seed": self.seed,
            "caption": self.caption.text,
            "path": self.path,
        }


@dataclass
class SynthReport:
    """What one :func:`generate` call did.

    Attributes:
        output: the output directory.
        shard: ``(index, count)`` of this worker.
        num_captions: captions of the whole run (all workers).
        shard_captions: captions this worker owns.
        total_images: images this worker owns.
        generated: images written by this call.
        skipped: images that already existed and decoded fully.
        seconds: wall time spent generating.
        webdataset: tar packing result, if requested.

    """

    output: Path
    shard: tuple[int, int]
    num_captions: int
    shard_captions: int
    total_images: int
    generated: int = 0
    skipped: int = 0
    seconds: float = 0.0
    webdataset: PackReport | None = field(default=None)

    @property
    def images_per_second(self) -> float:
        """Generation throughput of this call (0 when nothing was generated)."""
        return self.generated / self.seconds if self.generated and self.seconds > 0 else 0.0


def plan_chunks(
    captions: list[Caption], images_per_caption: int, batch_size: int, seed: int, image_format: str
) -> list[list[ImageTask]]:
    """Split the images of ``captions`` into chunks of at most ``batch_size`` images of one caption."""
    chunks = []
    for caption in captions:
        tasks = [
            ImageTask(
                caption,
                index,
                image_seed(seed, caption.caption_id, index),
                relative_image_path(caption.caption_id, index, image_format),
            )
            for index in range(images_per_caption)
        ]
        chunks += [tasks[i : i + batch_size] for i in range(0, len(tasks), batch_size)]
    return chunks


def prepare_output(config: SynthConfig) -> Path:
    """Create the output directory, check it is writable and record/check the run settings.

    Raises:
        SynthError: if the directory cannot be written, or holds a run with other pixel settings.

    """
    output = Path(config.output).expanduser()
    probe = output / f".write-test.{os.getpid()}"
    try:
        output.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise SynthError(
            f"output directory {str(output)!r} is not writable ({exc.strerror or exc}); pass an --output "
            "directory you can create and write to."
        ) from exc
    settings = json.loads(json.dumps(config.pixel_settings()))
    path = output / SETTINGS_FILE
    if path.exists():
        previous = json.loads(path.read_text(encoding="utf-8"))
        keys = settings.keys() | previous.keys()
        changed = sorted(key for key in keys if settings.get(key) != previous.get(key))
        if changed:
            diffs = ", ".join(f"{key}: {previous.get(key)!r} -> {settings.get(key)!r}" for key in changed)
            raise SynthError(
                f"{str(output)!r} holds images made with other settings ({diffs}); mixing them would make "
                "an inconsistent set. Rerun with the recorded settings or use a new --output directory."
            )
    else:
        with writing(path):
            write_text_atomic(path, json.dumps(settings, indent=2, sort_keys=True) + "\n")
    return output


def pipeline_call_kwargs(config: SynthConfig) -> dict[str, Any]:
    """Keyword arguments of every pipeline call: steps, guidance, size and ``config.call_kwargs``."""
    kwargs: dict[str, Any] = {
        "num_inference_steps": config.num_inference_steps,
        "guidance_scale": config.guidance_scale,
        "output_type": "pil",
    }
    if config.height is not None:
        kwargs["height"] = config.height
    if config.width is not None:
        kwargs["width"] = config.width
    return {**kwargs, **config.call_kwargs}


def generate_chunk(pipe: Any, chunk: list[ImageTask], call_kwargs: dict[str, Any]) -> list[Any]:
    """Run the pipeline once for a chunk (one caption) with one CPU generator per image.

    CPU generators make the initial noise the same on every device type.

    Returns:
        One PIL image per task, in order.

    Raises:
        SynthError: the pipeline refuses the call arguments (a size it cannot make, an unknown option).

    """
    generators = [torch.Generator("cpu").manual_seed(task.seed) for task in chunk]
    try:
        with torch.inference_mode():
            result = pipe(
                prompt=chunk[0].caption.text,
                num_images_per_prompt=len(chunk),
                generator=generators,
                **call_kwargs,
            )
    except (ValueError, TypeError) as exc:  # diffusers' check_inputs, or an unknown keyword of --call_kwargs
        settings = {key: value for key, value in call_kwargs.items() if key != "output_type"}
        raise SynthError(
            f"the pipeline refused the call settings {settings} ({exc}); fix --height/--width, "
            "--num_inference_steps, --guidance_scale or --call_kwargs."
        ) from exc
    return list(result.images)


def _progress_bar(total: int, initial: int, shard: tuple[int, int], enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="img",
        desc=f"synth shard {shard[0]}/{shard[1]}",
        disable=not enabled,
        dynamic_ncols=True,
    )


def generate(config: SynthConfig, pipe: Any = None) -> SynthReport:
    """Generate (or finish) this worker's share of the synthetic image set.

    Args:
        config: the run settings.
        pipe: an already loaded diffusers pipeline; ``None`` loads ``config.pipeline`` (only if
            there is work left).

    Returns:
        A :class:`SynthReport`.

    Raises:
        SynthError: on bad captions, an unusable output directory or a pipeline that cannot be loaded.

    """
    captions = sample_captions(read_caption_file(config.captions), config.num_captions, config.seed)
    output = prepare_output(config)
    write_captions_tsv(output, captions)
    shard = config.shard or shard_from_env()
    owned = set(shard_caption_ids([c.caption_id for c in captions], shard))
    mine = [c for c in captions if c.caption_id in owned]
    chunks = plan_chunks(mine, config.images_per_caption, config.batch_size, config.seed, config.image_format)
    report = SynthReport(output, shard, len(captions), len(mine), len(mine) * config.images_per_caption)

    with ManifestWriter(output / manifest_name(shard)) as manifest:
        todo = []
        for chunk in chunks:
            valid = [is_valid_image(output / task.path) for task in chunk]
            report.skipped += sum(valid)
            for task, ok in zip(chunk, valid):
                key = (task.caption.caption_id, task.image_index)
                if ok and key not in manifest:  # killed between the rename and the manifest line
                    manifest.append(task.record())
            if not all(valid):
                todo.append(chunk)
        if todo:
            if pipe is None:
                pipe = load_pipeline_for(config)
            call_kwargs = pipeline_call_kwargs(config)
            start = time.perf_counter()
            with _progress_bar(report.total_images, report.skipped, shard, config.progress) as bar:
                for chunk in todo:
                    for task, image in zip(chunk, generate_chunk(pipe, chunk, call_kwargs)):
                        target = output / task.path
                        if is_valid_image(target):
                            continue
                        image = resize_shorter_side(image, config.resize_shorter)
                        save_image_atomic(image, target, config.image_format, config.quality)
                        manifest.append(task.record())
                        report.generated += 1
                        bar.update()
            report.seconds = time.perf_counter() - start
    if config.webdataset:
        report.webdataset = pack_webdataset(output, len(captions), config.images_per_caption, config.captions_per_tar)
    return report


def load_pipeline_for(config: SynthConfig) -> Any:
    """Load ``config.pipeline`` on this worker's device (``cuda:$LOCAL_RANK`` under torchrun)."""
    from lr0fm.synth.pipeline import load_pipeline

    return load_pipeline(config.pipeline, config.dtype, local_device(config.device))
