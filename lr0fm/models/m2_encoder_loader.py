"""M²-Encoder (0.4B, 1B, 10B): Ant Group's bilingual BEiT-3-style encoders, loading the original checkpoint files.

Spec form ``m2-encoder:ARCH[:WEIGHTS][?tokenizer=SP_MODEL]``:

* ``ARCH``: ``M2-Encoder-0.4B``, ``M2-Encoder-1B`` or ``M2-Encoder-10B`` (:data:`M2_ARCHS`, translated from
  ``prj/M2_Encoder/configs/Encoder_{0.4B,1B,10B}.json`` of alipay/Ant-Multi-Modal-Framework), or the path of
  a config ``.json`` in that same format (``encoder_embed_dim``, ``encoder_layers``, ``beit3_vl_layers``,
  ``beit_version``, ``out_embed_dim``, ``vocab_size``, ...; the defaults are ``vlmo/config.py``'s).
* ``WEIGHTS``: the original checkpoint (``m2_encoder_0.4B.ckpt``, ``m2_encoder_1B.ckpt``,
  ``m2_encoder_10B.ckpt``: the ``model_file`` of those configs, published on ModelScope as
  ``M2Cognition/M2-Encoder``, ``M2Cognition/M2_Encoder_Large``, ``M2Cognition/M2_Encoder_Huge``); a bare
  file name is looked up in ``$LR0FM_WEIGHTS``, then the current directory. ``none`` builds random weights
  (seeded). Omitted: the published file name is looked up the same way, and where it is not there and the
  ``modelscope`` package is installed, it is downloaded as Ant's ``vlmo/utils/beit_utils.py:
  load_from_config`` does (``snapshot_download(model_id)``); otherwise the error names the file to fetch.
* ``tokenizer``: the GLM SentencePiece model ``sp.model`` (a file, or a folder holding it) of
  ``prj/M2_Encoder/vlmo/tokenizer/``. Default: ``sp.model`` beside the checkpoint, then a bare ``sp.model``
  looked up in ``$LR0FM_WEIGHTS`` (random weights need the option or ``$LR0FM_WEIGHTS``).

Example: ``m2-encoder:M2-Encoder-0.4B:m2_encoder_0.4B.ckpt?tokenizer=/weights/M2_Encoder/sp.model``.

Architecture: :mod:`lr0fm.models.m2_encoder_model` (Ant's multiway BEiT-3, original key names); tokenizer:
:mod:`lr0fm.models.glm_tokenizer` (Ant's GLM SentencePiece tokenizer).

Preprocessing: Ant's ``square_transform`` (``vlmo/transforms/square_transform.py``), ``Resize((224, 224),
BICUBIC)`` + ``ToTensor`` and no normalisation (the LR0.FM chain ``m2-encoder``, ``M2_Encoder/data/__init__.py``);
the model normalises inside :meth:`M2EncoderBackbone.encode_image` as ``infer_image`` does.

LR tokens: :attr:`M2EncoderBackbone.visual` is a view of the image path (:class:`M2VisionTower`) whose
``blocks`` wrap the shared multiway layers, so tokens hooked on them act on images only, never on text that
runs through the same layers. The tower adapter is ``"m2_encoder"`` in :mod:`lr0fm.lrtk0.towers`.

Memory and precision. Parameters (counted on the ``meta`` device): 0.4B about 0.26e9 (the 9+3-layer width-768
model of ``Encoder_0.4B.json``; the name is Ant's), 1B about 0.72e9, 10B about 10.1e9. Ant's executor
(``m2_encoder.py``), which the LR0.FM authors' script calls, runs the model in fp32 whatever the config's
``precision``: the 10B then needs 40 GB for the weights alone (one 80 GB GPU). ``--precision bf16`` halves that
to 20 GB (weights and inputs are cast; the model is built directly on the target device in that dtype and the
file is memory-mapped), at the cost of bf16 rounding the authors' numbers do not have.

Not verified here (no network, no GPU): loading the published files. The key layout and shapes are those of
Ant's module tree; a wrong guess shows as a strict-load error naming the keys. Compare the zero-shot accuracy
with the published one on first use.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from open_clip.transform import PreprocessCfg
from torch import nn

from lr0fm.models.base import Backbone, precision_dtype
from lr0fm.models.errors import weights_unavailable
from lr0fm.models.families import register_scheme
from lr0fm.models.glm_tokenizer import SP_MODEL_URL, GlmTokenizer
from lr0fm.models.m2_encoder_model import M2EncoderModel, M2VisionTower
from lr0fm.models.seeding import seeded
from lr0fm.models.specs import RANDOM_TAG, SPEC_FORMS
from lr0fm.models.weights_files import WEIGHTS_ENV, read_original_state_dict, resolve_weights_file

#: What an M²-Encoder checkpoint file holds (for messages).
EXPECTED_FILE = "an original M2-Encoder checkpoint (backbone.*, backbone_vl.*, itc_*_proj.*, logit_scale)"
#: Checkpoint parts that only training uses (dropped by prefix).
TRAINING_ONLY = ("visual_tokenizer.", "itc_teacher")

#: Architecture name -> the fields of Ant's ``configs/Encoder_*.json`` (with ModelScope id and file).
M2_ARCHS: dict[str, dict[str, Any]] = {
    "M2-Encoder-0.4B": {
        "encoder_layers": 9,
        "beit3_vl_layers": 3,
        "vocab_size": 115244,
        "modelscope": {"model_id": "M2Cognition/M2-Encoder"},
        "model_file": "m2_encoder_0.4B.ckpt",
    },
    "M2-Encoder-1B": {
        "beit_version": "large",
        "encoder_embed_dim": 1024,
        "out_embed_dim": 1024,
        "encoder_layers": 21,
        "beit3_vl_layers": 3,
        "image_size": 224,
        "vocab_size": 115244,
        "modelscope": {"model_id": "M2Cognition/M2_Encoder_Large"},
        "model_file": "m2_encoder_1B.ckpt",
    },
    "M2-Encoder-10B": {
        "beit_version": "huge",
        "encoder_embed_dim": 4096,
        "out_embed_dim": 1024,
        "encoder_layers": 21,
        "beit3_vl_layers": 3,
        "image_size": 224,
        "vocab_size": 115244,
        "modelscope": {"model_id": "M2Cognition/M2_Encoder_Huge"},
        "model_file": "m2_encoder_10B.ckpt",
    },
}


# ---------------------------------------------------------------------------------------------- checkpoints


class _Opaque(dict):
    """Stand-in for a class pickled next to the tensors (Lightning's hyper-parameters): records, runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def append(self, item: Any) -> None:
        """Accept list items (``APPENDS``)."""

    def extend(self, items: Any) -> None:
        """Accept list items (``APPENDS``)."""


def read_m2_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read an M²-Encoder checkpoint with ``torch.load(weights_only=True)``, also a Lightning ``.ckpt``.

    A Lightning/DeepSpeed checkpoint pickles objects besides the tensors (hyper-parameters); those classes are
    read as inert :class:`_Opaque` stand-ins instead of being imported, so no code from the file runs.

    Returns:
        The ``state_dict``/``module``/``model`` entry (the first present, as Ant's loader) or the file's mapping.

    Raises:
        ValueError: the file holds no state dict of tensors.

    """
    try:
        state: Any = read_original_state_dict(path, expected=EXPECTED_FILE, mmap=True)
    except ValueError as plain:
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
            stand_ins = [(type(name.rpartition(".")[2], (_Opaque,), {}), name) for name in unsafe]
            with torch.serialization.safe_globals(stand_ins):
                state = torch.load(str(path), map_location="cpu", mmap=True, weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unpickling failure means the same to the user
            raise plain from err
    for key in ("state_dict", "module", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
            break
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)} if isinstance(state, Mapping) else {}
    if not tensors:
        raise ValueError(f"{str(path)!r} holds no state dict of tensors; expected {EXPECTED_FILE}.")
    return tensors


def resize_vision_positions(table: torch.Tensor, rows: int) -> torch.Tensor:
    """Fit the vision position table to ``rows`` (``3 + g*g``) as Ant's ``convert_pl_ckpt`` ("area" resize)."""
    if table.shape[0] == rows:
        return table
    if table.shape[0] > rows:
        return table[:rows]
    old, new = int(math.isqrt(table.shape[0] - 3)), int(math.isqrt(rows - 3))
    patches = table[3:].float().reshape(1, old, old, -1).permute(0, 3, 1, 2)
    patches = F.interpolate(patches, size=(new, new), mode="area").to(table.dtype)
    return torch.cat([table[:3], patches.permute(0, 2, 3, 1).reshape(new * new, -1)])


def map_m2_state_dict(state: Mapping[str, torch.Tensor], model: M2EncoderModel) -> dict[str, torch.Tensor]:
    """Ant's state dict -> :class:`M2EncoderModel`'s: drop the DeepSpeed prefix and training-only parts.

    The names are unchanged otherwise (the model uses Ant's); the vision position table is resized to the
    model's grid where it differs, as Ant's loader does.
    """
    mapped = {}
    for key, value in state.items():
        key = key.removeprefix("_forward_module.")
        if not key.startswith(TRAINING_ONLY):
            mapped[key] = value
    positions = "backbone.encoder.embed_positions.A.weight"
    if positions in mapped:
        rows = model.backbone.encoder.embed_positions.A.num_embeddings
        mapped[positions] = resize_vision_positions(mapped[positions], rows)
    return mapped


def load_m2_weights(model: M2EncoderModel, state: Mapping[str, torch.Tensor], path: str) -> None:
    """Load an original state dict strictly.

    Raises:
        ValueError: missing or unexpected keys, or shapes that differ (the message names them).

    """
    state = map_m2_state_dict(state, model)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong:
        shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}" for k in wrong[:5]]
        raise ValueError(
            f"{path!r} does not match this M2-Encoder architecture: missing {missing[:8]} ({len(missing)}), "
            f"unexpected {unexpected[:8]} ({len(unexpected)}), shape mismatches {shapes} ({len(wrong)}). "
            f"Expected {EXPECTED_FILE} of the same model size."
        )
    model.load_state_dict(state, strict=True)


# ---------------------------------------------------------------------------------------------- backbone


def m2_preprocess_config(image_size: int = 224) -> PreprocessCfg:
    """Ant's ``square_transform``: bicubic ``Resize((S, S))`` and ``ToTensor`` (no normalisation)."""
    return PreprocessCfg(
        size=int(image_size), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), interpolation="bicubic", resize_mode="squash"
    )


