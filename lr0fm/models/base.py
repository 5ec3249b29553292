"""The backbone interface: what the benchmark, LR-TK0 and the analyses need from any image-text model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class PreprocessConfig:
    """Image preprocessing that travels with the weights (open_clip's ``PreprocessCfg`` fields).

    Attributes:
        size: native input side (HR), e.g. 224.
        mean: per-channel normalisation mean.
        std: per-channel normalisation std.
        interpolation: ``"bicubic"``, ``"bilinear"`` or ``"nearest"`` for the resize to ``size``.
        resize_mode: ``"shortest"`` (resize shorter side then centre crop), ``"longest"`` (fit and pad)
            or ``"squash"`` (resize both sides), as open_clip defines them.
        fill_color: padding value for ``"longest"``.
    """

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
    fill_color: int = 0


def model_device(model: nn.Module) -> torch.device:
    """The device a model's weights are on now (inputs follow the model wherever Lightning moved it)."""
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


class Backbone(nn.Module):
    """A zero-shot image-text model behind one small interface.

    ``encode_image``/``encode_text`` return *unnormalised* embeddings; callers L2-normalise.

    Args:
        spec: the string the model was loaded from (e.g. ``"ViT-B-16:laion2b_s34b_b88k"``).
        model: the underlying ``nn.Module`` (open_clip ``CLIP``, HF BLIP, ...); registered as a child.
        visual: the vision tower inside ``model`` (LR tokens attach here).
        preprocess_cfg: preprocessing that comes with the weights.
        preprocess: PIL image -> normalised tensor at native size (built from ``preprocess_cfg``).
        tokenizer: list of strings -> token tensor (or dict of tensors) accepted by ``encode_text``.
        image_encoder: preprocessed image batch -> embeddings.
        text_encoder: tokens -> embeddings.
        family: model family (``"openclip"``, ``"blip"``, ``"toy"`` ...).
        info: free-form metadata (pretrained tag, pre-training data, ...).
    """

    def __init__(
        self,
        spec: str,
        model: nn.Module,
        visual: nn.Module,
        preprocess_cfg: PreprocessConfig,
        preprocess: Callable[[Any], torch.Tensor],
        tokenizer: Callable[[list[str]], Any],
        image_encoder: Callable[[torch.Tensor], torch.Tensor],
        text_encoder: Callable[[Any], torch.Tensor],
        family: str = "openclip",
        info: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.model = model
        self._visual = [visual]  # a view into ``model``; kept out of the module tree to avoid double registration
        self.preprocess_cfg = preprocess_cfg
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self._image_encoder = image_encoder
        self._text_encoder = text_encoder
        self.family = family
        self.info = dict(info or {})

    @property
    def visual(self) -> nn.Module:
        """The vision tower (a sub-module of ``model``)."""
        return self._visual[0]

    @property
    def image_size(self) -> int:
        """Native (HR) input resolution."""
        return self.preprocess_cfg.size

    @property
    def num_params(self) -> int:
        """Total parameter count of the underlying model."""
        return sum(p.numel() for p in self.model.parameters())

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Image embeddings (unnormalised) for a batch of preprocessed images."""
        return self._image_encoder(images)

    def encode_text(self, tokens: Any) -> torch.Tensor:
        """Text embeddings (unnormalised) for tokenised prompts."""
        return self._text_encoder(tokens)
