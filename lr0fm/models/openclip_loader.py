"""Backbones built with open_clip: pretrained tags, local checkpoints, model-config JSONs, hub/local dirs."""

from __future__ import annotations

from typing import Any

import open_clip
import torch
from open_clip.transform import PreprocessCfg

from lr0fm.models.base import Backbone
from lr0fm.models.errors import weights_unavailable
from lr0fm.models.seeding import seeded
from lr0fm.models.specs import RANDOM_TAG, OpenClipSpec

#: Precisions accepted by open_clip's ``create_model``.
PRECISIONS = ("fp32", "fp16", "bf16", "pure_fp16", "pure_bf16")


def preprocess_config_from_open_clip(cfg: dict[str, Any]) -> PreprocessCfg:
    """open_clip's ``model.visual.preprocess_cfg`` dict as a ``PreprocessCfg`` with a square ``size`` (an int).

    Raises:
        ValueError: the configured input is not square (the LR protocol assumes square inputs).

    """
    size = cfg["size"]
    if isinstance(size, (tuple, list)):
        if size[0] != size[1]:
            raise ValueError(f"Non-square model input {tuple(size)} is not supported; expected a square one.")
        size = size[0]
    return PreprocessCfg(
        size=int(size),
        mean=tuple(float(v) for v in cfg["mean"]),
        std=tuple(float(v) for v in cfg["std"]),
        interpolation=str(cfg["interpolation"]),
        resize_mode=str(cfg["resize_mode"]),
        fill_color=int(cfg.get("fill_color", 0)),
    )


class OpenClipBackbone(Backbone):
    """An open_clip ``CLIP``/``CustomTextCLIP``/``CoCa`` model as a :class:`Backbone` (``model`` is the module).

    Args:
        spec: the spec string it was loaded from.
        model: the open_clip model.
        preprocess_cfg: its preprocessing (the evaluation transform is built from it).
        tokenizer: its tokenizer.
        input_dtype: dtype images are cast to (open_clip's ``get_input_dtype`` of the precision).
        info: free-form metadata.

    """

    family = "openclip"

    def __init__(
        self,
        spec: str,
        model: torch.nn.Module,
        preprocess_cfg: PreprocessCfg,
        tokenizer: Any,
        input_dtype: torch.dtype | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(spec, preprocess_cfg, tokenizer, info)
        self.model = model
        self.input_dtype = input_dtype

    @property
    def visual(self) -> torch.nn.Module:
        """open_clip's vision tower."""
        return self.model.visual

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """``model.encode_image`` (unnormalised) on the backbone's device."""
        return self.model.encode_image(images.to(device=self.device, dtype=self.input_dtype), normalize=False)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """``model.encode_text`` (unnormalised) on the backbone's device."""
        return self.model.encode_text(tokens.to(self.device), normalize=False)


def _local_hint(spec: OpenClipSpec) -> str:
    arch = spec.model_name
    if spec.has_schema:
        return (
            "download the repository files (open_clip_config.json and the weights) to a directory and pass "
            "'local-dir:/that/dir'."
        )
    return f"pass '{arch}:/path/to/weights.safetensors' (or .bin/.pt), or set cache_dir to a filled cache."


def _create_model(spec: OpenClipSpec, device: str, precision: str, cache_dir: str | None) -> torch.nn.Module:
    """Create the open_clip model, turning download failures into an actionable error."""
    random_init = spec.tag == RANDOM_TAG and not spec.has_schema
    quick_gelu = False
    if spec.pretrained is not None and open_clip.is_pretrained_cfg(spec.model_name, spec.pretrained):
        tag_cfg = open_clip.get_pretrained_cfg(spec.model_name, spec.pretrained)
        # Weights trained with QuickGELU run with it: open_clip only warns when a tag that says so (DFN's
        # ``ViT-H-14:dfn5b``, MetaCLIP 2's ``ViT-H-14-worldwide:metaclip2_worldwide``) sits on a GELU architecture.
        quick_gelu = bool(tag_cfg.get("quick_gelu"))
        # Fetch the tagged weights first so an offline failure is reported as such, not as a model error.
        try:
            open_clip.download_pretrained(tag_cfg, cache_dir=cache_dir)
        except Exception as err:  # noqa: BLE001 - any download/cache failure means the same to the user
            raise weights_unavailable(f"{spec.model_name}:{spec.pretrained}", err, _local_hint(spec)) from err
    try:
        return open_clip.create_model(
            spec.model_name,
            pretrained=spec.pretrained,
            precision=precision,
            device=device,
            cache_dir=cache_dir,
            force_quick_gelu=quick_gelu,
            pretrained_text=not random_init,
            require_pretrained=not random_init,
        )
    except RuntimeError as err:
        if spec.has_schema:
            raise weights_unavailable(spec.model_name, err, _local_hint(spec)) from err
        raise


def load_open_clip(
    spec: OpenClipSpec,
    *,
    name: str,
    device: str = "cpu",
    seed: int | None = None,
    cache_dir: str | None = None,
    precision: str = "fp32",
) -> Backbone:
    """Build an open_clip model with its own validation transform and tokenizer.

    The preprocessing is the one open_clip attaches to the model (``model.visual.preprocess_cfg``: the
    pretrained tag's or ``open_clip_config.json``'s settings merged over open_clip's defaults), so
    ``preprocess`` equals the ``preprocess_val`` of ``open_clip.create_model_and_transforms``.

    Args:
        spec: parsed spec.
        name: the spec string as given by the user (kept as ``Backbone.spec``).
        device: torch device.
        seed: seeds the random initialisation (used for ``ARCH:none``; defaults to 0 there).
        cache_dir: download cache for pretrained weights.
        precision: one of :data:`PRECISIONS`.

    Raises:
        ValueError: unknown precision.
        WeightsUnavailableError: the weights could not be downloaded or found in the cache.

    """
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; expected one of {PRECISIONS}.")
    if spec.tag == RANDOM_TAG and not spec.has_schema and seed is None:
        seed = 0
    # The tokenizer first: it is cheap and, for hub tokenizers, fails fast when offline.
    try:
        tokenizer = open_clip.get_tokenizer(spec.model_name, cache_dir=cache_dir)
    except OSError as err:
        hint = (
            "fill the Hugging Face cache (HF_HOME) with the tokenizer on a connected machine, or use "
            "'local-dir:/dir' with the tokenizer files next to open_clip_config.json."
        )
        raise weights_unavailable(f"{name} (tokenizer)", err, hint) from err
    with seeded(seed):
        model = _create_model(spec, device, precision, cache_dir)
    model.eval()
    info = {
        "loader": "open_clip",
        "arch": None if spec.has_schema else spec.model_name,
        "tag": spec.tag,
        "seed": seed,
        "precision": precision,
    }
    backbone = OpenClipBackbone(
        name,
        model,
        preprocess_config_from_open_clip(dict(model.visual.preprocess_cfg)),
        tokenizer,
        input_dtype=open_clip.get_input_dtype(precision),
        info=info,
    )
    backbone.info.update(image_size=backbone.image_size, num_params=backbone.num_params)
    return backbone.to(device)
