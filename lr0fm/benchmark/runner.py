"""``lr0fm benchmark``: models x datasets x resolutions through ``Trainer.validate``, resumable."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import torch

from lr0fm.atomic import write_text_atomic
from lr0fm.benchmark.classifier import ClassifierCache
from lr0fm.benchmark.config import BenchmarkConfig
from lr0fm.benchmark.data import ZeroShotDataModule
from lr0fm.benchmark.module import ZeroShotModule
from lr0fm.benchmark.outputs import ResultsStore, plot_accuracy_vs_resolution, slug, write_predictions
from lr0fm.protocols import PAPER_TEXT_CHAIN, get_protocol, parse_resolutions


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


def model_label(spec: str, lr_tokens: str | None) -> str:
    """The ``model`` column: the spec, plus the LR-token file when tokens are applied."""
    return f"{spec}+lrtk0:{Path(lr_tokens).stem}" if lr_tokens else spec


def _classifier_device(accelerator: str) -> torch.device:
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def _quiet_lightning() -> None:
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*sync_dist=True.*")


def run_benchmark(config: BenchmarkConfig, *, log=print) -> list[dict]:
    """Run every pending (model, dataset) and return all records of the results table.

    Results are appended to ``OUTPUT/results.{csv,jsonl}`` as each (model, dataset) finishes; with
    ``skip_existing`` a rerun measures only what is missing, so a killed sweep resumes.
    """
    import lightning as L
    from lightning.pytorch.loggers import TensorBoardLogger

    from lr0fm.datasets import build_dataset, prepare_dataset
    from lr0fm.models import load_backbone

    _quiet_lightning()
    resolutions = parse_resolutions(config.resolutions)
    protocol = get_protocol(config.protocol)
    output = Path(config.output)
    store = ResultsStore(output)
    precision = resolve_precision(config.precision, config.accelerator)
    cache = ClassifierCache(config.cache_dir or output / "classifier_cache")
    dataset_args = [split_dataset_arg(d, config.data_root) for d in config.datasets]
    datasets = {}
    for name, root in dataset_args:  # validate every dataset before any model is loaded
        if config.download:
            prepare_dataset(name, root, download=True)
        datasets[name] = build_dataset(name, root)

    for spec in config.models:
        label = model_label(spec, config.lr_tokens)
        done = store.done() if config.skip_existing else set()
        pending = {
            name: [r for r in resolutions if (label, name, str(r), protocol.name) not in done] for name in datasets
        }
        pending = {k: v for k, v in pending.items() if v}
        if not pending:
            log(f"skip {label}: every dataset and resolution is already in {store.csv_path}")
            continue
        backbone = load_backbone(spec, seed=config.seed)
        if config.lr_tokens:
            from lr0fm.lrtk0 import load_lr_tokens

            load_lr_tokens(config.lr_tokens, backbone)
        backbone.eval()
        chain = protocol.chain(backbone)
        log(f"{label}: LR protocol {protocol.name!r} -> chain {chain.name!r}: {chain.describe()}")
        if chain is PAPER_TEXT_CHAIN:
            log(
                f"note: {label} is not one of the paper's 66 backbones, so protocol 'paper' follows the paper's "
                "text for it (square n x n bicubic, then the model's own preprocessing)"
            )
        device = _classifier_device(config.accelerator)
        logger = TensorBoardLogger(save_dir=str(output), name="tensorboard", version=f"{slug(label)}.{protocol.name}")
        for name, todo in pending.items():
            dataset = datasets[name]
            # every Trainer.validate ends by moving the module (and so the backbone) to the CPU: bring it back
            # first, or the next dataset's text classifier would be encoded on the CPU
            backbone.to(device)
            classifier = cache.for_dataset(backbone, dataset, device=device).cpu()
            module = ZeroShotModule(
                backbone,
                classifier,
                todo,
                model_name=label,
                dataset_name=name,
                protocol=protocol.name,
                chain=chain.name,
                keep_predictions=config.predictions,
                skip_corrupt=config.skip_corrupt,
            )
            data = ZeroShotDataModule(
                dataset,
                protocol.transform(backbone, todo),
                batch_size=config.batch_size,
                num_workers=config.workers,
            )
            trainer = L.Trainer(
                accelerator=config.accelerator,
                devices=config.devices,
                strategy=config.strategy,
                precision=precision,
                logger=logger,
                use_distributed_sampler=False,
                enable_checkpointing=False,
                enable_model_summary=False,
            )
            trainer.validate(module, datamodule=data, verbose=False)
            if trainer.is_global_zero:
                store.append(module.records)
                if config.predictions:
                    path = output / "predictions" / protocol.name / slug(label) / f"{slug(name)}.jsonl"
                    ids = [dataset.sample_id(i) for i in range(len(dataset))]
                    write_predictions(path, module.predictions, todo, ids)
                accs = ", ".join(f"{r['resolution']}: {100 * r['top1']:.1f}%" for r in module.records)
                log(f"{label} on {name} ({module.records[0]['num_samples']} images): {accs}")
        del backbone
    return store.records()


def finalize(config: BenchmarkConfig, *, log=print, weights: str | None = None) -> str | None:
    """Write ACC/SAR/WAR (``OUTPUT/metrics``), ``OUTPUT/summary.md`` and the accuracy plot; return the Markdown.

    Only the rows of this run's protocol enter the summary and the plot (a folder may hold rows of several
    protocols: they are never ranked together).
    """
    from lr0fm.metrics import ResultsTable, compute_report, load_weights
    from lr0fm.metrics.markdown import report_markdown

    output = Path(config.output)
    records = [r for r in ResultsStore(output).records() if r.get("protocol") == config.protocol]
    if not records:
        return None
    plot = plot_accuracy_vs_resolution(records, output / "accuracy_vs_resolution.png")
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
