"""Shared look of the report's figures: the Agg backend, family colours, resolution and dataset labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lr0fm.catalog import DISPLAY_NAMES

#: Okabe-Ito and tab10 colours, distinguishable in print (yellow and grey last: faint on white, and grey is the
#: colour of context); families beyond them cycle through ``tab20``.
_PALETTE = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#bcbd22", "#000000",
    "#8c564b", "#9467bd", "#17becf", "#e377c2", "#F0E442", "#7f7f7f",
)  # fmt: skip


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (no display needed, same output everywhere)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "lr0fm", "svg.fonttype": "none"})  # stable SVG ids, text kept as text
    return plt


def family_colors(families: Sequence[str]) -> dict[str, str]:
    """A fixed colour per family, in the order given (the same families always get the same colours)."""
    colors: dict[str, str] = {}
    for family in families:
        if family not in colors:
            i = len(colors)
            if i < len(_PALETTE):
                colors[family] = _PALETTE[i]
            else:
                import matplotlib

                colors[family] = matplotlib.colors.to_hex(matplotlib.colormaps["tab20"](i % 20))
    return colors


def resolution_label(resolution: int | str) -> str:
    """``16`` -> ``16px``; ``hr`` -> ``HR``."""
    return "HR" if str(resolution).lower() == "hr" else f"{resolution}px"


def dataset_label(dataset: str) -> str:
    """The paper's short name of a dataset (``fgvc-aircraft`` -> ``Aircraft``), else the name itself."""
    return DISPLAY_NAMES.get(dataset, dataset)


def grid(count: int, columns: int = 4) -> tuple[int, int]:
    """Rows and columns of a panel grid for ``count`` panels."""
    cols = max(1, min(columns, count))
    return (count + cols - 1) // cols, cols


def spread(values: list[float], gap: float, top: float | None = None) -> list[float]:
    """Label positions: ``values`` moved apart (order kept) so neighbours are >= ``gap`` apart, all <= ``top``."""
    order = np.argsort(values, kind="stable")
    out = np.array(values, dtype=float)
    for a, b in zip(order[:-1], order[1:]):
        out[b] = max(out[b], out[a] + gap)
    if top is not None and len(out) and out.max() > top:
        out -= out.max() - top  # the block slides down below the top of the axes
    return out.tolist()
