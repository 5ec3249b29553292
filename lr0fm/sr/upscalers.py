"""Super-resolution models of ``lr0fm benchmark --sr SPEC``: what a spec names, loading it, running it on batches.

``SPEC`` is one of

* a weights file of any architecture `spandrel <https://github.com/chaiNNer-org/spandrel>`_ recognises
  (ESRGAN/Real-ESRGAN and BSRGAN's RRDBNet, Real-ESRGAN Compact, SwinIR, HAT, ...: spandrel detects the
  architecture and the scale from the state dict); a bare file name is looked up in ``$LR0FM_WEIGHTS``, then
  the current directory (:func:`lr0fm.models.weights_files.resolve_weights_file`);
* a name of the packaged table ``lr0fm/resources/sr/sr_models.yaml`` (the paper's Table 3 set: ``BSRGAN``,
  ``ESRGAN``, ``SwinIR``, ``HAT``; ``AddSR``, ``Inf-DiT`` and ``IDM`` are listed with why they cannot run),
  which names the original weights file and where it is published;
* ``diffusers:ID_OR_DIR``: a diffusers upscaler pipeline (``StableDiffusionUpscalePipeline``, e.g.
  ``stabilityai/stable-diffusion-x4-upscaler``, or a ``save_pretrained`` folder), called with ``--sr_kwargs``;
* ``bicubic``, ``bilinear`` or ``lanczos``, optionally ``:K`` (default 4): classical ``xK`` interpolation,
  the trivial baseline.

Every upscaler maps ``[B, 3, h, w]`` float images in ``[0, 1]`` to ``[B, 3, k*h, k*w]`` images in ``[0, 1]``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

#: the packaged table of the paper's SR models
SR_TABLE = Path(__file__).resolve().parents[1] / "resources" / "sr" / "sr_models.yaml"
#: the classical interpolations a spec may name, and the default factor
INTERPOLATIONS = ("bicubic", "bilinear", "lanczos")
DEFAULT_FACTOR = 4
DIFFUSERS_PREFIX = "diffusers:"
#: the weights files spandrel reads
WEIGHTS_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors")
SPEC_FORMS = (
    "a weights file spandrel recognises (path, or a file name looked up in $LR0FM_WEIGHTS), a name of the SR "
    "table ({names}), diffusers:ID_OR_DIR, or bicubic|bilinear|lanczos[:K]"
)


class SRSpecError(ValueError):
    """A ``--sr`` spec that names nothing lr0fm can run (the message says what the forms are)."""


@lru_cache(maxsize=1)
def sr_table() -> dict[str, dict[str, Any]]:
    """The packaged SR table by name (``same_as`` entries resolved to their target's fields)."""
    import yaml

    table = yaml.safe_load(SR_TABLE.read_text(encoding="utf-8"))
    return {name: dict(table[entry["same_as"]]) if "same_as" in entry else entry for name, entry in table.items()}


def _table_name(text: str) -> str | None:
    """The table's spelling of ``text`` (names are matched case-insensitively), or ``None``."""
    return {name.lower(): name for name in sr_table()}.get(text.lower())


@dataclass(frozen=True)
class SRSpec:
    """What a ``--sr`` spec names, before anything is loaded.

    Attributes:
        spec: the spec as given.
        kind: ``"file"``, ``"table"``, ``"diffusers"`` or ``"interpolate"``.
        name: the ``sr`` column and the ``<name>`` of the rows' protocol ``sr:<name>``.
        target: the file, the table name, the diffusers id or folder, or the interpolation mode.
        factor: the scale of an interpolation (``None`` otherwise).
    """

    spec: str
    kind: str
    name: str
    target: str
    factor: int | None = None


def parse_sr_spec(spec: str) -> SRSpec:
    """Read a ``--sr`` spec (nothing is loaded or looked up on disk).

    Raises:
        SRSpecError: an empty spec, or an interpolation with a factor that is not an integer >= 2.

    """
    text = (spec or "").strip()
    if not text:
        raise SRSpecError("--sr is empty; expected " + SPEC_FORMS.format(names=", ".join(sr_table())))
    if text.startswith(DIFFUSERS_PREFIX):
        target = text[len(DIFFUSERS_PREFIX) :].strip()
        if not target:
            raise SRSpecError(f"--sr {spec!r}: name a diffusers pipeline after 'diffusers:' (a Hub id or a folder)")
        tail = Path(target.rstrip("/")).name or target
        return SRSpec(text, "diffusers", f"diffusers-{tail}", target)
    mode, sep, factor = text.partition(":")
    if mode.lower() in INTERPOLATIONS:
        if sep and not (re.fullmatch(r"\d+", factor) and int(factor) >= 2):
            raise SRSpecError(f"--sr {spec!r}: the factor after {mode}: must be an integer >= 2, e.g. {mode}:4")
        k = int(factor) if sep else DEFAULT_FACTOR
        return SRSpec(text, "interpolate", f"{mode.lower()}-x{k}", mode.lower(), k)
    table_name = _table_name(text)
    if table_name is not None:
        return SRSpec(text, "table", table_name, table_name)
    return SRSpec(text, "file", Path(text).stem, text)


def resolve_sr_file(parsed: SRSpec) -> Path:
    """The weights file of a ``file`` or ``table`` spec.

    Raises:
        SRSpecError: a table entry that no loader can run (the reason is the table's ``no_loader``).
        FileNotFoundError: the file is nowhere (the message names the folders searched, and the table's URL).

    """
    from lr0fm.catalog import did_you_mean
    from lr0fm.models.weights_files import resolve_weights_file

    if parsed.kind == "table":
        entry = sr_table()[parsed.target]
        if "no_loader" in entry:
            raise SRSpecError(f"--sr {parsed.target}: no loader: {entry['no_loader']} (published at {entry['url']})")
        return resolve_weights_file(entry["file"], url=entry.get("url"))
    try:
        return resolve_weights_file(parsed.target)
    except FileNotFoundError as exc:
        hint = did_you_mean(parsed.target, list(sr_table()))
        forms = SPEC_FORMS.format(names=", ".join(sr_table()))
        raise FileNotFoundError(f"--sr {parsed.spec!r}: {exc}{hint} --sr takes {forms}.") from None


def _content_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Upscaler:
    """A super-resolution model: ``[B, 3, h, w]`` in ``[0, 1]`` -> ``[B, 3, k*h, k*w]`` in ``[0, 1]``.

    Attributes:
        name: the ``sr`` column.
        spec: the spec it was made from (the ``sr_spec`` column).
        key: short content hash (weights, spec and call settings; the ``sr_key`` column).
        params: number of parameters (``sr_params``).
        scale: the factor ``k`` of one pass (``None`` until a diffusers pipeline has run once).
    """

    name: str
    spec: str
    key: str
    params: int = 0
    scale: int | None = None
    device: torch.device = torch.device("cpu")

    def to(self, device: torch.device) -> Upscaler:
        """Move the model to ``device`` (once; later calls with the same device do nothing)."""
        self.device = torch.device(device)
        return self

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """One SR pass over a batch."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line: what runs."""
        return self.name


def _autocast_refused(device_type: str, half: bool, bfloat16: bool) -> bool:
    """Whether the autocast dtype in force (Lightning's mixed precision) is one the model does not support."""
    if not torch.is_autocast_enabled(device_type):
        return False
    dtype = torch.get_autocast_dtype(device_type)
    return (dtype == torch.float16 and not half) or (dtype == torch.bfloat16 and not bfloat16)


class SpandrelUpscaler(Upscaler):
    """A weights file spandrel recognises (ESRGAN, Real-ESRGAN Compact, SwinIR, HAT, ...).

    The model runs under the caller's autocast (Lightning's mixed precision) when spandrel says the
    architecture supports that dtype, else in float32; images that miss the architecture's size requirements
    are padded and the padding cropped off (spandrel's ``ImageModelDescriptor.__call__``).

    Raises:
        SRSpecError: the file is not an SR model spandrel knows, or not an RGB upscaler (scale 1, grey, ...).

    """

    def __init__(self, path: Path, *, name: str, spec: str) -> None:
        import spandrel

        from lr0fm.models.weights_files import file_sha256

        if path.suffix.lower() not in WEIGHTS_SUFFIXES:
            raise SRSpecError(
                f"--sr {spec!r}: {path} has no weights file extension; spandrel reads {', '.join(WEIGHTS_SUFFIXES)} "
                "files (rename it, or pass diffusers:DIR for a diffusers pipeline folder)"
            )
        try:
            descriptor = spandrel.ModelLoader().load_from_file(str(path))
        except spandrel.UnsupportedModelError as exc:
            raise SRSpecError(
                f"--sr {spec!r}: spandrel does not recognise the architecture of {path} ({exc}); expected the "
                "state dict of an SR model spandrel supports (ESRGAN/Real-ESRGAN, BSRGAN, Compact, SwinIR, HAT...)"
            ) from None
        except Exception as exc:  # unreadable files raise many types (pickle, zip, safetensors header)
            raise SRSpecError(
                f"--sr {spec!r}: {path} is not a readable weights file ({type(exc).__name__}: {exc})"
            ) from None
        if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.scale < 2:
            raise SRSpecError(
                f"--sr {spec!r}: {path} holds a {descriptor.architecture.name} model of purpose "
                f"{descriptor.purpose!r} and scale {getattr(descriptor, 'scale', '?')}; expected an upscaler "
                "(scale >= 2)"
            )
        if descriptor.input_channels != 3 or descriptor.output_channels != 3:
            raise SRSpecError(
                f"--sr {spec!r}: {path} maps {descriptor.input_channels} to {descriptor.output_channels} channels; "
                "expected an RGB model (3 -> 3)"
            )
        self.descriptor = descriptor.eval()
        self.name, self.spec, self.scale = name, spec, int(descriptor.scale)
        self.params = sum(p.numel() for p in descriptor.model.parameters())
        self.key = _content_key({"kind": "spandrel", "sha256": file_sha256(Path(path))})
        self.architecture = descriptor.architecture.name

    def to(self, device: torch.device) -> Upscaler:
        """Move the network to ``device``."""
        if torch.device(device) != self.device:
            self.descriptor.to(device)
        return super().to(device)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """One pass of the network (float32 out)."""
        d = self.descriptor
        if _autocast_refused(images.device.type, d.supports_half, d.supports_bfloat16):
            with torch.autocast(images.device.type, enabled=False):
                return d(images.float()).float()
        return d(images).float()

    def describe(self) -> str:
        """Architecture, scale and size."""
        return f"{self.name}: {self.architecture} x{self.scale}, {self.params:,} parameters (spandrel)"


class InterpolationUpscaler(Upscaler):
    """Classical ``xK`` interpolation: ``bicubic``/``bilinear`` (torch), ``lanczos`` (PIL's Lanczos-3).

    Lanczos runs as PIL runs it: the horizontal pass rounded to uint8 levels, then the vertical pass.
    """

    def __init__(self, mode: str, factor: int, *, name: str, spec: str) -> None:
        self.mode, self.scale, self.name, self.spec = mode, int(factor), name, spec
        self.key = _content_key({"kind": "interpolate", "mode": mode, "factor": self.scale})

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``K`` times larger."""
        images = images.float()
        if self.mode == "lanczos":
            h, w = images.shape[-2:]
            rows = lanczos_matrix(h, h * self.scale).to(images.device)
            cols = lanczos_matrix(w, w * self.scale).to(images.device)
            wide = (images @ cols.t()).clamp(0, 1).mul(255).round().div(255)  # PIL: horizontal pass to uint8 first
            return rows @ wide
        return F.interpolate(images, scale_factor=self.scale, mode=self.mode, align_corners=False)

    def describe(self) -> str:
        """Mode and factor."""
        return f"{self.name}: classical {self.mode} x{self.scale} (no parameters)"


def lanczos_matrix(size_in: int, size_out: int, support: float = 3.0) -> torch.Tensor:
    """``[size_out, size_in]`` weights of PIL's Lanczos-3 resampling along one axis (for enlarging).

    Output pixel ``i`` is centred at ``(i + 0.5) / k`` input pixels; its weights are ``lanczos(j + 0.5 - centre)``
    over the input pixels within ``support``, normalised to sum 1 (as ``ImagingResample`` computes them).
    """
    scale = size_in / size_out
    filterscale = max(scale, 1.0)
    radius = support * filterscale
    matrix = torch.zeros(size_out, size_in, dtype=torch.float64)
    for i in range(size_out):
        center = (i + 0.5) * scale
        lo, hi = max(0, int(center - radius + 0.5)), min(size_in, int(center + radius + 0.5))
        x = (torch.arange(lo, hi, dtype=torch.float64) - center + 0.5) / filterscale
        weights = torch.where(x.abs() < support, torch.sinc(x) * torch.sinc(x / support), torch.zeros_like(x))
        matrix[i, lo:hi] = weights / weights.sum()
    return matrix.float()


class DiffusersUpscaler(Upscaler):
    """A diffusers upscaler pipeline (``StableDiffusionUpscalePipeline`` and alike), called once per batch.

    The images go in as a ``[0, 1]`` tensor and come back with ``output_type="pt"``; a pipeline that takes a
    ``prompt`` gets ``""`` for every image unless ``call_kwargs`` sets one. Each call draws its noise from a
    generator seeded with ``seed`` (so a run is repeatable). The scale is measured on the first call.

    Args:
        target: a Hub id or a ``save_pretrained`` folder.
        call_kwargs: keyword arguments of every pipeline call (``--sr_kwargs``), e.g.
            ``{"num_inference_steps": 20, "noise_level": 20}``.
        name: the ``sr`` column.
        spec: the spec.
        seed: seed of each call's generator.

    Raises:
        SRSpecError: the folder is not a saved pipeline, or the pipeline cannot be loaded.

    """

    def __init__(self, target: str, call_kwargs: dict[str, Any], *, name: str, spec: str, seed: int = 0) -> None:
        from lr0fm.diffusers_pipelines import PipelineLoadError, open_pipeline
        from lr0fm.models.weights_files import file_sha256

        local = Path(target).expanduser()
        try:
            self.pipeline = open_pipeline(
                target,
                option=f"--sr {spec!r}",
                components="unet/, vae/, text_encoder/, tokenizer/, scheduler/, low_res_scheduler/ for "
                "StableDiffusionUpscalePipeline",
                example="stabilityai/stable-diffusion-x4-upscaler",
            )
        except PipelineLoadError as exc:
            raise SRSpecError(str(exc)) from None
        accepted = inspect.signature(self.pipeline.__call__).parameters
        unknown = sorted(set(call_kwargs) - set(accepted))
        if unknown:
            raise SRSpecError(
                f"--sr_kwargs: {type(self.pipeline).__name__} takes no {', '.join(unknown)}; it takes "
                f"{', '.join(p for p in accepted if p not in ('self', 'image', 'output_type', 'return_dict'))}"
            )
        if "image" not in accepted:
            raise SRSpecError(f"--sr {spec!r}: {type(self.pipeline).__name__} takes no image; expected an upscaler")
        self.takes_prompt = "prompt" in accepted
        self.call_kwargs, self.seed = dict(call_kwargs), seed
        self.name, self.spec = name, spec
        modules = [m for m in self.pipeline.components.values() if isinstance(m, torch.nn.Module)]
        self.params = sum(p.numel() for m in modules for p in m.parameters())
        content = file_sha256(local) if local.is_dir() else target
        self.key = _content_key({"kind": "diffusers", "content": content, "kwargs": self.call_kwargs, "seed": seed})

    def to(self, device: torch.device) -> Upscaler:
        """Move the pipeline to ``device``."""
        if torch.device(device) != self.device:
            self.pipeline.to(device)
        return super().to(device)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """One pipeline call for the whole batch."""
        kwargs = dict(self.call_kwargs)
        if self.takes_prompt:
            prompt = kwargs.pop("prompt", "")
            kwargs["prompt"] = [prompt] * len(images) if isinstance(prompt, str) else prompt
        generator = torch.Generator(images.device.type).manual_seed(self.seed)
        out = self.pipeline(image=images.float(), output_type="pt", generator=generator, **kwargs).images
        out = torch.as_tensor(out, device=images.device).float()
        if self.scale is None:
            self.scale = max(1, round(out.shape[-1] / images.shape[-1]))
        return out

    def describe(self) -> str:
        """Pipeline class, size and call settings."""
        scale = f"x{self.scale}" if self.scale else "scale measured on the first batch"
        return (
            f"{self.name}: {type(self.pipeline).__name__} ({scale}), {self.params:,} parameters, call settings "
            f"{self.call_kwargs or 'the pipeline defaults'}"
        )


def load_upscaler(spec: str, call_kwargs: dict[str, Any] | None = None) -> Upscaler:
    """The upscaler a ``--sr`` spec names, loaded on the CPU.

    Args:
        spec: see the module docstring.
        call_kwargs: pipeline call arguments (``diffusers:`` specs only).

    Raises:
        SRSpecError: a spec no loader can run, or ``call_kwargs`` with a spec that takes none.
        FileNotFoundError: a weights file that is nowhere (the message says where it is published when known).

    """
    parsed = parse_sr_spec(spec)
    if call_kwargs and parsed.kind != "diffusers":
        raise SRSpecError(f"--sr_kwargs applies to diffusers:ID_OR_DIR pipelines only; --sr {spec!r} takes none")
    if parsed.kind == "interpolate":
        return InterpolationUpscaler(parsed.target, parsed.factor, name=parsed.name, spec=parsed.spec)
    if parsed.kind == "diffusers":
        return DiffusersUpscaler(parsed.target, call_kwargs or {}, name=parsed.name, spec=parsed.spec)
    return SpandrelUpscaler(resolve_sr_file(parsed), name=parsed.name, spec=parsed.spec)
