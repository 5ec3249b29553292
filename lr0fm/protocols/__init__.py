"""LR protocols: how the low-resolution views of an image are made (the bottom layer of lr0fm).

Used alike by the benchmark, LR-TK0's zero-shot callback and any analysis; depends on nothing of
lr0fm above it. See :mod:`lr0fm.protocols.registry` for the named protocols (``paper``,
``shorter-side``, ``square``), :mod:`lr0fm.protocols.chains` for the pixel steps and
:mod:`lr0fm.protocols.paper_chains` for the chains of the LR0.FM authors' scripts. The names below are
imported on first use (PEP 562), so ``lr0fm.protocols.resolutions`` stays free of torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "NORMALIZATIONS": "lr0fm.protocols.chains",
    "Chain": "lr0fm.protocols.chains",
    "ViewTransform": "lr0fm.protocols.chains",
    "PAPER_CHAINS": "lr0fm.protocols.paper_chains",
    "PAPER_TEXT_CHAIN": "lr0fm.protocols.paper_chains",
    "LRProtocol": "lr0fm.protocols.registry",
    "PROTOCOLS": "lr0fm.protocols.registry",
    "get_protocol": "lr0fm.protocols.registry",
    "list_protocols": "lr0fm.protocols.registry",
    "paper_chain_of": "lr0fm.protocols.registry",
    "register_protocol": "lr0fm.protocols.registry",
    "DEFAULT_PROTOCOL": "lr0fm.protocols.resolutions",
    "HR": "lr0fm.protocols.resolutions",
    "Resolution": "lr0fm.protocols.resolutions",
    "parse_resolutions": "lr0fm.protocols.resolutions",
}


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_LAZY)
