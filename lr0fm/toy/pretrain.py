"""Pre-training of the tiny CLIP (``toyclip``) on rendered (image, caption) pairs of the ``pretrain`` split.

``PretrainConfig`` holds the whole recipe (it mirrors ``configs/toy/pretrain.yaml``); :func:`pretrain`
runs it with Lightning on the CPU and writes ``toyclip.safetensors``, ``toyclip_config.json`` and
``toyclip_tokenizer.json`` into the output folder.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, IterableDataset

from lr0fm.atomic import atomic_path, write_text_atomic
from lr0fm.lrtk0.schedule import warmup_cosine
from lr0fm.toy.captions import compose_caption
from lr0fm.toy.pretrain_config import PretrainConfig
from lr0fm.toy.tokenizer import ToyTokenizer
from lr0fm.toy.world import NATIVE_SIZE, render_split

WEIGHTS_FILE = "toyclip.safetensors"
CONFIG_FILE = "toyclip_config.json"
TOKENIZER_FILE = "toyclip_tokenizer.json"

#: Normalisation the tiny CLIP is trained with (stored in the preprocess config next to the weights).
TOY_MEAN = (0.5, 0.5, 0.5)
TOY_STD = (0.3, 0.3, 0.3)


def build_model(model_cfg: dict[str, Any], vocab_size: int) -> open_clip.CLIP:
    """Build the (randomly initialised) open_clip CLIP of ``model_cfg`` for a tokenizer of ``vocab_size``."""
    cfg = json.loads(json.dumps(model_cfg))  # deep copy
    cfg["text_cfg"]["vocab_size"] = vocab_size
    return open_clip.CLIP(**cfg)


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [B,H,W,3] -> normalised float [B,3,H,W] with the toy mean/std."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(TOY_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(TOY_STD).view(1, 3, 1, 1)
    return (x - mean) / std


class CaptionedBatches(IterableDataset):
    """Endless deterministic stream of rendered ``(images, tokens)`` batches from the ``pretrain`` split.

    Batch ``k`` holds images ``k*B .. (k+1)*B-1`` of the split for world ``seed``; the caption of image ``i``
    is drawn from ``default_rng((seed, 7, i))``.
    """

    def __init__(self, tokenizer: ToyTokenizer, batch_size: int, seed: int, split: str = "pretrain") -> None:
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.seed = seed
        self.split = split

    def batch(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch number ``k`` of the stream."""
        indices = range(k * self.batch_size, (k + 1) * self.batch_size)
        images, scenes = render_split(self.split, indices, self.seed)
        captions = [
            compose_caption(sc.attrs, np.random.default_rng((self.seed, 7, i))) for sc, i in zip(scenes, indices)
        ]
        return images_to_tensor(images), self.tokenizer(captions)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        k = 0
        while True:
            yield self.batch(k)
            k += 1


class ToyPretrainData(L.LightningDataModule):
    """Streams rendered (image, caption) batches of the ``pretrain`` split (no epochs; bounded by steps)."""

    def __init__(self, tokenizer: ToyTokenizer, batch_size: int = 96, seed: int = 0) -> None:
        super().__init__()
        self.stream = CaptionedBatches(tokenizer, batch_size, seed)

    def train_dataloader(self) -> DataLoader:
        """Already-batched stream, rendered in the main process (rendering is cheap next to a step)."""
        return DataLoader(self.stream, batch_size=None, num_workers=0)


