"""EVA-CLIP-8B and EVA-CLIP-18B: open_clip models with a timm ``Eva`` trunk, loading the original ``.pt`` files.

Spec form ``eva-clip:ARCH[:WEIGHTS]``:

* ``ARCH`` is ``EVA-CLIP-8B`` or ``EVA-CLIP-18B`` (open_clip model configs packaged in
  ``lr0fm/resources/backbones/open_clip_configs/``) or the path of another open_clip config JSON whose
  ``vision_cfg.timm_model_name`` is an EVA trunk registered with :func:`register_eva_trunk`.
* ``WEIGHTS`` is the path of an original EVA-CLIP checkpoint (the authors' ``eva_clip`` state dict:
  ``visual.*``, ``text.*``, ``logit_scale``), ``none`` for random weights (seeded), or omitted for the
  published file on the Hugging Face hub (:data:`EVA_CLIP_HUB_FILES`, downloaded into ``cache_dir``):
  ``BAAI/EVA-CLIP-8B`` ``EVA_CLIP_8B_psz14_s9B.pt`` (32.9 GB) and ``BAAI/EVA-CLIP-18B``
  ``EVA_CLIP_18B_psz14_s6B.fp16.pt`` (36.7 GB), as in ``EVA-CLIP-18B/README.md`` of baaivision/EVA.

Architecture. The vision tower of the authors' ``EVA-CLIP-18B/shinji/eva_clip/eva_vit_model.py``
(``EVAVisionTransformer``: class token, absolute position embedding, blocks of ``norm1``/``attn`` (fused ``qkv``
without bias)/``norm2``/``mlp`` (``fc1``/GELU/``fc2``), residual post-norm, final ``norm`` on the class token,
``head`` without bias as the projection) is timm's :class:`timm.models.eva.Eva` with ``use_post_norm=True``,
``qkv_bias=False``, RMS norms and ``global_pool="token"``; timm has no 8B/18B sizes, so
:func:`register_eva_trunk` registers them (``eva_clip_8b_patch14_224``: width 4096, 32 blocks, 32 heads of 128,
MLP 5x; ``eva_clip_18b_patch14_224``: width 5120, 48 blocks, 40 heads of 128, MLP 5x). The text tower is
open_clip's ``TextTransformer`` (width 1280, 20 heads, 32 layers, context 77: the text encoder of
EVA02-CLIP-E/14+ the two models start from), held as ``text`` (``CustomTextCLIP``), so the original ``text.*``
keys load unchanged. The image projection is ``visual.head.proj`` (open_clip ``timm_proj="linear"``
without bias).

Key mapping (:func:`map_eva_clip_state_dict`): ``visual.head.*`` -> ``visual.head.proj.*``; every other
``visual.X`` -> ``visual.trunk.X`` with the renames of timm's ``checkpoint_filter_fn`` in ``timm/models/eva.py``
for EVA-CLIP layouts (``attn.inner_attn_ln`` -> ``attn.norm``, ``mlp.ffn_ln`` -> ``mlp.norm``, SwiGLU
``mlp.w1/w2/w3`` -> ``mlp.fc1_g/fc1_x/fc2``, ``q_bias``/``v_bias`` -> ``q_proj.bias``/``v_proj.bias`` for unfused
q/k/v); the fixed ``visual.rope.*`` and ``text.attn_mask`` buffers are dropped. The load is strict: a missing or
unexpected key is an error that names them.

Preprocessing is EVA-CLIP's evaluation transform (``eva_clip/transform.py``: resize the shorter side to 224
bicubic, centre crop, OpenAI CLIP mean/std), the tokenizer open_clip's ``SimpleTokenizer`` (context 77), as
``get_tokenizer("EVA-CLIP-8B")`` of the authors' ``eva_clip`` package. The authors' LR evaluation of these models
is ``EVA/EVA-CLIP-18B/shinji/resolution_zero_shot.py`` of shyammarjit/LR0.FM (protocol ``eva-clip-18b``).

Memory. Parameters (counted on the ``meta`` device from these configs): EVA-CLIP-8B about 8.2e9, EVA-CLIP-18B
about 18.3e9; weights alone need params x 4 bytes in fp32 (8B: 33 GB, 18B: 73 GB) and x 2 bytes in bf16/fp16
(8B: 16 GB, 18B: 37 GB), plus activations. Run them with ``--precision bf16`` (the whole model is cast, images
too); with a checkpoint the model is built directly on the target device in that dtype and the file is
memory-mapped, so host RAM holds neither an fp32 copy nor the whole file. In bf16 EVA-CLIP-8B fits one 40 GB GPU
and EVA-CLIP-18B one 80 GB GPU. Where one GPU is not enough (18B in fp32, or smaller cards), shard the model:
Lightning's ``FSDPStrategy`` for inference over several GPUs, or a device map (``accelerate``'s
``dispatch_model`` over the ``visual.trunk.blocks``); lr0fm does neither by itself.

Not verified here (no GPU, no network): loading the published files. The configs were reconstructed from the
published parameter counts and the authors' ``eva_vit_model.py`` because the EVA repository's
``model_configs/EVA-CLIP-8B.json``/``EVA-CLIP-18B.json`` were not available; a wrong width, depth or norm type
shows as a strict-load error naming the keys, but a pre-/post-norm mismatch would not, so compare the zero-shot
accuracy with the published one on first use.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.transform import PreprocessCfg

from lr0fm.models.base import Backbone, precision_dtype
from lr0fm.models.errors import weights_unavailable
from lr0fm.models.families import register_scheme
from lr0fm.models.openclip_loader import OpenClipBackbone
from lr0fm.models.seeding import seeded
from lr0fm.models.specs import RANDOM_TAG, SPEC_FORMS
from lr0fm.models.weights_files import read_original_state_dict

#: Packaged open_clip model configs of the EVA-CLIP family.
CONFIG_DIR = Path(__file__).resolve().parents[1] / "resources" / "backbones" / "open_clip_configs"

#: Architecture name -> (Hugging Face repo, original checkpoint file) as published in baaivision/EVA.
EVA_CLIP_HUB_FILES = {
    "EVA-CLIP-8B": ("BAAI/EVA-CLIP-8B", "EVA_CLIP_8B_psz14_s9B.pt"),
    "EVA-CLIP-18B": ("BAAI/EVA-CLIP-18B", "EVA_CLIP_18B_psz14_s6B.fp16.pt"),
}

#: timm ``Eva`` arguments of the EVA-CLIP trunks (see the module docstring for the sources).
EVA_TRUNKS: dict[str, dict[str, Any]] = {
    "eva_clip_8b_patch14_224": {
        "img_size": 224,
        "patch_size": 14,
        "embed_dim": 4096,
        "depth": 32,
        "num_heads": 32,
        "mlp_ratio": 5.0,
        "qkv_bias": False,
        "qkv_fused": True,
        "use_post_norm": True,
        "norm": "rms",
        "norm_eps": 1e-6,
    },
    "eva_clip_18b_patch14_224": {
        "img_size": 224,
        "patch_size": 14,
        "embed_dim": 5120,
        "depth": 48,
        "num_heads": 40,
        "mlp_ratio": 5.0,
        "qkv_bias": False,
        "qkv_fused": True,
        "use_post_norm": True,
        "norm": "rms",
        "norm_eps": 1e-6,
    },
}

#: What an EVA-CLIP checkpoint file holds (for messages).
EXPECTED_FILE = "an original EVA-CLIP state dict (visual.*, text.*, logit_scale)"
_SWIGLU_RENAMES = ((".mlp.w1.", ".mlp.fc1_g."), (".mlp.w2.", ".mlp.fc1_x."), (".mlp.w3.", ".mlp.fc2."))


def eva_trunk_args(name: str, **overrides: Any) -> dict[str, Any]:
    """The trunk arguments of a registered EVA-CLIP trunk, with ``overrides`` (e.g. a scaled-down copy).

    Raises:
        ValueError: ``name`` is not a known trunk.

    """
    if name not in EVA_TRUNKS:
        raise ValueError(f"Unknown EVA-CLIP trunk {name!r}; known: {sorted(EVA_TRUNKS)}.")
    return {**EVA_TRUNKS[name], **overrides}


def _eva_kwargs(args: dict[str, Any]) -> dict[str, Any]:
    """Turn trunk arguments (``norm``: ``"rms"``/``"layer"``, ``norm_eps``) into :class:`timm.models.eva.Eva` kwargs."""
    from timm.layers import LayerNorm, RmsNorm

    kwargs = dict(args)
    norm, eps = kwargs.pop("norm", "layer"), kwargs.pop("norm_eps", 1e-6)
    if norm not in ("rms", "layer"):
        raise ValueError(f"EVA trunk norm {norm!r} is not supported; expected 'rms' or 'layer'.")
    kwargs["norm_layer"] = partial(RmsNorm if norm == "rms" else LayerNorm, eps=eps)
    kwargs.setdefault("global_pool", "token")
    return kwargs


def register_eva_trunk(name: str, **args: Any) -> str:
    """Register a timm model ``name`` building :class:`timm.models.eva.Eva` from ``args`` (see :data:`EVA_TRUNKS`).

    open_clip configs then name it in ``vision_cfg.timm_model_name``. Registering the same name again replaces
    the earlier arguments.

    Returns:
        The registered name.

    """
    from timm.models import register_model
    from timm.models._builder import build_model_with_cfg
    from timm.models.eva import Eva, checkpoint_filter_fn

    EVA_TRUNKS[name] = dict(args)

    def entrypoint(pretrained: bool = False, **kwargs: Any) -> Any:
        for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
            kwargs.pop(key, None)
        model_args = {**_eva_kwargs(EVA_TRUNKS[name]), **kwargs}
        return build_model_with_cfg(
            Eva,
            name,
            pretrained=False,
            pretrained_cfg={"architecture": name, "num_classes": 0},
            pretrained_filter_fn=checkpoint_filter_fn,
            **model_args,
        )

    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__module__ = __name__
    import timm.models

    if name not in timm.models.list_models(name):
        register_model(entrypoint)
    return name


for _name in tuple(EVA_TRUNKS):
    register_eva_trunk(_name, **EVA_TRUNKS[_name])


def map_eva_clip_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map an original EVA-CLIP state dict (the authors' ``eva_clip`` layout) onto lr0fm's open_clip model.

    Args:
        state_dict: ``visual.*``, ``text.*`` and ``logit_scale`` tensors; a ``module``/``state_dict``/``model``
            wrapper and a ``module.`` prefix are removed.

    Returns:
        The state dict for the ``CustomTextCLIP`` with the timm trunk (see the module docstring).

    """
    for wrapper in ("module", "state_dict", "model"):
        if isinstance(state_dict.get(wrapper), dict):
            state_dict = state_dict[wrapper]
    unfused = any(key.endswith(".attn.q_proj.weight") for key in state_dict)
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        if key.startswith("visual."):
            sub = key.removeprefix("visual.")
            if sub.startswith("rope.") or ".rope." in sub:
                continue  # fixed rotary tables; timm computes its own
            if sub.startswith("head."):
                mapped["visual.head.proj." + sub.removeprefix("head.")] = value
                continue
            sub = sub.replace(".attn.inner_attn_ln.", ".attn.norm.").replace(".mlp.ffn_ln.", ".mlp.norm.")
            for old, new in _SWIGLU_RENAMES:
                sub = sub.replace(old, new)
            if unfused:
                sub = re.sub(r"\.attn\.([qv])_bias$", r".attn.\1_proj.bias", sub)
            mapped["visual.trunk." + sub] = value
        elif key == "text.attn_mask":
            continue  # causal mask buffer, rebuilt by open_clip
        else:
            mapped[key] = value
    return mapped


