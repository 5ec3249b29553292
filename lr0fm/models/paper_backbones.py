"""The LR0.FM paper's 66 backbones, read from the packaged ``lr0fm/resources/backbones/lr0fm66.yaml``.

Each entry has a ``name`` (as in the paper's result tables), a ``family``, a ``protocol`` (the name of the
authors' LR chain for it, see :mod:`lr0fm.protocols.paper_chains`) and either a ``spec`` that
:func:`lr0fm.models.load_backbone` understands or ``needs_adapter: true`` with a ``note``. The file may be
a list of entries or a mapping with a ``backbones`` list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

#: The paper's backbone table, shipped with the package.
DEFAULT_PAPER_CONFIG = Path(__file__).resolve().parents[1] / "resources" / "backbones" / "lr0fm66.yaml"


def read_paper_backbones(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Return ``{name: entry}`` for the paper's backbones, or ``{}`` when the default file is absent.

    Args:
        path: YAML file to read; ``None`` reads :data:`DEFAULT_PAPER_CONFIG` if it exists.

    Raises:
        FileNotFoundError: an explicitly given ``path`` does not exist.
        ValueError: the file does not hold a list of mappings with a ``name`` each.

    """
    if path is None:
        if not DEFAULT_PAPER_CONFIG.is_file():
            return {}
        path = DEFAULT_PAPER_CONFIG
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Backbone table {str(path)!r} does not exist.")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    entries = data.get("backbones") if isinstance(data, dict) else data
    expected = "a list of mappings (or a mapping with a 'backbones' list), each with 'name' and 'spec'"
    if not isinstance(entries, list):
        raise ValueError(f"Backbone table {str(path)!r} is not {expected}.")
    table: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not entry.get("name"):
            raise ValueError(f"Entry {index} of {str(path)!r} has no 'name'; expected {expected}.")
        table[str(entry["name"])] = entry
    return table
