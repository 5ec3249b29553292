"""Backbone registry: load any supported image-text model behind the :class:`Backbone` interface.

The registry (which imports open_clip and, through it, transformers) is imported on first use of
:func:`load_backbone`, :func:`list_models` or ``SPEC_FORMS``, so modules that only need
``lr0fm.models.base`` stay cheap to import.
"""

from __future__ import annotations

import importlib
from typing import Any

from lr0fm.models.base import Backbone
from lr0fm.models.errors import WeightsUnavailableError

_LAZY_ATTRIBUTES = {
    "check_spec": "lr0fm.models.registry",
    "list_models": "lr0fm.models.registry",
    "load_backbone": "lr0fm.models.registry",
    "SPEC_FORMS": "lr0fm.models.specs",
}


def __getattr__(name: str) -> Any:
    """Import the registry on first access of one of its public names (PEP 562)."""
    if name in _LAZY_ATTRIBUTES:
        return getattr(importlib.import_module(_LAZY_ATTRIBUTES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SPEC_FORMS",
    "Backbone",
    "WeightsUnavailableError",
    "check_spec",
    "list_models",
    "load_backbone",
]
