"""How a backbone spec finds its family: registered names, and registered ``SCHEME:`` prefixes.

* **Named backbones** (``toyclip``, or any a plug-in adds): ``@register_backbone(name)`` on a loader
  ``loader(device="cpu") -> Backbone``.
* **Spec schemes**: ``@register_scheme("hf")`` on a loader ``loader(rest, *, name, device, seed, cache_dir,
  precision) -> Backbone`` makes ``hf:REST`` load through it (BLIP, :mod:`lr0fm.models.blip_loader`; original
  BLIP checkpoints are ``blip:FILE``, :mod:`lr0fm.models.blip_pth_loader`).
* Every other spec is open_clip's (``ARCH:TAG``, ``local-dir:``, ``hf-hub:``, ``/path/arch.json``...,
  :mod:`lr0fm.models.openclip_loader`).

Import-light on purpose (no torch, no open_clip): plug-ins register here when lr0fm reads its registries,
so a registration costs nothing until the backbone is loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lr0fm.registry import Registry

#: ``loader(device="cpu") -> Backbone`` by name.
BACKBONES: Registry[Callable[..., Any]] = Registry("backbone")
#: ``loader(rest, *, name, device, seed, cache_dir, precision) -> Backbone`` by spec prefix.
SCHEMES: Registry[Callable[..., Any]] = Registry("backbone spec scheme")


def register_backbone(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering ``loader(device=...) -> Backbone`` under ``name`` (``lr0fm benchmark --model NAME``)."""
    return BACKBONES.register(name)


def register_scheme(prefix: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering the loader of specs ``PREFIX:REST`` (a family with its own spec form)."""
    return SCHEMES.register(prefix)
