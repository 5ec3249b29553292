"""LR-TK0 run folders that own their files, and ``--ckpt_path last`` that resumes the same run.

Every ``lr0fm fit`` run writes into its own logger folder ``lightning_logs/version_N/``: its config, its
TensorBoard events, its tokens export and its checkpoints (``checkpoints/``, Lightning's default when a
``ModelCheckpoint`` has no ``dirpath``). :class:`LastCheckpoint` writes ``checkpoints/last.ckpt`` at the end of
every training epoch, whatever the other checkpoint callbacks monitor (a ``ModelCheckpoint(monitor=...,
save_last=True)`` rewrites it only at validation epochs where its metric improved), so a resume loses at most
the epoch in progress;
the other callbacks' own ``save_last`` is turned off (two writers of one ``last.ckpt`` would clash into
``last-v1.ckpt``). Checkpoints are written to a temporary file and renamed (:class:`AtomicCheckpointIO`): a
kill or a full disk never leaves a partial file under a checkpoint's name.

``--ckpt_path last`` resolves to ``version_N/checkpoints/last.ckpt`` of the newest run whose saved
``config.yaml`` has this run's ``model`` and ``data`` sections (and seed, unless it was drawn at random), never
another config's run; ``fit`` then continues in that run's folder (:func:`pin_version`). A checkpoint path
inside a run folder resumes in that folder too.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from lr0fm.atomic import atomic_path
from lr0fm.lrtk0.checkpoints import CheckpointError

#: config sections that identify "the same run" for ``--ckpt_path last``
RUN_SECTIONS = ("model", "data")
LAST = "last"
_VERSION = re.compile(r"version_(\d+)")


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, ...); the previous file of that name is kept."""


