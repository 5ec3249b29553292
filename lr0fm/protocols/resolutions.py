"""Resolutions of the LR0.FM benchmark: low sides in pixels, and ``"hr"`` for the model's native input."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: The native (high) resolution of a backbone.
HR = "hr"
#: A low resolution in pixels, or :data:`HR`.
Resolution = int | str
#: The LR protocol ``lr0fm benchmark`` and LR-TK0's zero-shot callback use when none is named.
DEFAULT_PROTOCOL = "paper"
#: The largest low resolution accepted: a view is upsampled back to the model's input, so a larger "low"
#: side only costs memory (a 100000 px side needs ~30 GB per image) and is never a low-resolution view.
MAX_RESOLUTION = 2048


def parse_resolutions(values: Sequence[Any]) -> list[Resolution]:
    """Normalise ``["16", 32, "HR"]`` to ``[16, 32, "hr"]`` (order kept, duplicates removed).

    Raises:
        ValueError: a value is neither a positive integer (at most :data:`MAX_RESOLUTION`) nor ``hr``/``native``.

    """
    out: list[Resolution] = []
    for v in values:
        text = str(v).strip().lower()
        if text in (HR, "native"):
            res: Resolution = HR
        else:
            try:
                res = int(text)
            except ValueError:
                raise ValueError(f"resolution {v!r} is neither a positive integer pixel size nor 'hr'") from None
            if res <= 0:
                raise ValueError(f"resolution {v!r} must be a positive integer pixel size or 'hr'")
            if res > MAX_RESOLUTION:
                raise ValueError(
                    f"resolution {v!r} is above {MAX_RESOLUTION} px: a low resolution is a side smaller than the "
                    "model's input (the paper's are 16-128 px); use 'hr' for the native view"
                )
        if res not in out:
            out.append(res)
    return out
