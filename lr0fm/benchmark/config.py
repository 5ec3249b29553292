"""The settings of one ``lr0fm benchmark`` run (import-light: the command line builds its parser from them)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from lr0fm.protocols.resolutions import DEFAULT_PROTOCOL

#: The resolutions of the LR0.FM benchmark.
DEFAULT_RESOLUTIONS = (16, 32, 64, 128, "hr")


@dataclass
class BenchmarkConfig:
    """Everything one ``lr0fm benchmark`` run needs.

    Attributes:
        models: backbone specs (see ``lr0fm benchmark --list_models``).
        datasets: ``NAME`` or ``NAME=ROOT`` (canonical, ``toy-*``, ``folder:/path``, ``wds:/path``).
        resolutions: low resolutions and/or ``hr``.
        protocol: LR protocol (``paper``: the authors' chain of each paper backbone; ``shorter-side``;
            ``square``), recorded in every row.
        output: output folder (results, predictions, summary, plot, TensorBoard).
        data_root: root for datasets given without ``=ROOT``.
        batch_size: images per batch (each scored at every resolution).
        workers: DataLoader workers.
        precision: Lightning precision (``32``, ``bf16-mixed``, ``16-mixed``) or ``auto``.
        accelerator: Lightning accelerator.
        devices: Lightning devices.
        strategy: Lightning strategy (``auto``, ``ddp``...).
        skip_existing: skip (model, dataset, resolution) cells already in the results table.
        skip_corrupt: skip undecodable images (counted in ``num_skipped``) instead of stopping.
        cache_dir: text-classifier cache folder.
        seed: seed for ``ARCH:none`` random weights.
        lr_tokens: LR-token file (from LR-TK0) applied to every model.
        download: let torchvision download datasets that support it.
        predictions: write per-sample top-5 predictions.
        shard: ``i/N`` measures the ``i``-th of N disjoint parts of the (model, dataset) cells (independent
            jobs writing one output folder); ``slurm-array`` reads ``i/N`` from a SLURM job array.
        log_every: seconds between progress lines when stdout is not a terminal (a log file).
        export_clip_benchmark: also write every row of this protocol as CLIP_benchmark's per-run JSON under
            this folder (``clip_benchmark build DIR/PROTOCOL/*.json`` makes its CSV).
        views_on_device: workers only decode; the LR views are made with torch on the accelerator
            (:mod:`lr0fm.protocols.device`; not pixel-identical to the exact PIL path, recorded as ``views``).
        sr: a super-resolution front-end between the LR image and the backbone (:mod:`lr0fm.sr`): a weights file
            spandrel recognises, a name of the SR table (``BSRGAN``...), ``diffusers:ID_OR_DIR`` or
            ``bicubic|bilinear|lanczos[:K]``; the rows' protocol is then ``sr:<name>`` (the SR chain replaces
            ``protocol``'s).
        sr_passes: SR passes per LR view (``None``: repeat until the side reaches the backbone's input side;
            ``1``: one pass, as the authors' script; recorded in the protocol as ``@<N>pass``).
        sr_kwargs: keyword arguments of every call of a ``diffusers:`` pipeline (e.g. ``num_inference_steps``).
        sr_batch_size: images per SR forward (``None``: the whole batch).
    """

    models: list[str]
    datasets: list[str]
    resolutions: list = field(default_factory=lambda: list(DEFAULT_RESOLUTIONS))
    protocol: str = DEFAULT_PROTOCOL
    output: str = "lightning_logs/benchmark"
    data_root: str | None = None
    batch_size: int = 64
    workers: int = field(default_factory=lambda: min(8, os.cpu_count() or 1))
    precision: str = "auto"
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    skip_existing: bool = True
    skip_corrupt: bool = False
    cache_dir: str | None = None
    seed: int | None = None
    lr_tokens: str | None = None
    download: bool = False
    predictions: bool = True
    shard: str | None = None
    log_every: float = 30.0
    export_clip_benchmark: str | None = None
    views_on_device: bool = False
    sr: str | None = None
    sr_passes: int | None = None
    sr_kwargs: dict[str, Any] = field(default_factory=dict)
    sr_batch_size: int | None = None

    @property
    def run_protocol(self) -> str:
        """The ``protocol`` column of this run's rows: ``sr:<name>[@<N>pass]`` with ``sr``, else ``protocol``."""
        if not self.sr:
            return self.protocol
        from lr0fm.sr.chain import sr_protocol_name
        from lr0fm.sr.upscalers import parse_sr_spec

        return sr_protocol_name(parse_sr_spec(self.sr).name, self.sr_passes)
