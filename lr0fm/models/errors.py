"""Errors raised while resolving and loading backbones."""

from __future__ import annotations


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights (or the tokenizer files they need) could not be downloaded or found in the cache."""


def weights_unavailable(what: str, cause: BaseException, local_hint: str) -> WeightsUnavailableError:
    """Build the error for weights that could not be fetched (offline machine, missing cache, bad repo).

    Args:
        what: the weights that were asked for, e.g. ``"ViT-B-16:laion2b_s34b_b88k"``.
        cause: the underlying download/cache error.
        local_hint: how to pass the same weights from local files instead.

    """
    return WeightsUnavailableError(
        f"Could not download or find cached files (weights or tokenizer) for {what!r} "
        f"({type(cause).__name__}: {cause}). "
        f"On a machine without internet, provide the files locally: {local_hint}"
    )
