"""``lr0fm fit | validate | test``: LR-TK0 training through LightningCLI.

``lr0fm fit --config configs/lrtk0/toy.yaml`` trains; ``lr0fm validate --config ... --ckpt_path ...`` and
``lr0fm test ...`` benchmark a checkpoint. Every run's full config lands in
``lightning_logs/version_N/config.yaml`` and re-runs it (``lr0fm fit --config .../config.yaml``);
``--ckpt_path last`` resumes a killed run. Each subcommand has a thin module (``fit``, ``validate``,
``test``) because the top-level dispatcher calls a module's ``main(argv)`` without the command name.
"""

from __future__ import annotations

#: Lightning trainer entry points exposed as lr0fm subcommands
SUBCOMMANDS = ("fit", "validate", "test")


def run(subcommand: str, argv: list[str]) -> int:
    """Run LightningCLI ``subcommand`` on the LR-TK0 module and data module with the remaining ``argv``.

    Raises:
        ValueError: ``subcommand`` is not one of :data:`SUBCOMMANDS`.

    """
    if subcommand not in SUBCOMMANDS:
        raise ValueError(f"unknown LR-TK0 subcommand {subcommand!r}; expected one of {', '.join(SUBCOMMANDS)}")
    from lightning.pytorch.cli import LightningCLI

    from lr0fm.lrtk0.data import LRTK0DataModule
    from lr0fm.lrtk0.module import LRTK0Module

    LightningCLI(
        LRTK0Module,
        LRTK0DataModule,
        args=[subcommand, *argv],
        # the data module shards batches itself (lr0fm.lrtk0.data.EpochBatchSampler)
        trainer_defaults={"use_distributed_sampler": False},
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        parser_kwargs={"prog": f"lr0fm {subcommand}"},
    )
    return 0
