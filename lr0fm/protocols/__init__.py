"""LR protocols: how the low-resolution views of an image are made (the bottom layer of lr0fm).

Used alike by the benchmark, LR-TK0's zero-shot callback and any analysis; depends on nothing of
lr0fm above it. See :mod:`lr0fm.protocols.registry` for the named protocols (``paper``,
``shorter-side``, ``square``), :mod:`lr0fm.protocols.chains` for the pixel steps and
:mod:`lr0fm.protocols.paper_chains` for the chains of the LR0.FM authors' scripts.
"""

from lr0fm.protocols.chains import NORMALIZATIONS, Chain, ViewTransform
from lr0fm.protocols.paper_chains import PAPER_CHAINS, PAPER_TEXT_CHAIN
from lr0fm.protocols.registry import (
    DEFAULT_PROTOCOL,
    LRProtocol,
    get_protocol,
    list_protocols,
    paper_chain_of,
    register_protocol,
)
from lr0fm.protocols.resolutions import HR, Resolution, parse_resolutions

__all__ = [
    "DEFAULT_PROTOCOL",
    "HR",
    "NORMALIZATIONS",
    "PAPER_CHAINS",
    "PAPER_TEXT_CHAIN",
    "Chain",
    "LRProtocol",
    "Resolution",
    "ViewTransform",
    "get_protocol",
    "list_protocols",
    "paper_chain_of",
    "parse_resolutions",
    "register_protocol",
]
