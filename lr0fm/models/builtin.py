"""Backbones known by a plain name (``toyclip``, or any a plug-in adds), next to open_clip's ``ARCH:TAG`` specs.

Import-light on purpose (no torch, no open_clip): plug-ins register their loaders here when lr0fm reads
its registries, so a registration must cost nothing until the backbone is loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lr0fm.registry import Registry

#: ``loader(device="cpu") -> Backbone`` by name.
BACKBONES: Registry[Callable[..., Any]] = Registry("backbone")


def register_backbone(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering ``loader(device=...) -> Backbone`` under ``name`` (``lr0fm benchmark --model NAME``)."""
    return BACKBONES.register(name)
