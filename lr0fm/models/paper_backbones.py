"""Backbone tables: the LR0.FM paper's 66 (``lr0fm66.yaml``) and the extended ``lr0fm-plus`` (``lr0fm_plus.yaml``).

Each entry has a ``name`` (as in the paper's result tables), a ``family``, a ``protocol`` (the name of the
LR chain for it, see :mod:`lr0fm.protocols.paper_chains`) and either a ``spec`` that
:func:`lr0fm.models.load_backbone` understands or ``needs_adapter: true`` with a ``note``. The file may be
a list of entries or a mapping with a ``backbones`` list; a mapping may also name other tables under
``include:`` (paths relative to the including file), whose entries come first, so a table can extend
another without copying it (``lr0fm_plus.yaml`` includes ``lr0fm66.yaml``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

_TABLES = Path(__file__).resolve().parents[1] / "resources" / "backbones"
#: The paper's backbone table, shipped with the package.
DEFAULT_PAPER_CONFIG = _TABLES / "lr0fm66.yaml"
#: The paper's 66 plus the newest open_clip families (SigLIP 2, MetaCLIP 2, PE-Core, MobileCLIP2, DFN).
PLUS_PAPER_CONFIG = _TABLES / "lr0fm_plus.yaml"
#: Packaged backbone tables by name (``--backbones lr0fm-plus`` works as well as a path).
BACKBONE_TABLES = {"lr0fm66": DEFAULT_PAPER_CONFIG, "lr0fm-plus": PLUS_PAPER_CONFIG}


def resolve_backbone_table(path: str | Path) -> Path:
    """The file a backbone-table value names: an existing path, else a packaged table by name (``lr0fm-plus``)."""
    if str(path) in BACKBONE_TABLES and not Path(path).exists():
        return BACKBONE_TABLES[str(path)]
    return Path(path)


def _read_table(path: Path, seen: tuple[Path, ...]) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        where = f" (included from {str(seen[-1])!r})" if seen else ""
        names = ", ".join(BACKBONE_TABLES)
        raise FileNotFoundError(f"Backbone table {str(path)!r} does not exist{where}; packaged tables: {names}.")
    if path.resolve() in seen:
        raise ValueError(f"Backbone table {str(path)!r} includes itself (through {' -> '.join(map(str, seen))}).")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    entries = data.get("backbones", []) if isinstance(data, dict) else data
    expected = "a list of mappings (or a mapping with a 'backbones' list and/or 'include'), each with 'name' and 'spec'"
    if not isinstance(entries, list):
        raise ValueError(f"Backbone table {str(path)!r} is not {expected}.")
    includes = data.get("include", []) if isinstance(data, dict) else []
    includes = [includes] if isinstance(includes, str) else includes
    if not isinstance(includes, list) or not all(isinstance(item, str) for item in includes):
        raise ValueError(f"'include' of {str(path)!r} must be a file name or a list of them (relative to it).")
    table: dict[str, dict[str, Any]] = {}
    for include in includes:
        table.update(_read_table(path.parent / include, (*seen, path.resolve())))
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not entry.get("name"):
            raise ValueError(f"Entry {index} of {str(path)!r} has no 'name'; expected {expected}.")
        name = str(entry["name"])
        if name in table:
            raise ValueError(f"Backbone {name!r} is listed twice in {str(path)!r} (or in a table it includes).")
        table[name] = entry
    return table


def read_paper_backbones(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Return ``{name: entry}`` of a backbone table, or ``{}`` when the default file is absent.

    Args:
        path: YAML file to read, or a packaged table's name (``lr0fm66``, ``lr0fm-plus``); ``None`` reads
            :data:`DEFAULT_PAPER_CONFIG` if it exists.

    Raises:
        FileNotFoundError: an explicitly given ``path`` (or a file it includes) does not exist.
        ValueError: the file does not hold a list of mappings with a ``name`` each, or a name is listed twice.

    """
    if path is None:
        if not DEFAULT_PAPER_CONFIG.is_file():
            return {}
        path = DEFAULT_PAPER_CONFIG
    return _read_table(resolve_backbone_table(path), ())
