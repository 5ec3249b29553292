"""Reproducible weight initialisation without disturbing the caller's random state."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Run the body with the CPU torch RNG seeded by ``seed``, restoring the previous state afterwards.

    Models are initialised on the CPU and moved to their device afterwards, so forking the CPU generator
    is enough to make random initialisation reproducible. ``seed=None`` leaves the RNG untouched.
    """
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
