"""``lr0fm fit | validate | test``: LR-TK0 training through LightningCLI.

``lr0fm fit --config toy`` (a packaged preset, or any YAML file) trains;
``lr0fm validate --config ... --ckpt_path ...`` and ``lr0fm test ...`` benchmark a checkpoint. Every run's
full config lands in ``lightning_logs/version_N/config.yaml`` and re-runs it
(``lr0fm fit --config .../config.yaml``);
``--ckpt_path last`` resumes a killed run. Each subcommand has a thin module (``fit``, ``validate``,
``test``) because the top-level dispatcher calls a module's ``main(argv)`` without the command name.
"""

from __future__ import annotations

import sys
import warnings

#: Lightning trainer entry points exposed as lr0fm subcommands
SUBCOMMANDS = ("fit", "validate", "test")


def run(subcommand: str, argv: list[str]) -> int:
    """Run LightningCLI ``subcommand`` on the LR-TK0 module and data module with the remaining ``argv``.

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
    import torch
    from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

    # argv comes from the lr0fm dispatcher, which is also what sys.argv holds: not a mix-up
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")

    from lr0fm.lrtk0.data import LRTK0DataModule
    from lr0fm.lrtk0.module import LRTK0Module

    class LRTK0CLI(LightningCLI):
        """LightningCLI plus ``--num_threads`` (torch intra-op threads; 0 keeps torch's default)."""

        def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
            parser.add_argument("--num_threads", type=int, default=0, help="torch CPU threads (0: default)")

        def before_instantiate_classes(self) -> None:
            threads = self.config[self.subcommand].num_threads
            if threads:
                torch.set_num_threads(threads)

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
    return 0