class M2EncoderBackbone(Backbone):
    """M²-Encoder's ``cls_vlffn_feats`` as a :class:`Backbone` (``model`` is :class:`M2EncoderModel`)."""

    family = "m2-encoder"

    def __init__(
        self,
        spec: str,
        model: M2EncoderModel,
        preprocess_cfg: PreprocessCfg,
        tokenizer: GlmTokenizer,
        dtype: torch.dtype = torch.float32,
        info: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(spec, preprocess_cfg, tokenizer, info)
        self.model = model
        self.dtype = dtype
        self.__dict__["_tower"] = M2VisionTower(model)  # a view of self.model, not a second copy in state_dict

    @property
    def visual(self) -> nn.Module:
        """The image path (:class:`M2VisionTower`; LR tokens attach here)."""
        return self._tower

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Image embedding (unnormalised) of ``ToTensor`` images in ``[0, 1]`` (normalised here, as Ant does)."""
        pixels = images.to(device=self.device, dtype=self.dtype)
        return self._tower((pixels - 0.5) / 0.5)

    def encode_text(self, tokens: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Text embedding (unnormalised) of :class:`GlmTokenizer` output."""
        return self.model.encode_text(tokens["input_ids"].to(self.device), tokens["attention_mask"].to(self.device))


def split_m2_spec(rest: str) -> tuple[str, str | None, dict[str, str]]:
    """Split ``ARCH[:WEIGHTS][?tokenizer=...]`` into (architecture or config path, weights or ``None``, options).

    Raises:
        ValueError: an empty architecture, or a malformed or unknown option.

    """
    body, sep, query = rest.partition("?")
    options: dict[str, str] = {}
    if sep:
        for item in query.split("&"):
            key, eq, value = item.partition("=")
            if not eq or not key or not value:
                raise ValueError(f"Malformed option {item!r} in 'm2-encoder:{rest}'; expected KEY=VALUE.")
            if key != "tokenizer":
                raise ValueError(f"Unknown option {key!r} in 'm2-encoder:{rest}'; known: 'tokenizer'.")
            options[key] = value
    head, json_sep, weights = body.partition(".json:")
    if json_sep:
        arch = head + ".json"
    else:
        arch, _, weights = body.partition(":")
    if not arch:
        raise ValueError(f"Empty architecture in spec 'm2-encoder:{rest}'. {SPEC_FORMS}")
    return arch, weights or None, options


def read_m2_config(arch: str) -> tuple[str, dict[str, Any]]:
    """(name, Ant-format config) of a packaged architecture or a config ``.json`` path.

    Raises:
        ValueError: unknown architecture name, or a file that is not a JSON object.
        FileNotFoundError: the ``.json`` does not exist.

    """
    if not arch.lower().endswith(".json"):
        if arch not in M2_ARCHS:
            from lr0fm.catalog import did_you_mean

            raise ValueError(
                f"Unknown M2-Encoder architecture {arch!r}.{did_you_mean(arch, list(M2_ARCHS))} Expected one of "
                f"{sorted(M2_ARCHS)} or an Ant config .json (prj/M2_Encoder/configs/Encoder_*.json). {SPEC_FORMS}"
            )
        return arch, dict(M2_ARCHS[arch])
    path = Path(arch).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"M2-Encoder config {arch!r} does not exist; expected an Ant configs/Encoder_*.json.")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"M2-Encoder config {arch!r} is not valid JSON: {err}") from err
    if not isinstance(config, dict):
        raise ValueError(f"M2-Encoder config {arch!r} is not a JSON object like configs/Encoder_0.4B.json.")
    return path.stem, config