def eva_clip_preprocess_config(image_size: int) -> PreprocessCfg:
    """EVA-CLIP's evaluation transform: shorter side to ``image_size`` bicubic, centre crop, OpenAI mean/std."""
    return PreprocessCfg(
        size=int(image_size),
        mean=tuple(OPENAI_DATASET_MEAN),
        std=tuple(OPENAI_DATASET_STD),
        interpolation="bicubic",
        resize_mode="shortest",
    )


def _read_config(arch: str) -> tuple[str, dict[str, Any]]:
    """Return (name, open_clip config) for a packaged architecture name or a config JSON path."""
    path = CONFIG_DIR / f"{arch}.json" if not arch.lower().endswith(".json") else Path(arch).expanduser()
    if not path.is_file():
        if arch.lower().endswith(".json"):
            raise FileNotFoundError(f"EVA-CLIP model config {arch!r} does not exist.")
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.json"))
        raise ValueError(
            f"Unknown EVA-CLIP architecture {arch!r}; expected one of {known} or a config .json path. {SPEC_FORMS}"
        )
    config = json.loads(path.read_text(encoding="utf-8"))
    trunk = config.get("vision_cfg", {}).get("timm_model_name")
    if trunk not in EVA_TRUNKS:
        raise ValueError(
            f"EVA-CLIP config {str(path)!r} names timm trunk {trunk!r}, which is not a registered EVA trunk "
            f"({sorted(EVA_TRUNKS)}); register it with lr0fm.models.eva_clip_loader.register_eva_trunk."
        )
    return path.stem, config


