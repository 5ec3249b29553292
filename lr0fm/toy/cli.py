"""``lr0fm toy``: pre-train the tiny CLIP in the toy world and evaluate it at low resolutions."""

from __future__ import annotations

import json
import sys
from typing import Any

PRETRAIN, EVAL = "pretrain", "eval"

#: help of each option of ``toy pretrain`` (a field of :class:`~lr0fm.toy.pretrain_config.PretrainConfig`)
PRETRAIN_HELP = {
    "seed": "seeds the model initialisation and the stream of rendered training images",
    "max_steps": "optimiser steps",
    "batch_size": "(image, caption) pairs per step",
    "lr": "peak AdamW learning rate",
    "weight_decay": "AdamW weight decay",
    "warmup_steps": "linear warm-up before the cosine decay",
    "num_threads": "torch CPU threads",
    "log_every": "print the loss every this many steps (0: never)",
    "export_every": "also export to the output folder every this many steps (0: only at the end)",
    "init_from": "folder of a previous export to start from (a second stage)",
    "model_cfg": "open_clip CLIP kwargs (text_cfg.vocab_size is set from the tokenizer)",
}


def _pretrain_parser():
    from lr0fm.command import add_dataclass_options, command_parser
    from lr0fm.toy.pretrain_config import PretrainConfig

    parser = command_parser(
        f"lr0fm toy {PRETRAIN}",
        "Pre-train the tiny CLIP (toyclip) on the toy world's pretrain split; writes the weights, config and "
        "tokenizer to OUTPUT.",
        preset_kind="toy",
    )
    add_dataclass_options(parser, PretrainConfig, PRETRAIN_HELP, types={"model_cfg": dict})
    parser.add_argument("--output", type=str, default="toyclip_run", help="folder for the weights")
    return parser


def _eval_parser():
    from jsonargparse import ActionYesNo

    from lr0fm.command import command_parser

    parser = command_parser(f"lr0fm toy {EVAL}", "Zero-shot top-1 of toyclip on the toy tasks at several resolutions.")
    parser.add_argument("--weights_dir", type=str | None, default=None, help="folder written by `toy pretrain` "
                        "(default: the shipped weights)")  # fmt: skip
    parser.add_argument(
        "--resolutions", nargs="+", type=int, default=[32, 16, 8], help="LR sides besides native (1 to 64 px)"
    )
    parser.add_argument("--num_per_class", type=int, default=100, help="images per class")
    parser.add_argument(
        "--json", action=ActionYesNo, default=False, help="print the results as JSON (top-1 in percent, as the table)"
    )
    return parser


def build_parser():
    """Parser of ``lr0fm toy`` and its subcommands."""
    from lr0fm.command import add_subcommands, command_parser

    parser = command_parser("lr0fm toy", __doc__)
    add_subcommands(
        parser,
        {
            PRETRAIN: (_pretrain_parser(), "pre-train the tiny CLIP (toyclip) on the pretrain split"),
            EVAL: (_eval_parser(), "zero-shot top-1 of toyclip on the toy tasks"),
        },
    )
    return parser


def pretrain_config(argv: list[str]) -> Any:
    """The :class:`~lr0fm.toy.pretrain_config.PretrainConfig` of ``lr0fm toy pretrain ARGV`` (and the parse)."""
    from lr0fm.command import dataclass_values, parse
    from lr0fm.toy.pretrain_config import PretrainConfig

    cfg = parse(_pretrain_parser(), argv, preset_kind="toy")
    return PretrainConfig(**dataclass_values(cfg, PretrainConfig)), cfg


def check_eval_args(resolutions: list[int], num_per_class: int) -> None:
    """Refuse LR sides outside ``1..NATIVE_SIZE`` and a non-positive ``--num_per_class``.

    Raises:
        ToyError: naming the value and the accepted range.

    """
    from lr0fm.toy.pretrain_config import ToyError
    from lr0fm.toy.world import NATIVE_SIZE

    bad = [r for r in resolutions if isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= NATIVE_SIZE]
    if bad or not resolutions:
        raise ToyError(
            f"--resolutions {' '.join(map(str, bad or resolutions))} is not valid: expected LR sides from 1 to "
            f"{NATIVE_SIZE} px (the toy images' native side; the native resolution itself is always scored), "
            "e.g. --resolutions 32 16 8."
        )
    if isinstance(num_per_class, bool) or not isinstance(num_per_class, int) or num_per_class < 1:
        raise ToyError(f"--num_per_class {num_per_class!r} is not valid: expected a positive integer, e.g. 100.")


def main(argv: list[str] | None = None) -> int:
    """Run ``lr0fm toy <command>``; returns the exit status (2 on a bad setting)."""
    from lr0fm.command import OutputPathError
    from lr0fm.toy.pretrain_config import ToyError

    argv = list(sys.argv[1:] if argv is None else argv)
    command = PRETRAIN if argv and argv[0] == PRETRAIN else EVAL
    try:
        return _run(argv)
    except (ToyError, FileNotFoundError, OutputPathError) as exc:
        print(f"lr0fm toy {command}: error: {exc}", file=sys.stderr)
        return 2


def _run(argv: list[str]) -> int:
    if argv and argv[0] == PRETRAIN:  # resolve preset names of the subcommand's --config
        config, cfg = pretrain_config(argv[1:])
        from lr0fm.command import check_output_folder, save_config
        from lr0fm.toy.pretrain import pretrain

        check_output_folder(cfg.output, holds="the toyclip weights, config and tokenizer")  # before training

        pretrain(config, cfg.output)
        save_config(_pretrain_parser(), cfg, cfg.output)
        print(f"wrote toyclip weights, config and tokenizer to {cfg.output}")
        return 0
    from lr0fm.command import parse

    cfg = parse(build_parser(), argv)
    args = cfg[cfg.command]
    check_eval_args(args.resolutions, args.num_per_class)
    from lr0fm.toy.backbone import load_toyclip
    from lr0fm.toy.evaluate import evaluate_toy

    backbone = load_toyclip(weights_dir=args.weights_dir)
    results = evaluate_toy(backbone, resolutions=[None, *args.resolutions], num_per_class=args.num_per_class)
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        columns = list(next(iter(results.values())))
        print(f"{'task':<12}" + "".join(f"{c:>8}" for c in columns))
        for task, row in results.items():
            print(f"{task:<12}" + "".join(f"{row[c]:8.1f}" for c in columns))
    return 0