class LastCheckpoint(Callback):
    """Writes ``<run>/checkpoints/last.ckpt`` at the end of every training epoch.

    Not a ``ModelCheckpoint``: since Lightning 2.6 those rewrite ``last.ckpt`` only in a step where they also
    saved a top-k checkpoint, i.e. only when the monitored metric improves.
    """

    FILE_NAME = "last.ckpt"

    @staticmethod
    def directory(trainer: Trainer) -> Path:
        """``<log_dir>/checkpoints`` (``<default_root_dir>/checkpoints`` without a logger), as ``ModelCheckpoint``."""
        log_dir = trainer.log_dir if trainer.loggers else None  # a collective under DDP: every rank asks
        return Path(log_dir or trainer.default_root_dir) / "checkpoints"

    def on_train_epoch_end(self, trainer: Trainer, pl_module: Any) -> None:
        """Save the full training state (collective: rank 0 writes)."""
        if trainer.sanity_checking or trainer.fast_dev_run:
            return
        trainer.save_checkpoint(self.directory(trainer) / self.FILE_NAME, weights_only=False)  # full state, to resume


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` that writes a temporary file next to the target and renames it into place."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        """Save ``checkpoint`` to ``path`` atomically (remote ``scheme://`` paths: as Lightning does).

        Raises:
            CheckpointWriteError: the file cannot be written; it names the path, and no partial file is left.

        """
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        try:
            with atomic_path(path) as tmp:
                super().save_checkpoint(checkpoint, tmp, storage_options)
        except OSError as exc:
            raise CheckpointWriteError(
                exc.errno,
                f"could not write checkpoint {str(path)!r} ({exc.strerror or exc}); free disk space (or raise the "
                "file size limit) and resume with `--ckpt_path last`: the previous checkpoint is kept",
            ) from exc
        return None


def own_run_files(trainer: Trainer, checkpointing: bool = True) -> None:
    """Give ``trainer`` a :class:`LastCheckpoint` (unless checkpointing is off) and atomic checkpoint writes."""
    if checkpointing:
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint):
                callback.save_last = False  # last.ckpt comes from LastCheckpoint, every epoch
        if not any(isinstance(c, LastCheckpoint) for c in trainer.callbacks):
            trainer.callbacks.append(LastCheckpoint())
    if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()


def logs_root(trainer: Trainer) -> Path | None:
    """The folder holding the run folders (``lightning_logs``), or ``None`` without a versioned logger."""
    logger = trainer.logger
    if logger is None or not hasattr(logger, "_version"):
        return None
    save_dir = logger.save_dir if logger.save_dir is not None else trainer.default_root_dir
    return Path(save_dir) / str(logger.name or "")


def _run_versions(root: Path) -> list[int]:
    versions = []
    if root.is_dir():
        for child in root.iterdir():
            match = _VERSION.fullmatch(child.name)
            if match and child.is_dir():
                versions.append(int(match.group(1)))
    return sorted(versions, reverse=True)


def same_run(saved: Mapping[str, Any], current: Mapping[str, Any], compare_seed: bool) -> bool:
    """Whether a run's saved config has the ``model`` and ``data`` sections (and seed) of ``current``."""
    keys = RUN_SECTIONS + (("seed_everything",) if compare_seed else ())
    return all(saved.get(key) == current.get(key) for key in keys)


def find_last(root: Path, current: Mapping[str, Any], compare_seed: bool) -> tuple[int | None, list[int]]:
    """The newest run under ``root`` with ``checkpoints/last.ckpt`` and this config, and the runs passed over.

    Returns:
        ``(version, others)``: ``version`` is ``None`` when no run matches; ``others`` lists the runs with a
        ``last.ckpt`` but another config.

    """
    others = []
    for version in _run_versions(root):
        folder = root / f"version_{version}"
        if not (folder / "checkpoints" / "last.ckpt").is_file():
            continue
        try:
            saved = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            saved = {}
        if isinstance(saved, Mapping) and same_run(saved, current, compare_seed):
            return version, others
        others.append(version)
    return None, others


def run_version_of(path: str | Path, root: Path) -> int | None:
    """``N`` when ``path`` is ``<root>/version_N/checkpoints/<file>``, else ``None``."""
    path = Path(path).resolve()
    if path.parent.name != "checkpoints" or path.parent.parent.parent != root.resolve():
        return None
    match = _VERSION.fullmatch(path.parent.parent.name)
    return int(match.group(1)) if match else None


def pin_version(trainer: Trainer, version: int) -> bool:
    """Make the trainer's logger write into ``version_<version>`` (the resumed run's folder), if it can."""
    logger = trainer.logger
    if logger is None or getattr(logger, "_version", 0) is not None:
        return False  # no logger, or the user chose its version explicitly
    logger._version = version  # TensorBoardLogger/CSVLogger: read lazily by .version and .log_dir
    return True


def resolve_ckpt_path(
    trainer: Trainer, ckpt_path: str | None, current: Mapping[str, Any], compare_seed: bool, subcommand: str
) -> str | None:
    """Turn ``last`` into this config's run's ``last.ckpt``; for ``fit``, continue in the checkpoint's run folder.

    Returns:
        The checkpoint path to use (``None``: ``fit`` from scratch, when no run of this config has one).

    Raises:
        CheckpointError: ``validate``/``test`` with ``last`` and no run of this config has a ``last.ckpt``.

    """
    root = logs_root(trainer)
    if ckpt_path != LAST:
        if ckpt_path and subcommand == "fit" and root is not None:
            version = run_version_of(ckpt_path, root)
            if version is not None:
                pin_version(trainer, version)
        return ckpt_path
    if root is None:  # no versioned logger: Lightning's own search (default_root_dir/checkpoints)
        return ckpt_path
    version, others = find_last(root, current, compare_seed)
    if version is not None:
        if subcommand == "fit":
            pin_version(trainer, version)
        return str(root / f"version_{version}" / "checkpoints" / "last.ckpt")
    passed = (
        f" (runs with a last.ckpt but other model/data settings: {', '.join(f'version_{v}' for v in others)}; "
        "resume one with --ckpt_path lightning_logs/version_N/checkpoints/last.ckpt)"
        if others
        else ""
    )
    if subcommand != "fit":
        raise CheckpointError(f"--ckpt_path last: no run of this config under {str(root)!r} has a last.ckpt{passed}")
    print(
        f"lr0fm fit: --ckpt_path last: no run of this config under {str(root)!r} has a last.ckpt yet{passed}; "
        "training from scratch in a new run folder",
        file=sys.stderr,
    )
    return None
