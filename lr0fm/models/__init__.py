"""Backbone registry: load any supported image-text model behind the :class:`Backbone` interface.

The registry (which imports open_clip and, through it, transformers) is imported on first use of
:func:`load_backbone`, :func:`list_models` or ``SPEC_FORMS``, so modules that only need
``lr0fm.models.base`` stay cheap to import.
"""

from __future__ import annotations

from lr0fm.lazy import lazy_exports
from lr0fm.models.base import Backbone
from lr0fm.models.errors import WeightsUnavailableError

_EXPORTS = {
    "check_spec": "registry",
    "list_models": "registry",
    "load_backbone": "registry",
    "SPEC_FORMS": "specs",
}

__getattr__ = lazy_exports(__name__, _EXPORTS)


__all__ = [
    "SPEC_FORMS",
    "Backbone",
    "WeightsUnavailableError",
    "check_spec",
    "list_models",
    "load_backbone",
]
