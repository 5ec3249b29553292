"""The shipped tiny CLIP as an lr0fm :class:`~lr0fm.models.base.Backbone` (``toyclip``, family ``"toy"``)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from lr0fm.models.base import Backbone
from lr0fm.models.openclip_loader import OpenClipBackbone, preprocess_config_from_open_clip
from lr0fm.toy.pretrain import CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE, build_model
from lr0fm.toy.tokenizer import ToyTokenizer


class ToyBackbone(OpenClipBackbone):
    """``toyclip``: an open_clip ``CLIP`` with the toy world's word-level tokenizer."""

    family = "toy"


#: Folder of the shipped weights (package data).
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "resources" / "toyclip"
#: Shipped LR-TK0 tokens for ``toyclip``: the export of ``lr0fm fit --config toy`` (seed 0; ``make demo`` applies
#: them; ``tests/test_lrtk0_train_toy.py`` retrains and compares).
SHIPPED_TOKENS = SHIPPED_DIR / "toyclip_lr_tokens.safetensors"
#: Shipped toy SR front-end (``--sr``): a Real-ESRGAN Compact x4 trained on toy images by
#: ``benchmarks/train_toy_sr.py``.
SHIPPED_SR = SHIPPED_DIR / "toy_sr_compact_x4.safetensors"


def load_toyclip(device: str | torch.device = "cpu", weights_dir: str | Path | None = None) -> Backbone:
    """Load the tiny CLIP pre-trained in the toy world.

    Args:
        device: torch device to put the model on.
        weights_dir: folder holding ``toyclip.safetensors``, ``toyclip_config.json`` and
            ``toyclip_tokenizer.json`` (as written by ``lr0fm toy pretrain``); ``None``: the shipped ones.

    Returns:
        A frozen-in-eval-mode :class:`Backbone` with the model's own preprocessing and word-level tokenizer.

    Raises:
        FileNotFoundError: when a file of the folder is missing (the message names it).

    """
    folder = Path(weights_dir) if weights_dir is not None else SHIPPED_DIR
    missing = [f for f in (WEIGHTS_FILE, CONFIG_FILE, TOKENIZER_FILE) if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"toyclip folder {str(folder)!r} lacks {', '.join(missing)}; expected {WEIGHTS_FILE}, "
            f"{CONFIG_FILE} and {TOKENIZER_FILE} as written by `lr0fm toy pretrain --output DIR`"
        )
    config = json.loads((folder / CONFIG_FILE).read_text())
    tokenizer = ToyTokenizer.load(folder / TOKENIZER_FILE)
    model = build_model(config["model_cfg"], tokenizer.vocab_size)
    model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    model.to(device).eval()
    return ToyBackbone(
        "toyclip" if weights_dir is None else f"toyclip:{folder}",
        model,
        preprocess_config_from_open_clip(config["preprocess_cfg"]),
        tokenizer,
        info={"weights_dir": str(folder), "recipe": config.get("recipe", {})},
    ).to(device)
