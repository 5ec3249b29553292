"""Stable, platform-independent seeds derived by hashing (never Python's salted ``hash``)."""

from __future__ import annotations

import hashlib


def stable_hash(*parts: object) -> int:
    """Hash ``parts`` (joined by ``/``) with SHA-256 to a 63-bit integer, the same on every machine."""
    text = "/".join(str(part) for part in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") >> 1


def image_seed(global_seed: int, caption_id: int, image_index: int) -> int:
    """Derive the seed of one image; it depends only on these three numbers, not on how work was split.

    Args:
        global_seed: the run's ``--seed``.
        caption_id: the caption's id in ``captions.tsv``.
        image_index: the image's index within its caption (0-based).

    Returns:
        A non-negative integer below 2**63, suitable for ``torch.Generator.manual_seed``.

    """
    return stable_hash("lr0fm-synth-image", global_seed, caption_id, image_index)


def caption_rank_key(global_seed: int, line_index: int) -> int:
    """Sort key of caption line ``line_index`` in the seeded random order used for sampling."""
    return stable_hash("lr0fm-synth-caption", global_seed, line_index)
