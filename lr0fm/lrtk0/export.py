"""Tokens-only export of an LR-TK0 method's parts: one safetensors file whose header carries a JSON config.

The config names the method (``lr_tokens``, ``vpt`` or ``robust_sam``), the backbone spec, the tower layout
(kind, class, patch grid, width, blocks, prefix tokens), the method's options (e.g. ``start_block``,
``num_prompts``) and every tensor's shape. Loading rebuilds that method's module, checks all of it against
the target tower and refuses any mismatch -- tokens are never broadcast or resized. Read the config without
torch objects via :func:`read_lr_tokens_config`.

Format versions: 1 (LR tokens only, no ``method`` key; the shipped toy tokens) and 2 (``method`` names the
module). Files are written as version 2, which lr0fm releases before it refuse with a clear message rather
than load prompts or RobustSAM parts as LR tokens.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from lr0fm.atomic import atomic_path
from lr0fm.lrtk0.attachment import AttachedTokens
from lr0fm.lrtk0.robust_sam import RobustSAM
from lr0fm.lrtk0.tokens import LRTokens
from lr0fm.lrtk0.towers import TowerError, tower_layout
from lr0fm.lrtk0.vpt import VisualPromptTokens
from lr0fm.models.base import Backbone

#: safetensors metadata key holding the JSON config
CONFIG_KEY = "lr0fm_lr_tokens"
#: format tag and the version written into the config
FORMAT = "lr0fm-lr-tokens"
VERSION = 2
#: versions read: 1 holds LR tokens without a ``method`` key
VERSIONS = (1, 2)
#: the module class of each exportable method, by the name the config gives
EXPORTABLE: dict[str, type[AttachedTokens]] = {cls.method: cls for cls in (LRTokens, VisualPromptTokens, RobustSAM)}


def save_lr_tokens(path: str | Path, tokens: AttachedTokens, backbone_spec: str) -> Path:
    """Write a method's exported tensors and their config to a ``.safetensors`` file.

    Args:
        path: output file (parent folders are created).
        tokens: the trained LR tokens, VPT prompts or RobustSAM parts (only its inference tensors are written).
        backbone_spec: the model spec the tokens were trained on (e.g. ``"EVA02-B-16:merged2b_s8b_b131k"``).

    Returns:
        The written path.

    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {
        "format": FORMAT,
        "version": VERSION,
        "method": tokens.method,
        "backbone_spec": backbone_spec,
        **tokens.config(),
    }
    tensors = {name: param.detach().cpu().contiguous() for name, param in tokens.export_tensors().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={CONFIG_KEY: json.dumps(config)})
    return path


def read_lr_tokens_config(path: str | Path) -> dict[str, Any]:
    """Read the JSON config of a tokens export (a version-1 file gets ``method: lr_tokens``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a tokens export written by :func:`save_lr_tokens`, or names a method
            that cannot be loaded.

    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LR tokens file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as error:  # safetensors raises its own error types for malformed headers
        raise ValueError(f"{path} is not a safetensors file ({error})") from error
    if CONFIG_KEY not in metadata:
        raise ValueError(
            f"{path} has no {CONFIG_KEY!r} config in its safetensors header; "
            "expected a file written by `save_lr_tokens` (LR tokens export)"
        )
    config = json.loads(metadata[CONFIG_KEY])
    if config.get("format") != FORMAT or config.get("version") not in VERSIONS:
        raise ValueError(
            f"{path} holds format {config.get('format')!r} version {config.get('version')!r}; "
            f"expected {FORMAT!r} version {' or '.join(map(str, VERSIONS))}"
        )
    if config["version"] == 1:
        config["method"] = "lr_tokens"
    if config.get("method") not in EXPORTABLE:
        raise ValueError(
            f"{path} holds tokens of method {config.get('method')!r}, which cannot be loaded; "
            f"exports hold one of {', '.join(EXPORTABLE)}"
        )
    return config


def load_lr_tokens(
    path: str | Path,
    visual: nn.Module | Backbone,
    backbone_spec: str | None = None,
    *,
    attach: bool = True,
    method: str | None = None,
) -> AttachedTokens:
    """Load an export (LR tokens, VPT prompts or RobustSAM parts, as its config says) onto a vision tower.

    Args:
        path: a file written by :func:`save_lr_tokens`.
        visual: the target vision tower (or :class:`~lr0fm.models.base.Backbone`).
        backbone_spec: the spec of the loaded model; when given it must equal the exported one.
            Defaults to ``visual.spec`` for a ``Backbone``.
        attach: attach the loaded tokens to ``visual``; on a ``Backbone`` they also become its child module
            ``lr_tokens``, so they follow the backbone's ``.to(device/dtype)``.
        method: the method the caller expects (``lr_tokens``, ``vpt``, ``robust_sam``); ``None`` accepts any.

    Returns:
        The method's module (:class:`LRTokens`, :class:`VisualPromptTokens` or :class:`RobustSAM`), attached to
        ``visual`` unless ``attach`` is false.

    Raises:
        TowerError: the tokens were made for another backbone spec or tower layout, or their tensors
            do not have the shapes the config and the tower require.
        ValueError: the file is not a tokens export, holds another method than ``method``, or its tensors
            hold NaN/inf values.

    """
    config = read_lr_tokens_config(path)
    if method is not None and method != config["method"]:
        raise ValueError(
            f"{path} holds {config['method']!r} parts (trained with model.method: {config['method']}), not "
            f"{method!r} ones; pass an export of a {method} run"
        )
    if backbone_spec is None and isinstance(visual, Backbone):
        backbone_spec = visual.spec
    if backbone_spec is not None and backbone_spec != config["backbone_spec"]:
        raise TowerError(
            f"LR tokens in {path} were trained for backbone {config['backbone_spec']!r}, "
            f"not for {backbone_spec!r}; pass the matching --model or a tokens file made for it"
        )
    layout = tower_layout(visual).signature()
    exported = {key: config.get(key) for key in layout}
    if exported != layout:
        differing = ", ".join(
            f"{key}: file {exported[key]!r} vs model {layout[key]!r}" for key in layout if exported[key] != layout[key]
        )
        raise TowerError(
            f"LR tokens in {path} (backbone {config['backbone_spec']!r}) do not fit this vision tower: {differing}"
        )
    tokens = EXPORTABLE[config["method"]].from_config(visual, config)
    tensors = load_file(str(path))
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ValueError(
                f"LR tokens in {path}: {name} holds {int((~torch.isfinite(tensor)).sum())} NaN/inf values (the "
                "training diverged or the file is damaged); export the tokens of an earlier checkpoint "
                "(`lr0fm export-tokens lightning_logs/version_N/checkpoints/epochNNN.ckpt`) or retrain"
            )
    expected = {name: list(param.shape) for name, param in tokens.export_tensors().items()}
    found = {name: list(tensor.shape) for name, tensor in tensors.items()}
    if found != expected or found != config["shapes"]:
        options = ", ".join(f"{k}={config[k]}" for k in ("start_block", "num_prompts") if k in config)
        raise TowerError(
            f"{config['method']} parts in {path} have tensors {found} (config says {config['shapes']}); "
            f"this tower{' with ' + options if options else ''} needs {expected}"
        )
    tokens.load_state_dict(tensors)
    if attach:
        tokens.attach()
        if isinstance(visual, Backbone):
            # a child of the backbone: ``backbone.to(device)`` (e.g. by a Trainer) moves the tokens along
            visual.add_module("lr_tokens", tokens)
    return tokens
