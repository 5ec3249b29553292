"""Split captions across workers: ``--shard i/N`` or the torchrun/SLURM rank and world size."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from lr0fm import jobs
from lr0fm.synth.config import SynthError


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``"i/N"`` (0-based ``i`` < ``N``) into ``(i, N)`` (:func:`lr0fm.jobs.parse_shard`).

    Raises:
        SynthError: if ``text`` is not of that form.

    """
    try:
        return jobs.parse_shard(text)
    except ValueError as exc:
        raise SynthError(str(exc)) from None


def shard_from_env(environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """Return ``(rank, world_size)`` from torchrun (``RANK``/``WORLD_SIZE``) or SLURM, else ``(0, 1)``."""
    env = os.environ if environ is None else environ
    for rank_var, size_var in (("RANK", "WORLD_SIZE"), ("SLURM_PROCID", "SLURM_NTASKS")):
        if rank_var in env and size_var in env:
            return parse_shard(f"{env[rank_var]}/{env[size_var]}")
    return 0, 1


def local_device(device: str, environ: Mapping[str, str] | None = None) -> str:
    """``cuda`` becomes ``cuda:$LOCAL_RANK`` (or ``$SLURM_LOCALID``) when set; other devices pass through."""
    env = os.environ if environ is None else environ
    if device != "cuda":
        return device
    local = env.get("LOCAL_RANK", env.get("SLURM_LOCALID"))
    return f"cuda:{int(local)}" if local is not None else device


def shard_caption_ids(caption_ids: Sequence[int], shard: tuple[int, int]) -> list[int]:
    """Return the caption ids worker ``shard = (i, N)`` owns: ``id % N == i`` (disjoint, covering)."""
    index, count = shard
    return [cid for cid in caption_ids if cid % count == index]