def published_url(filename: str) -> str | None:
    """The ModelScope page of one of Ant's checkpoint files (by file name), else ``None``."""
    for config in M2_ARCHS.values():
        if config["model_file"] == Path(filename).name:
            return f"https://modelscope.cn/models/{config['modelscope']['model_id']}/files"
    return None


def _published_file(config: Mapping[str, Any], cache_dir: str | None) -> Path:
    """The config's ``model_file``: in ``$LR0FM_WEIGHTS``/cwd, else from ModelScope when ``modelscope`` is there."""
    filename, model_id = config.get("model_file"), config.get("modelscope", {}).get("model_id")
    if not filename or not model_id:
        raise ValueError("This M2-Encoder config names no published file; pass 'm2-encoder:ARCH:/path/to/file.ckpt'.")
    url = f"https://modelscope.cn/models/{model_id}/files"
    try:
        return resolve_weights_file(filename, url=url)
    except FileNotFoundError as missing:
        try:
            from modelscope import snapshot_download
        except ImportError:
            raise missing from None
        try:
            return Path(snapshot_download(model_id, cache_dir=cache_dir)) / filename
        except Exception as err:  # noqa: BLE001 - any download/cache failure means the same to the user
            hint = f"download {filename} from {url} into a folder listed in ${WEIGHTS_ENV}."
            raise weights_unavailable(f"modelscope:{model_id}/{filename}", err, hint) from err


