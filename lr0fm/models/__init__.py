"""Backbone registry: load any supported image-text model behind the :class:`Backbone` interface."""

from lr0fm.models.base import Backbone, PreprocessConfig
from lr0fm.models.errors import WeightsUnavailableError
from lr0fm.models.registry import BUILTINS, list_models, load_backbone
from lr0fm.models.specs import SPEC_FORMS

__all__ = [
    "BUILTINS",
    "SPEC_FORMS",
    "Backbone",
    "PreprocessConfig",
    "WeightsUnavailableError",
    "list_models",
    "load_backbone",
]
