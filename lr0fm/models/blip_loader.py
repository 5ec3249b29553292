"""BLIP image-text contrastive (ITC) backbones through Hugging Face transformers.

Zero-shot classification with BLIP uses its ITC heads, as in ``BlipForImageTextRetrieval`` with
``use_itm_head=False``: the image embedding is ``vision_proj`` of the vision [CLS] token and the text
embedding is ``text_proj`` of the text encoder's [CLS] token (unimodal, no cross-attention to the image).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from open_clip.transform import PreprocessCfg

from lr0fm.models.base import Backbone, precision_dtype
from lr0fm.models.errors import weights_unavailable
from lr0fm.models.families import register_scheme
from lr0fm.models.seeding import seeded
from lr0fm.models.specs import SPEC_FORMS

#: BLIP's text length for retrieval/ITC (``max_length=35`` in Salesforce's BLIP retrieval code).
BLIP_MAX_TEXT_LENGTH = 35

#: PIL resampling codes (as stored in HF image-processor configs) -> open_clip interpolation names.
_RESAMPLE_NAMES = {0: "nearest", 2: "bilinear", 3: "bicubic"}


def blip_preprocess_config(image_processor: Any) -> PreprocessCfg:
    """Translate a BLIP image processor's settings into open_clip's ``PreprocessCfg``.

    BLIP resizes both sides to ``size x size`` without cropping, i.e. open_clip's ``"squash"`` mode.

    Raises:
        ValueError: the processor is not square or uses a resampling filter open_clip cannot reproduce.

    """
    size = image_processor.size
    # ``size`` is an int or a mapping (a dict, or transformers' SizeDict) with height and width.
    height, width = (size, size) if isinstance(size, int) else (size["height"], size["width"])
    if height != width:
        raise ValueError(f"BLIP image processor size {height}x{width} is not square; expected size x size.")
    resample = int(getattr(image_processor.resample, "value", image_processor.resample))
    if resample not in _RESAMPLE_NAMES:
        raise ValueError(
            f"BLIP image processor resample={resample} is not supported; expected one of {_RESAMPLE_NAMES}."
        )
    return PreprocessCfg(
        size=int(height),
        mean=tuple(float(v) for v in image_processor.image_mean),
        std=tuple(float(v) for v in image_processor.image_std),
        interpolation=_RESAMPLE_NAMES[resample],
        resize_mode="squash",
    )


def _load_pretrained(source: str, cache_dir: str | None) -> tuple[Any, Any]:
    """Load the retrieval model and processor, checking that ``source`` is a BLIP checkpoint."""
    from transformers import AutoConfig, BlipForImageTextRetrieval, BlipProcessor

    hint = (
        "download the repository (config.json, weights, preprocessor_config.json, tokenizer files) to a "
        "directory and pass 'hf:/that/dir'."
    )
    try:
        config = AutoConfig.from_pretrained(source, cache_dir=cache_dir)
    except OSError as err:
        raise weights_unavailable(f"hf:{source}", err, hint) from err
    if config.model_type != "blip":
        raise ValueError(
            f"'hf:{source}' holds a {config.model_type!r} model; 'hf:' specs load BLIP image-text retrieval "
            f"checkpoints (model_type 'blip', e.g. 'hf:Salesforce/blip-itm-base-coco'). For open_clip models "
            f"on the hub use 'hf-hub:org/repo'."
        )
    try:
        model = BlipForImageTextRetrieval.from_pretrained(source, cache_dir=cache_dir)
        processor = BlipProcessor.from_pretrained(source, cache_dir=cache_dir)
    except OSError as err:
        raise weights_unavailable(f"hf:{source}", err, hint) from err
    return model, processor


class BlipTokenizer:
    """Hugging Face BLIP tokenizer -> ``{"input_ids", "attention_mask"}`` at BLIP's retrieval text length."""

    def __init__(self, tokenizer: Any, max_length: int = BLIP_MAX_TEXT_LENGTH) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, texts: list[str]) -> Any:
        """Tokenise, padded to the batch's longest text: a ``BatchEncoding`` of ``input_ids`` and ``attention_mask``."""
        from transformers import BatchEncoding

        encoded = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return BatchEncoding({"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]})


class BlipBackbone(Backbone):
    """A BLIP image-text retrieval model's ITC heads as a :class:`Backbone` (``model`` is the module).

    Image: ``vision_proj`` of the vision [CLS] token; text: ``text_proj`` of the text encoder's [CLS] token.
    """

    family = "blip"

    def __init__(
        self,
        spec: str,
        model: torch.nn.Module,
        preprocess_cfg: PreprocessCfg,
        tokenizer: BlipTokenizer,
        dtype: torch.dtype = torch.float32,
        info: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(spec, preprocess_cfg, tokenizer, info)
        self.model = model
        self.dtype = dtype

    @property
    def visual(self) -> torch.nn.Module:
        """BLIP's vision model."""
        return self.model.vision_model

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """ITC image embedding (unnormalised)."""
        pixels = images.to(device=self.device, dtype=self.dtype)
        hidden = self.model.vision_model(pixel_values=pixels).last_hidden_state
        return self.model.vision_proj(hidden[:, 0, :])

    def encode_text(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """ITC text embedding (unnormalised) of the unimodal text encoder."""
        hidden = self.model.text_encoder(
            input_ids=tokens["input_ids"].to(self.device), attention_mask=tokens["attention_mask"].to(self.device)
        ).last_hidden_state
        return self.model.text_proj(hidden[:, 0, :])


@register_scheme("hf")
def load_blip(
    source: str,
    *,
    name: str,
    device: str = "cpu",
    seed: int | None = None,
    cache_dir: str | None = None,
    precision: str = "fp32",
) -> Backbone:
    """Load a BLIP ITM checkpoint as an ITC zero-shot backbone (spec ``hf:SOURCE``).

    Args:
        source: Hugging Face hub repo id or a local directory saved with ``save_pretrained``.
        name: the spec string as given by the user.
        device: torch device.
        seed: seeds initialisation of any weights missing from the checkpoint.
        cache_dir: Hugging Face download cache.
        precision: ``"fp32"``, ``"fp16"`` or ``"bf16"`` (weights are cast).

    Raises:
        ValueError: unknown precision, an empty source, or the source is not a BLIP checkpoint.
        FileNotFoundError: a local directory that does not exist.
        WeightsUnavailableError: the checkpoint could not be downloaded or found in the cache.

    """
    if not source:
        raise ValueError(f"Empty source after 'hf:' in spec {name!r}. {SPEC_FORMS}")
    if source.startswith(("/", ".", "~")):
        if not Path(source).expanduser().is_dir():
            raise FileNotFoundError(
                f"BLIP directory {source!r} in spec {name!r} does not exist; expected a directory saved with "
                f"save_pretrained (config.json, weights, preprocessor_config.json, tokenizer files)."
            )
        source = str(Path(source).expanduser())
    dtype = precision_dtype(precision, "BLIP")
    with seeded(seed):
        model, processor = _load_pretrained(source, cache_dir)
    model = model.to(device=torch.device(device), dtype=dtype).eval()
    info = {"loader": "transformers", "arch": type(model).__name__, "tag": source, "seed": seed, "precision": precision}
    backbone = BlipBackbone(
        name, model, blip_preprocess_config(processor.image_processor), BlipTokenizer(processor.tokenizer), dtype, info
    )
    backbone.info.update(image_size=backbone.image_size, num_params=backbone.num_params)
    return backbone.to(device)
