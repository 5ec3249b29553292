"""What a sweep measures: the models (with their content identity), their cells, and how jobs share them.

A *cell* is one (model, dataset) pair: it is measured in one pass at every pending resolution. A model's
identity for resume is its content, not its display label: the spec (published weights are immutable by
name), the SHA-256 of local weight files, the seed of random weights and the SHA-256 of an LR-token file.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import time
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Any

from lr0fm.models.weights_files import file_sha256

#: what the label of a model evaluated with LR-TK0 tokens adds to its spec: ``SPEC+lrtk0:STEM@HASH``
TOKENS_MARK = "+lrtk0:"

#: the packages whose versions every results row records
VERSIONED_PACKAGES = ("lr0fm", "torch", "open_clip_torch", "lightning")


def _local_sources(spec: str) -> list[Path]:
    """Files or folders a spec loads weights or configs from (``local-dir:P``, ``ARCH:P``, ``P.json[:TAG]``)."""
    candidates = {spec, spec.partition(":")[2], spec.rpartition(":")[0], spec.removeprefix("local-dir:")}
    return sorted({Path(c) for c in candidates if c and Path(c).exists()})


def _is_random(spec: str) -> bool:
    return spec.endswith(":none") or spec.endswith(".json")


@dataclass
class BenchmarkModel:
    """One backbone of a sweep: how to load it (tokens applied at load time) and what identifies its content.

    Attributes:
        spec: backbone spec or paper name.
        seed: seed of random weights (``ARCH:none``, ``arch.json``); recorded only for those.
        lr_tokens: an LR-TK0 token file applied when the model is loaded.
    """

    spec: str
    seed: int | None = None
    lr_tokens: str | None = None

    @cached_property
    def tokens_sha256(self) -> str | None:
        """SHA-256 of the LR-token file (``None`` without tokens)."""
        return file_sha256(Path(self.lr_tokens)) if self.lr_tokens else None

    @cached_property
    def _tokens_config(self) -> dict[str, Any]:
        """The token file's header config (``{}`` without tokens), read once."""
        if not self.lr_tokens:
            return {}
        from lr0fm.lrtk0.export import read_lr_tokens_config

        return read_lr_tokens_config(self.lr_tokens)

    @property
    def tokens_params(self) -> int | None:
        """Numbers the LR-token file adds to the backbone (its tensors' elements; ``None`` without tokens).

        The inference cost of LR-TK0 next to an SR front-end's ``sr_params`` (the report's ``sr_tradeoff``); from
        the header's ``shapes``, which loading checks against the tensors.
        """
        shapes = self._tokens_config.get("shapes")
        return sum(math.prod(shape) for shape in shapes.values()) if shapes else None

    @property
    def tokens_method(self) -> str | None:
        """The LR-TK0 method that trained the token file (``lr_tokens``, ``vpt``, ``robust_sam``; its header)."""
        return self._tokens_config.get("method")

    @property
    def label(self) -> str:
        """The ``model`` column: the spec, plus the token file's name and content hash when tokens are applied.

        Two token files that share a name (every ``lr0fm fit`` exports ``lr_tokens.safetensors``) get
        different labels, so both are measured and both appear in the table.
        """
        if not self.lr_tokens:
            return self.spec
        return f"{self.spec}{TOKENS_MARK}{Path(self.lr_tokens).stem}@{self.tokens_sha256[:8]}"

    @cached_property
    def identity(self) -> dict[str, Any]:
        """The content a result depends on (JSON-serialisable)."""
        return {
            "spec": self.spec,
            "seed": (0 if self.seed is None else self.seed) if _is_random(self.spec) else None,
            "weights_sha256": {str(p): file_sha256(p) for p in _local_sources(self.spec)} or None,
            "lr_tokens_sha256": self.tokens_sha256,
        }

    @property
    def key(self) -> str:
        """Short content hash of :attr:`identity` (the ``model_key`` column)."""
        return hashlib.sha256(json.dumps(self.identity, sort_keys=True).encode()).hexdigest()[:16]

    def load(self):
        """The backbone in eval mode, with the LR tokens applied when given."""
        from lr0fm.models import load_backbone

        backbone = load_backbone(self.spec, seed=self.seed)
        if self.lr_tokens:
            from lr0fm.lrtk0 import load_lr_tokens

            load_lr_tokens(self.lr_tokens, backbone)
        return backbone.eval()


def shard_cells(models: list[BenchmarkModel], datasets: list[str], shard: tuple[int, int]) -> dict[int, list[str]]:
    """The (model index -> dataset names) cells of shard ``(i, N)``: cell ``k`` of the sweep order goes to ``k % N``.

    Together the N shards cover every cell exactly once.
    """
    index, count = shard
    out: dict[int, list[str]] = {}
    cells = [(m, d) for m in range(len(models)) for d in datasets]
    for k, (m, d) in enumerate(cells):
        if k % count == index:
            out.setdefault(m, []).append(d)
    return out


@dataclass
class RunInfo:
    """How a run was made: recorded in every row it writes."""

    precision: str
    device: str
    batch_size: int
    protocol: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def columns(self) -> dict[str, Any]:
        """The metadata columns of a results row."""
        import torch

        versions = {}
        for package in VERSIONED_PACKAGES:
            try:
                versions[f"{package}_version"] = metadata.version(package)
            except metadata.PackageNotFoundError:
                versions[f"{package}_version"] = None
        versions["torch_version"] = torch.__version__  # with its build tag (e.g. +cu130), which metadata drops
        return {
            "precision": self.precision,
            "device": self.device,
            "batch_size": self.batch_size,
            **versions,
            "python_version": platform.python_version(),
            "run_id": self.run_id,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
