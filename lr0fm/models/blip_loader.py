"""BLIP image-text contrastive (ITC) backbones through Hugging Face transformers.

Zero-shot classification with BLIP uses its ITC heads, as in ``BlipForImageTextRetrieval`` with
``use_itm_head=False``: the image embedding is ``vision_proj`` of the vision [CLS] token and the text
embedding is ``text_proj`` of the text encoder's [CLS] token (unimodal, no cross-attention to the image).
"""

from __future__ import annotations

from typing import Any

import open_clip
import torch

from lr0fm.models.base import Backbone, PreprocessConfig, model_device
from lr0fm.models.errors import weights_unavailable
from lr0fm.models.seeding import seeded
from lr0fm.models.specs import BlipSpec

#: BLIP's text length for retrieval/ITC (``max_length=35`` in Salesforce's BLIP retrieval code).
BLIP_MAX_TEXT_LENGTH = 35

#: PIL resampling codes (as stored in HF image-processor configs) -> open_clip interpolation names.
_RESAMPLE_NAMES = {0: "nearest", 2: "bilinear", 3: "bicubic"}

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def blip_preprocess_config(image_processor: Any) -> PreprocessConfig:
    """Translate a BLIP image processor's settings into a :class:`PreprocessConfig`.

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
    return PreprocessConfig(
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


def load_blip(
    spec: BlipSpec,
    *,
    name: str,
    device: str = "cpu",
    seed: int | None = None,
    cache_dir: str | None = None,
    precision: str = "fp32",
) -> Backbone:
    """Load a BLIP ITM checkpoint as an ITC zero-shot backbone.

    Args:
        spec: parsed ``hf:`` spec (hub repo id or local directory saved with ``save_pretrained``).
        name: the spec string as given by the user.
        device: torch device.
        seed: seeds initialisation of any weights missing from the checkpoint.
        cache_dir: Hugging Face download cache.
        precision: ``"fp32"``, ``"fp16"`` or ``"bf16"`` (weights are cast).

    Raises:
        ValueError: unknown precision, or the source is not a BLIP checkpoint.
        WeightsUnavailableError: the checkpoint could not be downloaded or found in the cache.

    """
    if precision not in _DTYPES:
        raise ValueError(f"Unknown precision {precision!r} for BLIP; expected one of {tuple(_DTYPES)}.")
    with seeded(seed):
        model, processor = _load_pretrained(spec.source, cache_dir)
    dtype = _DTYPES[precision]
    target = torch.device(device)
    model = model.to(device=target, dtype=dtype).eval()
    preprocess_cfg = blip_preprocess_config(processor.image_processor)
    preprocess = open_clip.image_transform(
        preprocess_cfg.size,
        is_train=False,
        mean=preprocess_cfg.mean,
        std=preprocess_cfg.std,
        resize_mode=preprocess_cfg.resize_mode,
        interpolation=preprocess_cfg.interpolation,
    )

    def tokenize(texts: list[str]) -> dict[str, torch.Tensor]:
        encoded = processor.tokenizer(
            list(texts), padding=True, truncation=True, max_length=BLIP_MAX_TEXT_LENGTH, return_tensors="pt"
        )
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def encode_image(images: torch.Tensor) -> torch.Tensor:
        hidden = model.vision_model(pixel_values=images.to(device=model_device(model), dtype=dtype)).last_hidden_state
        return model.vision_proj(hidden[:, 0, :])

    def encode_text(tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = model.text_encoder(
            input_ids=tokens["input_ids"].to(model_device(model)),
            attention_mask=tokens["attention_mask"].to(model_device(model)),
        ).last_hidden_state
        return model.text_proj(hidden[:, 0, :])

    info = {
        "loader": "transformers",
        "arch": type(model).__name__,
        "tag": spec.source,
        "seed": seed,
        "precision": precision,
        "image_size": preprocess_cfg.size,
        "num_params": sum(p.numel() for p in model.parameters()),
    }
    return Backbone(
        spec=name,
        model=model,
        visual=model.vision_model,
        preprocess_cfg=preprocess_cfg,
        preprocess=preprocess,
        tokenizer=tokenize,
        image_encoder=encode_image,
        text_encoder=encode_text,
        family="blip",
        info=info,
    )