def clip_loss(img: torch.Tensor, txt: torch.Tensor, tokens: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE where identical captions in a batch count as positives of each other.

    Toy captions repeat (``"a red shape"``), so the targets spread uniformly over all pairs whose token
    rows match instead of treating the duplicates as negatives.
    """
    img, txt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    logits = logit_scale.exp() * img @ txt.t()
    same = (tokens[:, None, :] == tokens[None, :, :]).all(-1).float()
    targets = same / same.sum(1, keepdim=True)
    return 0.5 * (
        torch.sum(-targets * F.log_softmax(logits, 1), 1).mean()
        + torch.sum(-targets * F.log_softmax(logits.t(), 1), 1).mean()
    )


class ToyCLIPModule(L.LightningModule):
    """Trains an open_clip ``CLIP`` with :func:`clip_loss`, AdamW and warm-up + cosine decay.

    Args:
        cfg: the recipe.
        vocab_size: size of the tokenizer vocabulary.

    """

    def __init__(self, cfg: PretrainConfig, vocab_size: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.model = build_model(cfg.model_cfg, vocab_size)
        self.loss_history: list[float] = []
        self.export_dir: Path | None = None
        self.earlier_stages: list[dict[str, Any]] = []  # provenance of ``init_from`` (see earlier_stages())
        self._t0 = time.time()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """One InfoNCE step on a rendered batch."""
        images, tokens = batch
        img = self.model.encode_image(images)
        txt = self.model.encode_text(tokens)
        loss = clip_loss(img, txt, tokens, self.model.logit_scale)
        self.loss_history.append(float(loss.detach()))
        self.log("train/loss", loss, prog_bar=True)
        step = self.global_step + 1
        if self.cfg.log_every and step % self.cfg.log_every == 0:
            recent = np.mean(self.loss_history[-self.cfg.log_every :])
            print(
                f"step {step}/{self.cfg.max_steps} loss {recent:.4f} ({time.time() - self._t0:.0f} s)",
                flush=True,
            )
        return loss

    def on_train_batch_end(self, *args: Any) -> None:
        """Keep the temperature in CLIP's range (logit scale at most 100); export periodically if asked."""
        with torch.no_grad():
            self.model.logit_scale.clamp_(0, math.log(100))
        every, step = self.cfg.export_every, self.global_step
        if self.export_dir is not None and every and step % every == 0 and step < self.cfg.max_steps:
            export(self, ToyTokenizer.default(self.cfg.model_cfg["text_cfg"]["context_length"]), self.export_dir)

    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW (no decay on gains, biases, embeddings, logit scale) with linear warm-up and cosine decay."""
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            (decay if p.ndim >= 2 and "embedding" not in name else no_decay).append(p)
        opt = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.cfg.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.cfg.lr,
            betas=(0.9, 0.98),
            eps=1e-6,
        )
        warm, total = self.cfg.warmup_steps, self.cfg.max_steps
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: warmup_cosine(step, warm, total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def export(module: ToyCLIPModule, tokenizer: ToyTokenizer, output: str | Path) -> Path:
    """Write weights (safetensors), model + preprocess config and tokenizer JSON into ``output``."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().clone() for k, v in module.model.state_dict().items()}
    with atomic_path(out / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp))
    model_cfg = json.loads(json.dumps(module.cfg.model_cfg))
    model_cfg["text_cfg"]["vocab_size"] = tokenizer.vocab_size
    config = {
        "model_cfg": model_cfg,
        "preprocess_cfg": {
            "size": NATIVE_SIZE,
            "mean": list(TOY_MEAN),
            "std": list(TOY_STD),
            "interpolation": "bicubic",
            "resize_mode": "shortest",
        },
        "recipe": {k: v for k, v in asdict(module.cfg).items() if k != "model_cfg"},
        "final_loss": float(np.mean(module.loss_history[-50:])) if module.loss_history else None,
        # the recipes of the stages this one started from (``init_from``), oldest first
        "earlier_stages": module.earlier_stages,
    }
    write_text_atomic(out / CONFIG_FILE, json.dumps(config, indent=1))
    tokenizer.save(out / TOKENIZER_FILE)
    return out


def earlier_stages(folder: str | Path) -> list[dict[str, Any]]:
    """Provenance of an export: its own earlier stages, then its recipe and final loss (oldest first)."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        return []
    config = json.loads(path.read_text())
    own = {"recipe": config.get("recipe"), "final_loss": config.get("final_loss")}
    return [*config.get("earlier_stages", []), own]


def pretrain(cfg: PretrainConfig, output: str | Path | None = None) -> ToyCLIPModule:
    """Run the recipe ``cfg`` on the CPU; export to ``output`` when given. Returns the trained module."""
    torch.set_num_threads(cfg.num_threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    tokenizer = ToyTokenizer.default(cfg.model_cfg["text_cfg"]["context_length"])
    module = ToyCLIPModule(cfg, tokenizer.vocab_size)
    module.export_dir = Path(output) if output is not None else None
    if cfg.init_from is not None:
        weights = Path(cfg.init_from) / WEIGHTS_FILE
        if not weights.is_file():
            raise FileNotFoundError(
                f"init_from {cfg.init_from!r} lacks {WEIGHTS_FILE}; run the first stage "
                f"(`lr0fm toy pretrain --output {cfg.init_from}`) first"
            )
        module.model.load_state_dict(load_file(str(weights)))
        module.earlier_stages = earlier_stages(cfg.init_from)
    data = ToyPretrainData(tokenizer, cfg.batch_size, cfg.seed)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=cfg.max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
    )
    trainer.fit(module, datamodule=data)
    if output is not None:
        export(module, tokenizer, output)
    return module