def split_eva_clip_spec(rest: str) -> tuple[str, str | None]:
    """Split the part after ``eva-clip:`` into (architecture or config path, weights or ``None``)."""
    head, sep, weights = rest.partition(".json:")
    if sep:
        return head + ".json", weights or None
    arch, _, weights = rest.partition(":")
    return arch, weights or None


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def build_eva_clip(config: dict[str, Any], *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    """Build the open_clip ``CustomTextCLIP`` of an EVA-CLIP config on ``device`` (``"meta"`` allocates nothing)."""
    from open_clip.model import CustomTextCLIP

    kwargs = {key: value for key, value in config.items() if key != "custom_text"}
    with torch.device(device), _default_dtype(dtype):
        return CustomTextCLIP(**kwargs)


def _fetch_weights(arch: str, cache_dir: str | None) -> str:
    if arch not in EVA_CLIP_HUB_FILES:
        raise ValueError(f"No published weights are known for {arch!r}; pass 'eva-clip:{arch}:/path/to/weights.pt'.")
    repo, filename = EVA_CLIP_HUB_FILES[arch]
    try:
        from huggingface_hub import hf_hub_download

        return hf_hub_download(repo, filename, cache_dir=cache_dir)
    except Exception as err:  # noqa: BLE001 - any download/cache failure means the same to the user
        hint = f"download {filename} from https://huggingface.co/{repo} and pass 'eva-clip:{arch}:/path/to/{filename}'."
        raise weights_unavailable(f"eva-clip:{arch}", err, hint) from err


def load_eva_clip_weights(model: torch.nn.Module, path: str) -> None:
    """Load an original EVA-CLIP checkpoint into ``model`` (strict, through :func:`map_eva_clip_state_dict`).

    Raises:
        ValueError: keys of the model are missing from the file, or the file has keys the model lacks, or a
            tensor's shape differs (the message names them).

    """
    state = map_eva_clip_state_dict(read_original_state_dict(path, expected=EXPECTED_FILE, mmap=True))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong:
        shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}" for k in wrong[:5]]
        raise ValueError(
            f"{path!r} does not match this EVA-CLIP architecture: missing {missing[:8]} ({len(missing)}), "
            f"unexpected {unexpected[:8]} ({len(unexpected)}), shape mismatches {shapes} ({len(wrong)}). "
            f"Expected an original EVA-CLIP state dict (visual.*, text.*, logit_scale) of the same model."
        )
    model.load_state_dict(state, strict=True)


