"""Model properties for the report: family, parameters, pre-training data size, input resolution, GFLOPs.

They come from the backbone table (``lr0fm/resources/backbones/lr0fm66.yaml`` or ``--backbones TABLE``,
read with :func:`lr0fm.models.paper_backbones.read_paper_backbones`) and from the measured GFLOPs cache
(``lr0fm/resources/backbones/lr0fm66_gflops.csv``, written by :mod:`lr0fm.analysis.gflops`). A results row's
model is matched to a table entry by name, then by spec; a model evaluated with LR-TK0 tokens
(``SPEC+lrtk0:NAME@HASH``, the benchmark's label) has the properties of its base model.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lr0fm.benchmark.sweep import TOKENS_MARK

#: Measured GFLOPs of the packaged backbone table (see :mod:`lr0fm.analysis.gflops`).
DEFAULT_GFLOPS = Path(__file__).resolve().parents[1] / "resources" / "backbones" / "lr0fm66_gflops.csv"


_SUFFIX = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}


@dataclass(frozen=True)
class ModelProperties:
    """What the backbone table (and the GFLOPs cache) says about one model of a results table.

    Attributes:
        model: the results table's model name.
        family: model family (CLIP, OpenCLIP, ...); without a table entry, the name's first ``-`` part.
        entry: name of the matched backbone-table entry (``None``: no entry).
        params_m: total parameters in millions.
        pretrain_data: name of the pre-training set.
        pretrain_pairs: number of pre-training image-text pairs.
        input_resolution: the input size the model ran at (px).
        architecture: ``"ResNet"`` or ``"transformer"`` (the paper's star and dot markers).
        image_gflops: GFLOPs of one image through the image tower at its input size (measured).
        variant: the architecture without its input size (``ViT-L-14-336`` -> ``ViT-L-14``): models of one
            family, data and variant differ only in input resolution.
    """

    model: str
    family: str
    entry: str | None = None
    params_m: float | None = None
    pretrain_data: str | None = None
    pretrain_pairs: float | None = None
    input_resolution: int | None = None
    architecture: str = "transformer"
    image_gflops: float | None = None
    variant: str | None = None


def base_model(model: str) -> str:
    """The model without its LR-TK0 token label (``SPEC+lrtk0:tokens@ab12cd34`` -> ``SPEC``)."""
    return model.split(TOKENS_MARK, 1)[0]


def parse_count(value: Any) -> float | None:
    """A size like ``400M``, ``2.5B`` or ``14M`` as a number (plain numbers pass; empty -> ``None``)."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    match = re.fullmatch(r"\s*([0-9.]+)\s*([KMBT]?)\s*", str(value).upper())
    if not match:
        return None
    return float(match.group(1)) * _SUFFIX.get(match.group(2), 1.0)


def format_count(value: float | None) -> str:
    """``4e8`` -> ``400M``; ``2.5e9`` -> ``2.5B``."""
    if value is None or not math.isfinite(value):
        return ""
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def read_gflops(path: str | Path | None = None) -> dict[str, float]:
    """``{backbone name or spec: image GFLOPs}`` of a GFLOPs cache (rows without a measurement are left out)."""
    path = Path(path) if path is not None else DEFAULT_GFLOPS
    if not path.is_file():
        return {}
    out: dict[str, float] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row.get("image_gflops"):
                out[row["name"]] = float(row["image_gflops"])
                if row.get("spec"):
                    out.setdefault(row["spec"], float(row["image_gflops"]))
    return out


def _architecture(entry: Mapping[str, Any], name: str) -> str:
    arch = str(entry.get("spec") or "").split(":", 1)[0]
    return "ResNet" if arch.startswith("RN") or re.search(r"(^|-)RN\d", name) else "transformer"


def variant_of(entry: Mapping[str, Any], name: str) -> str:
    """The architecture of an entry without its input size or activation suffix (from the spec, else the name)."""
    spec = str(entry.get("spec") or "")
    if spec and not spec.startswith(("hf:", "albef:")):  # an open_clip ARCH:TAG names the architecture
        arch = spec.split(":", 1)[0]
        return re.sub(r"-(\d{3}|quickgelu)(?=-|$)", "", re.sub(r"-(\d{3}|quickgelu)(?=-|$)", "", arch))
    return re.sub(r"@\d+px", "", name).strip()


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def float_or_none(value: Any) -> float | None:
    """``value`` as a finite float, else ``None`` (an empty cell, text, NaN, inf)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def model_properties(
    models: Iterable[str], backbones: Mapping[str, Mapping[str, Any]], gflops: Mapping[str, float] | None = None
) -> dict[str, ModelProperties]:
    """The properties of each model of a results table.

    Args:
        models: the results table's model names.
        backbones: ``{name: entry}`` of a backbone table (``read_paper_backbones``).
        gflops: ``{name or spec: image GFLOPs}`` (``read_gflops``); an entry's own ``gflops`` field wins.

    Returns:
        ``{model: properties}`` for every model (those without a table entry carry only a family).
    """
    by_spec = {str(e["spec"]): name for name, e in backbones.items() if e.get("spec")}
    gflops = dict(gflops or {})
    out: dict[str, ModelProperties] = {}
    for model in models:
        base = base_model(model)
        name = base if base in backbones else by_spec.get(base)
        if name is None:
            family = re.split(r"[-:/@ ]", base, maxsplit=1)[0] or base
            out[model] = ModelProperties(model=model, family=family)
            continue
        entry = backbones[name]
        measured = float_or_none(entry.get("gflops"))
        if measured is None:
            measured = gflops.get(name, gflops.get(str(entry.get("spec") or "")))
        out[model] = ModelProperties(
            model=model,
            family=str(entry.get("family") or name.split("-", 1)[0]),
            entry=name,
            params_m=float_or_none(entry.get("params")),
            pretrain_data=str(entry["pretrain_data"]) if entry.get("pretrain_data") else None,
            pretrain_pairs=parse_count(entry.get("pretrain_size")),
            input_resolution=_int_or_none(entry.get("resolution")),
            architecture=_architecture(entry, name),
            image_gflops=measured,
            variant=variant_of(entry, name),
        )
    return out
