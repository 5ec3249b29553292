"""``lr0fm fit | validate | test``: LR-TK0 training through LightningCLI.

``lr0fm fit --config toy`` (a packaged preset, or any YAML file) trains;
``lr0fm validate --config ... --ckpt_path ...`` and ``lr0fm test ...`` benchmark a checkpoint. Every run's
full config lands in ``lightning_logs/version_N/config.yaml`` and re-runs it
(``lr0fm fit --config .../config.yaml``);
``--ckpt_path last`` resumes a killed run (the latest run of the same config, in its own folder:
:mod:`lr0fm.lrtk0.runs`). Each subcommand has a thin module (``fit``, ``validate``,
``test``) because the top-level dispatcher calls a module's ``main(argv)`` without the command name.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

#: Lightning trainer entry points exposed as lr0fm subcommands
SUBCOMMANDS = ("fit", "validate", "test")


def run(subcommand: str, argv: list[str]) -> int:
    """Run LightningCLI ``subcommand`` on the LR-TK0 module and data module with the remaining ``argv``.

    Bad input (a checkpoint that cannot be used, missing or malformed training data) is one line naming the
    file and the fix, status 2 (the traceback with ``--debug``); see :mod:`lr0fm.lrtk0.runs` for the run
    folders and ``--ckpt_path last``.

    Raises:
        ValueError: ``subcommand`` is not one of :data:`SUBCOMMANDS`.

    """
    if subcommand not in SUBCOMMANDS:
        raise ValueError(f"unknown LR-TK0 subcommand {subcommand!r}; expected one of {', '.join(SUBCOMMANDS)}")
    from lr0fm.presets import resolve_config_args

    try:
        argv = resolve_config_args(argv, "lrtk0")
    except FileNotFoundError as exc:
        print(f"lr0fm {subcommand}: error: {exc}", file=sys.stderr)
        return 2
    from lr0fm.datasets.base import DatasetError
    from lr0fm.lrtk0.checkpoints import CheckpointError

    try:
        _run_cli(subcommand, argv)
    except (CheckpointError, DatasetError) as exc:
        if os.environ.get("LR0FM_DEBUG", "") not in ("", "0"):
            raise
        print(f"lr0fm {subcommand}: error: {user_message(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:
        message = user_message(exc)
        if message == str(exc) or os.environ.get("LR0FM_DEBUG", "") not in ("", "0"):
            raise
        try:  # a DataLoader worker's error: its own message, not the worker's traceback
            short = type(exc)(message)
        except Exception:  # noqa: BLE001 - a type that needs other arguments: keep the original
            raise exc from None
        raise short from exc
    return 0


def user_message(exc: BaseException) -> str:
    """The message of ``exc``; for an error re-raised from a DataLoader worker, the original one's last line."""
    text = str(exc)
    if text.startswith("Caught ") and "Original Traceback" in text:
        last = [line for line in text.strip().splitlines() if line.strip()][-1]
        name = type(exc).__name__
        return last.split(f"{name}: ", 1)[1] if f"{name}: " in last else last
    return text


def _quiet_advert() -> None:
    """Drop Lightning's "💡 Tip: ... litlogger" line, printed on every run (a one-line error stays one line)."""
    import logging

    class _NoTip(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "litlogger" not in str(record.msg)

    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(type(f).__name__ == "_NoTip" for f in logger.filters):
        logger.addFilter(_NoTip())


def _run_cli(subcommand: str, argv: list[str]) -> None:
    import torch
    import yaml
    from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

    from lr0fm.lrtk0.checkpoints import check_resumable, check_tensors, lrtk0_hparams, read_checkpoint
    from lr0fm.lrtk0.runs import LAST, own_run_files, resolve_ckpt_path

    # argv comes from the lr0fm dispatcher, which is also what sys.argv holds: not a mix-up
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    _quiet_advert()

    from lr0fm.lrtk0.data import LRTK0DataModule
    from lr0fm.lrtk0.module import LRTK0Module

    class LRTK0CLI(LightningCLI):
        """LightningCLI plus ``--num_threads``, checked checkpoints and run folders that own their files."""

        seed_drawn = False
        checked: tuple[str, dict] | None = None

        def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
            parser.add_argument("--num_threads", type=int, default=0, help="torch CPU threads (0: default)")

        def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
            """Parse; then refuse an unusable ``--ckpt_path`` file before Lightning reads its hyper-parameters."""
            super().parse_arguments(parser, args)
            name = self.config.get("subcommand")
            path = self.config[name].get("ckpt_path") if name else None
            if path and path not in (LAST, "best", "hpc"):
                self.checked = (path, read_checkpoint(path))  # reused by _checked_ckpt_path, then dropped
                lrtk0_hparams(path, self.checked[1])

        def _set_seed(self) -> None:
            self.seed_drawn = self._get(self.config, "seed_everything") is True  # a random seed: not compared
            super()._set_seed()

        def before_instantiate_classes(self) -> None:
            threads = self.config[self.subcommand].num_threads
            if threads:
                torch.set_num_threads(threads)

        def instantiate_trainer(self, **kwargs: Any) -> Any:
            trainer = super().instantiate_trainer(**kwargs)
            trainer_config = self._get(self.config_init, "trainer", default={}) or {}
            own_run_files(trainer, checkpointing=trainer_config.get("enable_checkpointing") is not False)
            return trainer

        def _checked_ckpt_path(self, name: str) -> None:
            """Resolve ``--ckpt_path`` (``last``: this config's run) and check the file against the model."""
            config = self.config_init[name]
            path = config.get("ckpt_path")
            current = yaml.safe_load(self.parser.dump(self.config, skip_none=False))[name] if path == LAST else {}
            path = resolve_ckpt_path(self.trainer, path, current, not self.seed_drawn, name)
            config["ckpt_path"] = path
            if path and path not in ("best", "hpc"):
                state = self.checked[1] if self.checked and self.checked[0] == path else read_checkpoint(path)
                self.checked = None
                expected = self.model.checkpoint_shapes()
                hp = self.model.hparams
                described = f"this config (model.backbone={hp.backbone!r}, model.method={hp.method!r})"
                check_tensors(path, state["state_dict"], expected, described)
                if name == "fit":
                    check_resumable(path, state)

        def before_fit(self) -> None:
            self._checked_ckpt_path("fit")

        def before_validate(self) -> None:
            self._checked_ckpt_path("validate")

        def before_test(self) -> None:
            self._checked_ckpt_path("test")

    LRTK0CLI(
        LRTK0Module,
        LRTK0DataModule,
        args=[subcommand, *argv],
        # the data module shards batches itself (lr0fm.lrtk0.data.EpochBatchSampler)
        trainer_defaults={"use_distributed_sampler": False},
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        # the subcommand's own parser prints `usage: lr0fm fit ...` (the dispatcher already consumed "fit")
        parser_kwargs={"prog": "lr0fm", subcommand: {"prog": f"lr0fm {subcommand}"}},
    )
