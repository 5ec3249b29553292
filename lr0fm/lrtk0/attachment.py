"""Shared machinery of learnable tokens that live outside a frozen vision tower and act through hooks.

The token modules hold only their own parameters (``state_dict`` = tokens); the tower is reached
through forward hooks, so the tower's ``forward`` is never forked and detaching restores it exactly.
Copy (``copy.deepcopy``) or pickle the model that holds *both* the tower and the token module: the
hooks, the handles and the layout are then copied consistently and act on the copied tower.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from lr0fm.lrtk0.towers import TowerError, TowerLayout, tower_layout
from lr0fm.models.base import Backbone

#: token initialisations: truncated normal (the authors' EVA code, std 0.02), plain normal (their OpenCLIP and
#: MetaCLIP code: std 0.01 after patch embedding, 0.02 before the blocks) or all zeros
INITS = ("trunc_normal", "normal", "zeros")


def init_tokens_(tensor: torch.Tensor, init: str, std: float) -> None:
    """Initialise a token tensor in place.

    Args:
        tensor: the tensor to fill.
        init: ``"trunc_normal"`` (normal with ``std``, truncated at +-2 as timm's ``trunc_normal_``),
            ``"normal"`` (untruncated) or ``"zeros"``.
        std: standard deviation for the normal inits.

    Raises:
        ValueError: unknown ``init``.

    """
    if init == "trunc_normal":
        nn.init.trunc_normal_(tensor, std=std)
    elif init == "normal":
        nn.init.normal_(tensor, std=std)
    elif init == "zeros":
        nn.init.zeros_(tensor)
    else:
        raise ValueError(f"unknown token init {init!r}; expected one of {', '.join(INITS)}")


class AttachedTokens(nn.Module):
    """Base of token modules hooked into a vision tower (LR tokens, visual prompts).

    Subclasses implement :meth:`_register_hooks`, and for the tokens-only export (:mod:`lr0fm.lrtk0.export`)
    :attr:`method`, :meth:`config` and :meth:`from_config`. Tokens act only while :attr:`enabled` is true and
    the module is attached; with tokens off the tower computes exactly what it computes without them, so
    the same tower serves as the frozen teacher (see :meth:`disabled`).

    Args:
        visual: the vision tower (or a :class:`~lr0fm.models.base.Backbone`) to attach to.
        attach: register the hooks immediately.

    """

    #: the LR-TK0 method (:data:`lr0fm.lrtk0.methods.METHODS` name) these tokens belong to, named in exports
    method: str = ""

    def __init__(self, visual: nn.Module | Backbone, *, attach: bool = True) -> None:
        super().__init__()
        self.layout: TowerLayout = tower_layout(visual)
        self.enabled = True
        self._handles: list[RemovableHandle] = []
        self._attach_on_init = attach

    def _finish_init(self) -> None:
        """Attach if requested; subclasses call this once their parameters exist."""
        if self._attach_on_init:
            self.attach()

    @property
    def attached(self) -> bool:
        """Whether the hooks are registered on the tower."""
        return bool(self._handles)

    def _register_hooks(self) -> list[RemovableHandle]:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """JSON-serialisable construction options, tower layout and exported tensor shapes (``shapes``)."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, visual: nn.Module | Backbone, config: dict[str, Any]) -> AttachedTokens:
        """An unattached, untrained instance on ``visual`` built from an export's :meth:`config`."""
        raise NotImplementedError

    def export_tensors(self) -> dict[str, torch.Tensor]:
        """The tensors an export holds (default: the whole ``state_dict``)."""
        return self.state_dict()

    def attach(self, visual: nn.Module | Backbone | None = None) -> None:
        """Register the hooks on the tower (``visual`` to move to another tower of the same layout).

        Raises:
            TowerError: already attached, or ``visual`` has a different layout than the tokens.

        """
        if self.attached:
            raise TowerError(f"{type(self).__name__} is already attached; call detach() first")
        if visual is not None:
            layout = tower_layout(visual)
            if layout.signature() != self.layout.signature():
                raise TowerError(
                    f"{type(self).__name__} was built for tower {self.layout.signature()} "
                    f"but got tower {layout.signature()}"
                )
            self.layout = layout
        self._handles = self._register_hooks()

    def detach(self) -> None:
        """Remove the hooks; the tower is left exactly as before :meth:`attach`."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    @contextlib.contextmanager
    def disabled(self) -> Iterator[None]:
        """Context in which the tower runs without tokens (the frozen teacher)."""
        previous = self.enabled
        self.enabled = False
        try:
            yield
        finally:
            self.enabled = previous

    def _seq_dim(self) -> int:
        return 1 if self.layout.batch_first else 0
