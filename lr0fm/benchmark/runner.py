"""``lr0fm benchmark``: models x datasets x resolutions through ``Trainer.validate``, resumable."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch

from lr0fm.atomic import remove_stale_temporaries, write_text_atomic
from lr0fm.benchmark.classifier import ClassifierCache
from lr0fm.benchmark.config import BenchmarkConfig
from lr0fm.benchmark.data import MultiResolutionDataset, make_loader, view_pipeline
from lr0fm.benchmark.module import ZeroShotModule, ZeroShotTask
from lr0fm.benchmark.outputs import (
    ResultsStore,
    export_clip_benchmark,
    plot_accuracy_vs_resolution,
    predictions_cover,
    predictions_path,
    slug,
    write_predictions,
)
from lr0fm.benchmark.sweep import BenchmarkModel, RunInfo, shard_cells
from lr0fm.faults import kill_point
from lr0fm.jobs import resolve_shard
from lr0fm.protocols import DEFAULT_PROTOCOL, PAPER_TEXT_CHAIN, get_protocol, parse_resolutions
from lr0fm.sr.chain import SR_CHAIN, describe_sr_chain, sr_view_pipeline
from lr0fm.sr.upscalers import Upscaler


def split_dataset_arg(text: str, data_root: str | None) -> tuple[str, str | None]:
    """``NAME=ROOT`` -> (NAME, ROOT); ``NAME`` -> (NAME, data_root)."""
    name, sep, root = text.partition("=")
    return (name.strip(), root.strip() if sep else data_root)


def resolve_precision(precision: str, accelerator: str) -> str:
    """``auto``: bf16 autocast on CUDA devices that support it, fp16 on older CUDA, fp32 on CPU."""
    if precision != "auto":
        return precision
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32"


def _quiet_lightning() -> None:
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*sync_dist=True.*")


def _pending(
    done: dict,
    model: BenchmarkModel,
    names: list,
    datasets: dict,
    resolutions: list,
    protocol: str,
    precision: str,
    views: str,
    sr_key: str | None = None,
) -> dict[str, list]:
    """Resolutions of each dataset still to measure for ``model``.

    A cell counts as done only if its row was made from the same model content (weights, seed, token hash),
    with the same protocol, precision and view path (``pil`` or ``device``), the same SR front-end content
    (``sr_key``, ``None`` without one), on the whole dataset.
    """
    pending = {}
    for name in names:
        size = len(datasets[name])
        todo = []
        for r in resolutions:
            row = done.get((model.label, name, str(r), protocol))
            same = (
                row is not None
                and row.get("model_key") == model.key
                and row.get("precision") == precision
                and row.get("views", "pil") == views
                and row.get("sr_key") == sr_key
                and row.get("num_samples", 0) + row.get("num_skipped", 0) == size
            )
            if not same:
                todo.append(r)
        if todo:
            pending[name] = todo
    return pending


def _scored(done: dict, model: BenchmarkModel, dataset: str, protocol: str) -> int:
    """Images a finished cell scored (its rows' ``num_samples``)."""
    rows = [row for key, row in done.items() if key[:2] == (model.label, dataset) and key[3] == protocol]
    return int(rows[0].get("num_samples", 0)) if rows else 0


def _load_sr(config: BenchmarkConfig, log) -> Upscaler | None:
    """The ``--sr`` front-end, loaded once for the whole sweep (``None`` without ``--sr``)."""
    if not config.sr:
        return None
    from lr0fm.sr.upscalers import load_upscaler

    upscaler = load_upscaler(config.sr, config.sr_kwargs)
    log(f"SR front-end: {upscaler.describe()}; rows get protocol {config.run_protocol!r}")
    if config.protocol != DEFAULT_PROTOCOL:
        log(f"note: --sr replaces the chain of --protocol {config.protocol!r} with the authors' SR chain")
    return upscaler


def _task_views(config: BenchmarkConfig, protocol, backbone, resolutions: list, upscaler: Upscaler | None):
    """The worker and device halves of a task's views: the protocol's chain, or the SR chain with ``upscaler``."""
    if upscaler is not None:
        return sr_view_pipeline(
            backbone,
            resolutions,
            upscaler,
            passes=config.sr_passes,
            batch_size=config.sr_batch_size,
            on_device=config.views_on_device,
        )
    transform = protocol.transform(backbone, resolutions)
    return view_pipeline(transform, on_device=config.views_on_device, preprocess_cfg=backbone.preprocess_cfg)


def _print(message: str) -> None:
    print(message, flush=True)  # flushed: under SLURM stdout is a file, block-buffered otherwise


def run_benchmark(config: BenchmarkConfig, *, log=_print) -> list[dict]:
    """Run every pending (model, dataset) cell of this shard and return all records of the results table.

    One Trainer serves the whole sweep and each model's datasets run as the dataloaders of one ``validate``.
    Results are written to ``OUTPUT/results.{csv,jsonl}`` as each model finishes (one row per cell, replacing
    older rows of the same cell); a rerun measures only what is missing or was made differently, so a killed
    sweep resumes.
    """
    import lightning as L
    from lightning.pytorch.loggers import TensorBoardLogger

    from lr0fm.benchmark.progress import SweepProgress
    from lr0fm.datasets import DatasetError, build_dataset, prepare_dataset

    _quiet_lightning()
    resolutions = parse_resolutions(config.resolutions)
    protocol = get_protocol(config.protocol)
    output = Path(config.output)
    remove_stale_temporaries(output)  # left by a killed run
    store = ResultsStore(output)
    if store.repair():
        log(f"note: {store.jsonl_path} held duplicate rows (written by an older lr0fm): kept the newest of each cell")
    precision = resolve_precision(config.precision, config.accelerator)
    cache = ClassifierCache(config.cache_dir or output / "classifier_cache", log=log)
    shard = resolve_shard(config.shard)
    views = "device" if config.views_on_device else "pil"
    dataset_args = [split_dataset_arg(d, config.data_root) for d in config.datasets]
    datasets, problems = {}, []
    for name, root in dataset_args:  # validate every dataset before any model is loaded; report all problems
        try:
            if config.download:
                prepare_dataset(name, root, download=True)
            datasets[name] = build_dataset(name, root)
        except DatasetError as exc:
            problems.append(f"- {name}: {exc}")
            continue
        if datasets[name].num_classes < 2:
            log(f"warning: {name} has {datasets[name].num_classes} class: every model scores 100 % top-1 on it")
    if problems:
        count = f"{len(problems)} of {len(dataset_args)} datasets" if len(dataset_args) > 1 else "the dataset"
        raise DatasetError(f"{count} cannot be used (nothing was measured):\n" + "\n".join(problems))
    upscaler = _load_sr(config, log)
    protocol_name, sr_key = config.run_protocol, upscaler.key if upscaler is not None else None
    models = [BenchmarkModel(spec, config.seed, config.lr_tokens) for spec in config.models]
    cells = shard_cells(models, list(datasets), shard)
    if shard != (0, 1):
        log(f"shard {shard[0]}/{shard[1]}: {sum(map(len, cells.values()))} of {len(models) * len(datasets)} cells")

    progress = SweepProgress(sum(len(v) for v in cells.values()), log=log, every=config.log_every)
    trainer = None
    for m, names in cells.items():
        model = models[m]
        info = RunInfo(precision, "", config.batch_size, protocol_name)
        done = store.done() if config.skip_existing else {}
        pending = _pending(done, model, names, datasets, resolutions, protocol_name, precision, views, sr_key)
        if config.predictions:  # a cell whose predictions are missing (an older version's kill) is redone
            for name in names:
                path = predictions_path(output, protocol_name, model.label, name)
                scored = _scored(done, model, name, protocol_name)
                if name not in pending and not predictions_cover(path, resolutions, scored):
                    pending[name] = list(resolutions)
        progress.skip_cells(len(names) - len(pending))
        if not pending:
            log(f"skip {model.label}: {', '.join(names)} already in {store.csv_path}")
            continue
        backbone = model.load()
        chain = SR_CHAIN if upscaler is not None else protocol.chain(backbone)
        steps = describe_sr_chain(upscaler, config.sr_passes) if upscaler is not None else chain.describe()
        log(f"{model.label}: LR protocol {protocol_name!r} -> chain {chain.name!r}: {steps}")
        if chain is PAPER_TEXT_CHAIN:
            log(
                f"note: {model.label} is not one of the paper's 66 backbones, so protocol 'paper' follows the "
                "paper's text for it (square n x n bicubic, then the model's own preprocessing)"
            )
        if trainer is None:
            trainer = L.Trainer(
                accelerator=config.accelerator,
                devices=config.devices,
                strategy=config.strategy,
                precision=precision,
                logger=False,
                use_distributed_sampler=False,
                enable_checkpointing=False,
                enable_model_summary=False,
                enable_progress_bar=progress.interactive,
                callbacks=[progress],
            )
        version = f"{slug(model.label)}.{slug(protocol_name)}"
        trainer.loggers = [TensorBoardLogger(save_dir=str(output), name="tensorboard", version=version)]
        info.device = trainer.strategy.root_device.type
        extra = {"model_key": model.key, "seed": model.identity["seed"], "lr_tokens_sha256": model.tokens_sha256,
                 "lr_tokens_params": model.tokens_params, "lr_tokens_method": model.tokens_method,
                 "views": views}  # fmt: skip
        tasks = [
            ZeroShotTask(name, datasets[name], todo, chain.name, {"dataset_size": len(datasets[name]), **extra})
            for name, todo in pending.items()
        ]

        def write(task, records, predictions, label=model.label, info=info, writer=trainer.is_global_zero) -> None:
            if not writer:  # every rank finishes the dataset; one writes it
                return
            if config.predictions and predictions is not None:  # first: a row marks the cell done
                path = predictions_path(output, protocol_name, label, task.name)
                ids = [task.dataset.sample_id(i) for i in range(len(task.dataset))]
                write_predictions(path, predictions, task.resolutions, ids, task.dataset.classnames)
                kill_point("cell-predictions")
            store.upsert({**rec, **info.columns()} for rec in records)
            kill_point("cell-row")
            accs = ", ".join(f"{r['resolution']}: {100 * r['top1']:.1f}%" for r in records)
            log(f"{label} on {task.name} ({records[0]['num_samples']} images): {accs}")

        pipelines = [_task_views(config, protocol, backbone, t.resolutions, upscaler) for t in tasks]
        module = ZeroShotModule(
            backbone,
            tasks,
            lambda b, dataset, device: cache.for_dataset(b, dataset, device=device),
            model_name=model.label,
            protocol=protocol_name,
            keep_predictions=config.predictions,
            skip_corrupt=config.skip_corrupt,
            on_task_end=write,
            view_makers=[device_half for _, device_half in pipelines],
        )
        loader = make_loader(  # one set of workers for all of the model's datasets
            [MultiResolutionDataset(t.dataset, worker_half) for t, (worker_half, _) in zip(tasks, pipelines)],
            batch_size=config.batch_size,
            num_workers=config.workers,
            rank=trainer.global_rank,
            world_size=trainer.world_size,
            pin_memory=trainer.strategy.root_device.type == "cuda",
        )
        progress.start_model(model.label, tasks)
        trainer.validate(module, dataloaders=loader, verbose=False)
        del backbone, module
    return store.records()


def finalize(config: BenchmarkConfig, *, log=print, weights: str | None = None) -> str | None:
    """Write ACC/SAR/WAR (``OUTPUT/metrics``), ``OUTPUT/summary.md`` and the accuracy plot; return the Markdown.

    Only the rows of this run's protocol enter the summary and the plot (a folder may hold rows of several
    protocols: they are never ranked together).
    """
    from lr0fm.metrics import ResultsTable, compute_report, load_weights
    from lr0fm.metrics.markdown import report_markdown

    output = Path(config.output)
    protocol = config.run_protocol
    records = [r for r in ResultsStore(output).records() if r.get("protocol") == protocol]
    if not records:
        return None
    plot = plot_accuracy_vs_resolution(records, output / "accuracy_vs_resolution.png")
    if config.export_clip_benchmark:
        files = export_clip_benchmark(records, Path(config.export_clip_benchmark))
        where = files[0].parent if files else config.export_clip_benchmark
        log(f"CLIP_benchmark JSON: {len(files)} files under {where}")
    table = ResultsTable.from_records(records, source=str(output / "results.jsonl"))
    has_lr = bool(table.resolutions)
    markdown = None
    if has_lr and any(r["resolution"] == "hr" for r in records):
        report = compute_report(table, weights=load_weights(weights) if weights else None, allow_missing=True)
        report.write(output / "metrics")
        markdown = report_markdown(report)
        write_text_atomic(output / "summary.md", markdown)
    else:
        log("note: ACC/SAR/WAR need an 'hr' resolution and at least one low resolution")
    log(f"results: {output / 'results.csv'}" + (f"; plot: {plot}" if plot else ""))
    return markdown