def find_sp_model(option: str | None, checkpoint: Path | None) -> Path:
    """The tokenizer's ``sp.model``: the option (file or folder), beside the checkpoint, or in ``$LR0FM_WEIGHTS``.

    Raises:
        FileNotFoundError: nowhere; the message says where it looked and where to get it.

    """
    if option is not None:
        path = Path(option).expanduser()
        path = path / "sp.model" if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(
                f"M2-Encoder tokenizer {option!r} does not exist; expected the GLM sp.model (or its folder) from "
                f"{SP_MODEL_URL}."
            )
        return path
    if checkpoint is not None and (checkpoint.parent / "sp.model").is_file():
        return checkpoint.parent / "sp.model"
    try:
        return resolve_weights_file("sp.model", url=SP_MODEL_URL)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"{err} M2-Encoder's tokenizer is sp.model: put it beside the checkpoint or add "
            "'?tokenizer=/path/sp.model' to the m2-encoder: spec."
        ) from None


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def build_m2_encoder(
    config: Mapping[str, Any], *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> M2EncoderModel:
    """Build :class:`M2EncoderModel` on ``device`` in ``dtype`` (``"meta"`` allocates nothing)."""
    with torch.device(device), _default_dtype(dtype):
        return M2EncoderModel(config)


@register_scheme("m2-encoder")
def load_m2_encoder(
    rest: str,
    *,
    name: str,
    device: str = "cpu",
    seed: int | None = None,
    cache_dir: str | None = None,
    precision: str = "fp32",
) -> Backbone:
    """Load M²-Encoder from a spec ``m2-encoder:ARCH[:WEIGHTS][?tokenizer=SP_MODEL]`` (module docstring).

    Args:
        rest: the part after ``m2-encoder:``.
        name: the spec string as given by the user.
        device: torch device.
        seed: seeds random weights (``WEIGHTS`` = ``none``; 0 when not given).
        cache_dir: ModelScope download cache for the published files.
        precision: ``"fp32"``, ``"fp16"`` or ``"bf16"`` (the whole model and its inputs are cast).

    Raises:
        ValueError: a malformed spec, unknown architecture or precision, or a checkpoint or tokenizer that does
            not match the architecture.
        FileNotFoundError: a config, checkpoint or tokenizer that is not there.
        WeightsUnavailableError: the published file could not be downloaded from ModelScope.

    """
    dtype = precision_dtype(precision, "M2-Encoder")
    arch, weights, options = split_m2_spec(rest)
    arch_name, config = read_m2_config(arch)
    random_init = weights is not None and weights.lower() == RANDOM_TAG
    checkpoint = None
    if random_init:
        seed = 0 if seed is None else seed
        with seeded(seed):
            model = build_m2_encoder(config)
        model = model.to(device=device, dtype=dtype)
    else:
        if weights is None:
            checkpoint = _published_file(config, cache_dir)
        else:
            checkpoint = resolve_weights_file(weights, url=published_url(weights))
        state = read_m2_checkpoint(checkpoint)
        model = build_m2_encoder(config, device=device, dtype=dtype)
        load_m2_weights(model, state, str(checkpoint))
    model.eval()
    tokenizer = GlmTokenizer(find_sp_model(options.get("tokenizer"), checkpoint), model.dims["max_text_len"])
    rows = model.backbone.text_embed.num_embeddings
    if len(tokenizer) > rows:
        raise ValueError(
            f"M2-Encoder tokenizer {tokenizer.model_file!r} has {len(tokenizer)} ids but the text embedding has "
            f"{rows} rows; expected the sp.model of prj/M2_Encoder/vlmo/tokenizer ({SP_MODEL_URL})."
        )
    info = {
        "loader": "m2-encoder",
        "arch": arch_name,
        "tag": RANDOM_TAG if random_init else str(checkpoint),
        "seed": seed,
        "precision": precision,
        "tokenizer": tokenizer.model_file,
    }
    backbone = M2EncoderBackbone(name, model, m2_preprocess_config(model.dims["image_size"]), tokenizer, dtype, info)
    backbone.info.update(image_size=backbone.image_size, num_params=backbone.num_params)
    return backbone.to(device)
