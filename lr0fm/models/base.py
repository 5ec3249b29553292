"""The backbone interface: what the benchmark, LR-TK0 and the analyses need from any image-text model.

:class:`Backbone` is an ``nn.Module`` whose subclasses (one per model family: open_clip in
:mod:`lr0fm.models.openclip_loader`, BLIP in :mod:`lr0fm.models.blip_loader`) hold the model as a real
submodule and implement the two encoders. Everything else travels with the object: the spec it was loaded
from, its preprocessing (as it comes with the weights), its tokenizer and free-form ``info``. A backbone is
picklable and deep-copyable, and inputs follow wherever ``.to()`` moved it.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from open_clip.transform import PreprocessCfg, image_transform_v2
from torch import nn

#: ``--precision`` names of the families that cast their weights (open_clip handles its own precisions).
PRECISION_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def precision_dtype(precision: str, family: str) -> torch.dtype:
    """The dtype of a ``--precision`` name.

    Raises:
        ValueError: an unknown name (the message names the family and the accepted names).

    """
    if precision not in PRECISION_DTYPES:
        raise ValueError(f"Unknown precision {precision!r} for {family}; expected one of {tuple(PRECISION_DTYPES)}.")
    return PRECISION_DTYPES[precision]


class Backbone(nn.Module, metaclass=ABCMeta):
    """A zero-shot image-text model behind one small interface.

    ``encode_image``/``encode_text`` return *unnormalised* embeddings; callers L2-normalise.

    Args:
        spec: the string the model was loaded from (e.g. ``"ViT-B-16:laion2b_s34b_b88k"``).
        preprocess_cfg: preprocessing that comes with the weights (open_clip's ``PreprocessCfg``, square
            ``size`` as an int).
        tokenizer: list of strings -> token tensor (or mapping of tensors) accepted by ``encode_text``.
        info: free-form metadata (pretrained tag, pre-training data, ...).

    Attributes:
        family: the model family of the subclass (``"openclip"``, ``"blip"``, ``"toy"``...).
        preprocess: PIL image -> normalised tensor at native size: open_clip's evaluation transform of
            ``preprocess_cfg`` (``image_transform_v2``).
    """

    family: ClassVar[str] = ""

    def __init__(
        self,
        spec: str,
        preprocess_cfg: PreprocessCfg,
        tokenizer: Callable[[list[str]], Any],
        info: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.preprocess_cfg = preprocess_cfg
        self.preprocess: Callable[[Any], torch.Tensor] = image_transform_v2(preprocess_cfg, is_train=False)
        self.tokenizer = tokenizer
        self.info = dict(info or {})
        # moves with the module: where inputs go, without a look at the parameters on every forward
        self.register_buffer("_anchor", torch.empty(0), persistent=False)

    @property
    def device(self) -> torch.device:
        """The device the backbone is on now (``.to()`` moves it)."""
        return self._anchor.device

    @property
    @abstractmethod
    def visual(self) -> nn.Module:
        """The vision tower (a submodule; LR tokens attach here)."""

    @property
    def image_size(self) -> int:
        """Native (HR) input resolution."""
        return self.preprocess_cfg.size

    @property
    def num_params(self) -> int:
        """Total parameter count of the model (the backbone's own tokens excluded)."""
        return sum(p.numel() for name, p in self.named_parameters() if not name.startswith("lr_tokens."))

    @abstractmethod
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Image embeddings (unnormalised) for a batch of preprocessed images."""

    @abstractmethod
    def encode_text(self, tokens: Any) -> torch.Tensor:
        """Text embeddings (unnormalised) for tokenised prompts."""
