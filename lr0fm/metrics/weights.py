"""WAR dataset weights: the published LR0.FM WAR-16 weights and YAML (de)serialisation."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from lr0fm.atomic import write_text_atomic

#: The published LR0.FM WAR-16 weights (used for every resolution, as in the paper).
DEFAULT_WAR_WEIGHTS: dict[str, float] = {
    "imagenet": 0.15556157429688613,
    "imagenet-a": 0.970498446080589,
    "imagenet-v2": 0.2854574367981364,
    "imagenet-r": 0.01,
    "imagenet-sketch": 0.021456095637452655,
    "caltech101": 0.01,
    "dtd": 0.505922498560715,
    "food101": 0.01,
    "sun397": 0.407563119725743,
    "stanford-cars": 0.13583821249199218,
    "fgvc-aircraft": 0.8229545014750042,
    "oxford-pets": 0.08995285864599148,
    "flowers102": 0.08972060770047119,
    "eurosat": 1.0,
    "ucf101": 0.01,
}

#: Weight given to a dataset of the results table that the weights do not name.
MISSING_WEIGHT: float = 1.0


class WeightsError(ValueError):
    """A weights file is unreadable or invalid."""


def load_weights(path: str | Path) -> dict[str, float]:
    """Read WAR weights from YAML.

    Accepts a flat mapping ``dataset: weight`` or the file :func:`save_weights` writes (weights under a
    ``weights:`` key, with metadata beside it). Every weight must be a finite number >= 0: WAR divides by the
    sum of the weights' absolute values, so a negative weight would silently count as its absolute value.

    Raises:
        WeightsError: the file is missing, a folder, not UTF-8 YAML, not a mapping, or a weight is not a finite
            number >= 0 (the message names the file and the dataset).

    """
    path = Path(path)
    if path.is_dir():
        raise WeightsError(f"weights file {str(path)!r} is a folder; expected a YAML file mapping datasets to weights")
    if not path.is_file():
        raise WeightsError(f"weights file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise WeightsError(f"weights file {str(path)!r} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise WeightsError(f"weights file {str(path)!r} is not valid YAML: {_yaml_problem(exc)}") from None
    if isinstance(data, dict) and isinstance(data.get("weights"), dict):
        data = data["weights"]
    if not isinstance(data, dict) or not data:
        raise WeightsError(
            f"weights file {str(path)!r} must map dataset names to numbers, e.g.\n"
            "weights:\n  imagenet: 0.16\n  eurosat: 1.0"
        )
    weights: dict[str, float] = {}
    for name, value in data.items():
        try:
            number = None if isinstance(value, bool) else float(value)  # YAML `true` is not a weight
        except (TypeError, ValueError):
            number = None
        if number is None:
            raise WeightsError(f"weights file {str(path)!r}: weight of {name!r} is not a number: {value!r}")
        if not math.isfinite(number):
            raise WeightsError(f"weights file {str(path)!r}: weight of {name!r} is not finite: {value!r}")
        if number < 0:
            raise WeightsError(
                f"weights file {str(path)!r}: weight of {name!r} is negative ({value!r}); WAR weights must be >= 0 "
                "(0 leaves the dataset out)"
            )
        weights[str(name)] = number
    return weights


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error on one line: the problem and where it is."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else problem


def save_weights(path: str | Path, weights: Mapping[str, float], **metadata: Any) -> Path:
    """Write weights as YAML that :func:`load_weights` (and ``lr0fm metrics report --weights``) accepts."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {k: v for k, v in metadata.items() if v is not None}
    doc["weights"] = {name: float(value) for name, value in weights.items()}
    header = "# WAR dataset weights for `lr0fm metrics report --weights` (written by lr0fm)\n"
    write_text_atomic(path, header + yaml.safe_dump(doc, sort_keys=False))
    return path
