"""``lr0fm test``: LightningCLI ``test`` of LR-TK0 (see :mod:`lr0fm.lrtk0.cli`)."""

from __future__ import annotations

from lr0fm.lrtk0.cli import run


def main(argv: list[str]) -> int:
    """Run ``test`` with the arguments after the subcommand."""
    return run("test", argv)
