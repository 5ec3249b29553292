"""LR protocols: how the low-resolution views of an image are made (the bottom layer of lr0fm).

Used alike by the benchmark, LR-TK0's zero-shot callback and any analysis; depends on nothing of
lr0fm above it. See :mod:`lr0fm.protocols.registry` for the named protocols (``paper``,
``shorter-side``, ``square``), :mod:`lr0fm.protocols.chains` for the pixel steps and
:mod:`lr0fm.protocols.paper_chains` for the chains of the LR0.FM authors' scripts. The names below are
imported on first use (PEP 562), so ``lr0fm.protocols.resolutions`` stays free of torch.
"""

from __future__ import annotations

from lr0fm.lazy import lazy_exports

_EXPORTS = {
    "NORMALIZATIONS": "chains",
    "Chain": "chains",
    "ViewTransform": "chains",
    "FloatViews": "chains",
    "split_preprocess": "chains",
    "PAPER_CHAINS": "paper_chains",
    "PAPER_TEXT_CHAIN": "paper_chains",
    "LRProtocol": "registry",
    "PROTOCOLS": "registry",
    "get_protocol": "registry",
    "list_protocols": "registry",
    "paper_chain_of": "registry",
    "register_protocol": "registry",
    "DEFAULT_PROTOCOL": "resolutions",
    "HR": "resolutions",
    "Resolution": "resolutions",
    "parse_resolutions": "resolutions",
}

__getattr__ = lazy_exports(__name__, _EXPORTS)


__all__ = sorted(_EXPORTS)
