"""``lr0fm export-tokens``: the tokens-only export of an LR-TK0 checkpoint (LR tokens, VPT prompts, RobustSAM)."""

from __future__ import annotations

import sys


def build_parser():
    """Parser of ``lr0fm export-tokens``."""
    from lr0fm.command import command_parser

    parser = command_parser(
        "lr0fm export-tokens",
        "Write the tokens-only export (safetensors + JSON config naming the method: LR tokens, VPT prompts or "
        "RobustSAM parts) of an LR-TK0 Lightning checkpoint, e.g. the one kept by ModelCheckpoint. The backbone "
        "named in the checkpoint is loaded to check the token layout.",
    )
    parser.add_argument("checkpoint", help="a .ckpt written by `lr0fm fit`")
    parser.add_argument(
        "--output", "-o", type=str | None, default=None, help="output .safetensors (default: the checkpoint's path "
        "with that suffix)"
    )  # fmt: skip
    return parser


def main(argv: list[str]) -> int:
    """Export ``CKPT``'s tokens to a ``.safetensors`` file that ``lr0fm benchmark --lr_tokens`` loads."""
    from lr0fm.command import parse

    cfg = parse(build_parser(), argv)
    from lr0fm.lrtk0.checkpoints import CheckpointError
    from lr0fm.lrtk0.module import export_checkpoint_tokens

    try:
        path = export_checkpoint_tokens(cfg.checkpoint, cfg.output)
    except CheckpointError as error:
        print(f"lr0fm export-tokens: error: {error}", file=sys.stderr)
        return 2
    print(f"LR tokens exported to {path}")
    return 0
