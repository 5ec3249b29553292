"""``lr0fm export-tokens``: the tokens-only export of the LR tokens in an LR-TK0 checkpoint."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str]) -> int:
    """Export ``CKPT``'s LR tokens to a ``.safetensors`` file that ``lr0fm benchmark --lr-tokens`` loads."""
    parser = argparse.ArgumentParser(
        prog="lr0fm export-tokens",
        description="Write the tokens-only export (safetensors + JSON config) of an LR-TK0 Lightning checkpoint, "
        "e.g. the best one kept by ModelCheckpoint. The backbone named in the checkpoint is loaded to check "
        "the token layout.",
    )
    parser.add_argument("checkpoint", help="a .ckpt written by `lr0fm fit`")
    parser.add_argument("-o", "--output", help="output .safetensors (default: the checkpoint path with that suffix)")
    args = parser.parse_args(argv)
    from lr0fm.lrtk0.module import export_checkpoint_tokens

    try:
        path = export_checkpoint_tokens(args.checkpoint, args.output)
    except (FileNotFoundError, ValueError, KeyError) as error:
        print(f"lr0fm export-tokens: {error}", file=sys.stderr)
        return 2
    print(f"LR tokens exported to {path}")
    return 0
