"""Parsing of open_clip backbone spec strings (the default family of :func:`lr0fm.models.load_backbone`).

Accepted forms (see :data:`SPEC_FORMS`): ``ARCH:TAG`` for open_clip pretrained pairs, ``ARCH:none``
(random weights), ``ARCH:/path/to/checkpoint``, ``local-dir:/path`` and ``hf-hub:org/repo`` (passed to
open_clip unchanged) and ``/path/arch.json[:TAG]`` (an open_clip model config registered under its file
stem). Other families bring their own spec scheme (``hf:`` and ``blip:`` for BLIP, ``albef:`` for ALBEF,
``eva-clip:`` for EVA-CLIP-8B/-18B, ``m2-encoder:`` for M²-Encoder, :mod:`lr0fm.models.families`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import open_clip

from lr0fm.catalog import did_you_mean

#: Human-readable list of the accepted spec forms, appended to every spec error.
SPEC_FORMS = (
    "Accepted specs: 'ARCH:TAG' (an open_clip pretrained pair, see lr0fm.models.list_models()), "
    "'ARCH:none' (random weights, seeded), 'ARCH:/path/to/weights.pt|.bin|.safetensors', "
    "'local-dir:/path/with/open_clip_config.json', 'hf-hub:org/repo', '/path/arch.json' or "
    "'/path/arch.json:TAG' (an open_clip model config), 'hf:Salesforce/blip-itm-base-coco' "
    "(BLIP ITM repo or local dir), 'blip:/path/model_base.pth[?tokenizer=DIR]' (an original BLIP "
    "checkpoint), 'albef:/path/ALBEF_4M.pth[?tokenizer=/path/bert-base-uncased]' (an original ALBEF "
    "checkpoint; bare file names are looked up in $LR0FM_WEIGHTS), "
    "'eva-clip:EVA-CLIP-8B[:/path/EVA_CLIP_8B_psz14_s9B.pt|none]' (also EVA-CLIP-18B or a config .json; no "
    "weights part = the published file from the hub), "
    "'m2-encoder:M2-Encoder-0.4B[:/path/m2_encoder_0.4B.ckpt|none][?tokenizer=/path/sp.model]' (also M2-Encoder-1B/"
    "-10B or an Ant config .json; bare file names are looked up in $LR0FM_WEIGHTS), or a builtin/paper backbone name."
)

#: Tag that asks for randomly initialised weights.
RANDOM_TAG = "none"

#: Suffixes that mark a tag as a local checkpoint file rather than a pretrained tag.
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".npz")

_REQUIRED_CONFIG_KEYS = ("embed_dim", "vision_cfg", "text_cfg")
_registered_configs: set[Path] = set()


@dataclass(frozen=True)
class OpenClipSpec:
    """An open_clip model to build.

    Attributes:
        model_name: open_clip model name (an architecture, or ``local-dir:``/``hf-hub:`` schema string).
        pretrained: ``None`` for schema strings and random weights, else a pretrained tag or file path.
        tag: what the spec asked for (``"none"``, the tag, the checkpoint path, or the schema source).

    """

    model_name: str
    pretrained: str | None
    tag: str

    @property
    def has_schema(self) -> bool:
        """Whether the model comes from a ``local-dir:``/``hf-hub:`` source that carries its own weights."""
        return self.model_name.startswith(("local-dir:", "hf-hub:"))


def register_model_config(path: str | Path) -> str:
    """Register an open_clip model-config JSON with open_clip and return its architecture name (file stem).

    Args:
        path: JSON file with ``embed_dim``, ``vision_cfg`` and ``text_cfg`` (layout of open_clip's
            ``model_configs/*.json``).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not JSON or lacks the required keys.

    """
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"open_clip model config {str(path)!r} does not exist. {SPEC_FORMS}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"open_clip model config {str(path)!r} is not valid JSON: {err}") from err
    if isinstance(config, dict) and "model_cfg" in config:
        raise ValueError(
            f"{str(path)!r} looks like an open_clip_config.json (it has 'model_cfg'); load its directory "
            f"with 'local-dir:{path.parent}' instead, so its preprocess_cfg is honoured."
        )
    missing = [key for key in _REQUIRED_CONFIG_KEYS if not isinstance(config, dict) or key not in config]
    if missing:
        raise ValueError(
            f"open_clip model config {str(path)!r} lacks {missing}; expected a JSON object with "
            f"{list(_REQUIRED_CONFIG_KEYS)} like the files in open_clip/model_configs/."
        )
    if path not in _registered_configs:
        open_clip.add_model_config(path)
        _registered_configs.add(path)
    return path.stem


def _split_json_spec(spec: str) -> tuple[str, str] | None:
    """Split ``/path/arch.json`` or ``/path/arch.json:TAG`` into (path, tag); None when not a JSON spec."""
    if spec.lower().endswith(".json"):
        return spec, RANDOM_TAG
    head, sep, tag = spec.rpartition(".json:")
    if sep and head:
        return head + ".json", tag
    return None


def _looks_like_path(tag: str) -> bool:
    return os.sep in tag or "/" in tag or tag.lower().endswith(CHECKPOINT_SUFFIXES) or os.path.exists(tag)


def resolve_open_clip_pair(arch: str, tag: str) -> OpenClipSpec:
    """Validate an ``ARCH:TAG`` pair against open_clip's registries.

    Raises:
        ValueError: unknown architecture or tag (with close matches).
        FileNotFoundError: the tag names a checkpoint path that does not exist.

    """
    architectures = open_clip.list_models()
    if arch not in architectures:
        raise ValueError(f"Unknown open_clip architecture {arch!r}.{did_you_mean(arch, architectures)} {SPEC_FORMS}")
    spec = f"{arch}:{tag}"
    if tag.lower() == RANDOM_TAG:
        return OpenClipSpec(arch, None, RANDOM_TAG)
    if open_clip.is_pretrained_cfg(arch, tag):
        return OpenClipSpec(arch, tag, tag)
    if _looks_like_path(tag):
        if not os.path.isfile(tag):
            raise FileNotFoundError(
                f"Checkpoint {tag!r} in spec {spec!r} does not exist; expected a file "
                f"({', '.join(CHECKPOINT_SUFFIXES)}) holding a state dict for {arch!r}."
            )
        return OpenClipSpec(arch, tag, tag)
    tags = [*open_clip.list_pretrained_tags_by_model(arch), RANDOM_TAG]
    raise ValueError(
        f"Unknown pretrained tag {tag!r} for architecture {arch!r}.{did_you_mean(tag, tags)} "
        f"Known tags: {tags}. A local checkpoint path is also accepted as TAG."
    )


def parse_spec(spec: str, known_names: Sequence[str] = ()) -> OpenClipSpec:
    """Turn an open_clip spec string into a loader request.

    Args:
        spec: e.g. ``"ViT-B-16:laion2b_s34b_b88k"``, ``"local-dir:/path"``.
        known_names: all loadable names, used to suggest close matches for an unknown bare name.

    Raises:
        ValueError: the spec does not match any accepted form (message lists close matches and the forms).
        FileNotFoundError: a path inside the spec does not exist.

    """
    if spec.startswith(("local-dir:", "hf-hub:")):
        schema, _, source = spec.partition(":")
        if not source:
            raise ValueError(f"Empty source after '{schema}:' in spec {spec!r}. {SPEC_FORMS}")
        return OpenClipSpec(spec, None, source)
    json_spec = _split_json_spec(spec)
    if json_spec is not None:
        path, tag = json_spec
        return resolve_open_clip_pair(register_model_config(path), tag)
    arch, sep, tag = spec.partition(":")
    if not sep:
        if arch in open_clip.list_models():
            tags = [*open_clip.list_pretrained_tags_by_model(arch), RANDOM_TAG]
            raise ValueError(
                f"Spec {spec!r} names an architecture but no weights; use '{arch}:TAG' with TAG in {tags}."
            )
        hint = did_you_mean(spec, list(known_names))
        raise ValueError(f"Unknown backbone spec {spec!r}.{hint} {SPEC_FORMS}")
    if not tag:
        raise ValueError(f"Empty tag in spec {spec!r}; use 'ARCH:TAG' or 'ARCH:none'. {SPEC_FORMS}")
    return resolve_open_clip_pair(arch, tag)
