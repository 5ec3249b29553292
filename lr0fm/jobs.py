"""Splitting work across independent jobs: ``--shard i/N`` and the job-array environment of SLURM.

Shared by ``lr0fm synth`` (captions) and ``lr0fm benchmark`` (the (backbone, dataset) cells of a sweep).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

#: ``--shard`` value that reads the shard from a SLURM job array
SLURM_ARRAY = "slurm-array"


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``"i/N"`` (0-based ``i`` < ``N``) into ``(i, N)``.

    Raises:
        ValueError: ``text`` is not of that form.

    """
    index, sep, count = text.partition("/")
    try:
        shard = int(index), int(count)
    except ValueError:
        shard = None
    if not sep or shard is None or not 0 <= shard[0] < shard[1]:
        raise ValueError(f"--shard {text!r} is not of the form i/N with 0 <= i < N (e.g. 0/4 ... 3/4).")
    return shard


def array_shard_from_env(environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``(i, N)`` of this task of a SLURM job array (``sbatch --array=0-N-1``).

    Raises:
        ValueError: not inside a job array, or an array with a step (``--array=0-9:2``), which has no
            contiguous task numbering to shard by.

    """
    env = os.environ if environ is None else environ
    try:
        task, low, high = (int(env[v]) for v in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX"))
        count = int(env["SLURM_ARRAY_TASK_COUNT"])
    except (KeyError, ValueError):
        raise ValueError(
            f"--shard {SLURM_ARRAY}: SLURM_ARRAY_TASK_ID/_MIN/_MAX/_COUNT are not set; submit with "
            "`sbatch --array=0-N-1 ...`, or give --shard i/N"
        ) from None
    if high - low + 1 != count:
        raise ValueError(f"--shard {SLURM_ARRAY}: array {low}-{high} has {count} tasks; use a contiguous --array")
    return task - low, count


def resolve_shard(text: str | None, environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``None`` -> ``(0, 1)``; ``"i/N"``; or :data:`SLURM_ARRAY` -> :func:`array_shard_from_env`."""
    if text is None:
        return 0, 1
    if text == SLURM_ARRAY:
        return array_shard_from_env(environ)
    return parse_shard(text)