@register_scheme("eva-clip")
def load_eva_clip(
    rest: str,
    *,
    name: str,
    device: str = "cpu",
    seed: int | None = None,
    cache_dir: str | None = None,
    precision: str = "fp32",
) -> Backbone:
    """Load EVA-CLIP-8B/-18B (or a config of the same layout) from a spec ``eva-clip:ARCH[:WEIGHTS]``.

    Args:
        rest: the part after ``eva-clip:``.
        name: the spec string as given by the user.
        device: torch device.
        seed: seeds random weights (``WEIGHTS`` = ``none``; 0 when not given).
        cache_dir: Hugging Face download cache for the published files.
        precision: ``"fp32"``, ``"fp16"`` or ``"bf16"`` (the whole model and its inputs are cast).

    Raises:
        ValueError: unknown architecture or precision, or a checkpoint that does not match it.
        FileNotFoundError: a config or checkpoint path that does not exist.
        WeightsUnavailableError: the published file could not be downloaded or found in the cache.

    """
    dtype = precision_dtype(precision, "EVA-CLIP")
    arch, weights = split_eva_clip_spec(rest)
    if not arch:
        raise ValueError(f"Empty architecture after 'eva-clip:' in spec {name!r}. {SPEC_FORMS}")
    arch_name, config = _read_config(arch)
    random_init = weights is not None and weights.lower() == RANDOM_TAG
    if random_init:
        seed = 0 if seed is None else seed
        with seeded(seed):
            model = build_eva_clip(config)
        model = model.to(device=device, dtype=dtype)
    else:
        path = _fetch_weights(arch_name, cache_dir) if weights is None else str(Path(weights).expanduser())
        if not Path(path).is_file():
            raise FileNotFoundError(
                f"EVA-CLIP checkpoint {weights!r} in spec {name!r} does not exist; expected an original EVA-CLIP "
                f".pt state dict (e.g. {EVA_CLIP_HUB_FILES['EVA-CLIP-8B'][1]})."
            )
        model = build_eva_clip(config, device=device, dtype=dtype)
        load_eva_clip_weights(model, path)
    model.eval()
    from open_clip.tokenizer import SimpleTokenizer

    tokenizer = SimpleTokenizer(context_length=int(config["text_cfg"].get("context_length", 77)))
    image_size = int(config["vision_cfg"].get("image_size", 224))
    info = {
        "loader": "eva-clip",
        "arch": arch_name,
        "tag": RANDOM_TAG if random_init else (weights or "/".join(EVA_CLIP_HUB_FILES[arch_name])),
        "seed": seed,
        "precision": precision,
    }
    backbone = OpenClipBackbone(name, model, eva_clip_preprocess_config(image_size), tokenizer, dtype, info)
    backbone.info.update(image_size=backbone.image_size, num_params=backbone.num_params)
    return backbone.to(device)
