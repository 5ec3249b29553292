"""Named LR protocols: which :class:`~lr0fm.protocols.chains.Chain` a backbone is measured with.

* ``paper`` (default) -- per backbone, the chain the LR0.FM authors ran for it (the ``protocol`` field of
  each of the paper's 66 backbones, :mod:`lr0fm.protocols.paper_chains`); a backbone outside the 66 falls
  back to the paper's text (``paper-text``: square ``n x n`` bicubic, then the model's own preprocessing).
* ``shorter-side`` -- shorter side ``n`` (aspect kept), then the backbone's own preprocessing.
* ``square`` -- the authors' OpenCLIP/SigLIP/CLIPA/BLIP chain for any backbone: ``n x n`` bicubic squash,
  then ``S x S`` bicubic squash, no crop, normalised as the authors did for the backbone's family (the
  backbone's own mean/std when it is not one of the 66).

New protocols register with :func:`register_protocol`, as the three above do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol

from lr0fm.protocols.chains import Chain, ViewTransform
from lr0fm.protocols.paper_chains import PAPER_CHAINS, PAPER_TEXT_CHAIN
from lr0fm.protocols.resolutions import Resolution
from lr0fm.registry import Registry


class ProtocolTarget(Protocol):
    """What a protocol needs from a backbone (:class:`lr0fm.models.Backbone` has it all)."""

    preprocess_cfg: Any  # ``size``, ``mean`` and ``std`` attributes
    preprocess: Callable[[Any], Any]
    info: dict[str, Any]


class LRProtocol:
    """A named rule that gives every backbone its LR chain."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    def chain(self, backbone: ProtocolTarget) -> Chain:
        """The chain ``backbone`` is measured with under this protocol."""
        raise NotImplementedError

    def transform(self, backbone: ProtocolTarget, resolutions: Sequence[Resolution]) -> ViewTransform:
        """The multi-resolution view transform of ``backbone`` under this protocol."""
        cfg = backbone.preprocess_cfg
        return self.chain(backbone).transform(
            resolutions, size=cfg.size, mean=cfg.mean, std=cfg.std, preprocess=backbone.preprocess
        )


#: The registered protocols by name.
PROTOCOLS: Registry[LRProtocol] = Registry("LR protocol")


def register_protocol(cls: type[LRProtocol]) -> type[LRProtocol]:
    """Class decorator: register an instance of an :class:`LRProtocol` subclass under its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    PROTOCOLS.add(cls.name, cls())
    return cls


def list_protocols() -> list[str]:
    """Names of the registered protocols."""
    return PROTOCOLS.names()


def get_protocol(name: str) -> LRProtocol:
    """The registered protocol called ``name``.

    Raises:
        ValueError: unknown name (with close matches and the known ones).

    """
    return PROTOCOLS.get(name)


def paper_chain_of(backbone: ProtocolTarget) -> Chain | None:
    """The chain a backbone table names for a backbone, or ``None`` for a backbone outside the tables.

    The paper's 66 name one of the authors' chains; the newer backbones of ``lr0fm_plus.yaml`` name
    ``paper-text`` (:data:`~lr0fm.protocols.paper_chains.PAPER_TEXT_CHAIN`, no authors' script covers them).

    Raises:
        ValueError: the table names a chain that does not exist.

    """
    key = (backbone.info or {}).get("paper_protocol")
    if key is None:
        return None
    if key == PAPER_TEXT_CHAIN.name:
        return PAPER_TEXT_CHAIN
    if key not in PAPER_CHAINS:
        raise ValueError(
            f"backbone {backbone.info.get('paper_name')!r} names LR chain {key!r}, which is not one of "
            f"{', '.join([*PAPER_CHAINS, PAPER_TEXT_CHAIN.name])}"
        )
    return PAPER_CHAINS[key]


@register_protocol
class PaperProtocol(LRProtocol):
    """The authors' chain of each of the 66 backbones; the paper's text for any other backbone."""

    name = "paper"
    summary = "per backbone, the chain the LR0.FM authors ran (paper text for other backbones)"

    def chain(self, backbone: ProtocolTarget) -> Chain:
        """The authors' chain, or :data:`~lr0fm.protocols.paper_chains.PAPER_TEXT_CHAIN`."""
        return paper_chain_of(backbone) or PAPER_TEXT_CHAIN


@register_protocol
class ShorterSideProtocol(LRProtocol):
    """Shorter side ``n`` bicubic (aspect kept), then the backbone's own preprocessing."""

    name = "shorter-side"
    summary = "shorter side n bicubic (aspect kept), then the backbone's own preprocessing"

    _CHAIN = Chain("shorter-side", down="shorter", up="model", source="lr0fm (CLIP-style evaluation chain)")

    def chain(self, backbone: ProtocolTarget) -> Chain:
        """The same chain for every backbone."""
        return self._CHAIN


@register_protocol
class SquareProtocol(LRProtocol):
    """``n x n`` bicubic, then ``S x S`` bicubic, no crop, with the family's normalisation as the authors used it."""

    name = "square"
    summary = "n x n bicubic squash, then S x S bicubic squash (no crop), the family's normalisation"

    def chain(self, backbone: ProtocolTarget) -> Chain:
        """The square chain with the authors' normalisation of the backbone's family (else its own)."""
        family = paper_chain_of(backbone)
        return Chain(
            "square",
            down="square",
            up="squash",
            normalize=family.normalize if family is not None else None,
            source=_CLIP_BENCHMARK_SQUARE,
        )


_CLIP_BENCHMARK_SQUARE = (
    "CLIP_benchmark/data/__init__.py: create_dataset_zero_shot (model_name openclip/siglip/clipa), "
    "BLIP/data/__init__.py, ALBEF/data/__init__.py"
)
