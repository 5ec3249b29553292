"""``lr0fm toy``: pre-train the tiny CLIP in the toy world and evaluate it at low resolutions."""

from __future__ import annotations

import argparse
import json
import sys


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lr0fm toy", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    pre = sub.add_parser("pretrain", help="pre-train the tiny CLIP (toyclip) on the pretrain split")
    pre.add_argument(
        "--config",
        default=None,
        help="recipe YAML, e.g. configs/toy/pretrain.yaml (default: the identical built-in recipe)",
    )
    pre.add_argument("--seed", type=int, default=None, help="override the recipe's seed")
    pre.add_argument("--max-steps", type=int, default=None, help="override the recipe's number of steps")
    pre.add_argument("--batch-size", type=int, default=None, help="override the recipe's batch size")
    pre.add_argument("--output", default="toyclip_run", help="folder for the weights (default: %(default)s)")
    ev = sub.add_parser("eval", help="zero-shot top-1 of toyclip on the toy tasks at several resolutions")
    ev.add_argument("--weights-dir", default=None, help="folder written by `toy pretrain` (default: shipped)")
    ev.add_argument("--resolutions", type=int, nargs="+", default=[32, 16, 8], help="LR sides besides native")
    ev.add_argument("--num-per-class", type=int, default=100, help="images per class (default: %(default)s)")
    ev.add_argument("--json", action="store_true", help="print the results as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``lr0fm toy <command>``; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "pretrain":
        from lr0fm.toy.pretrain import PretrainConfig, pretrain

        overrides = {"seed": args.seed, "max_steps": args.max_steps, "batch_size": args.batch_size}
        if args.config is None:
            cfg = PretrainConfig(**{k: v for k, v in overrides.items() if v is not None})
        else:
            from lr0fm.presets import resolve_config

            try:
                path = resolve_config(args.config, "toy")
            except FileNotFoundError as exc:
                print(f"lr0fm toy pretrain: {exc}", file=sys.stderr)
                return 2
            cfg = PretrainConfig.from_yaml(path, **overrides)
        pretrain(cfg, args.output)
        print(f"wrote toyclip weights, config and tokenizer to {args.output}")
        return 0
    from lr0fm.toy.backbone import load_toyclip
    from lr0fm.toy.evaluate import evaluate_toy

    try:
        backbone = load_toyclip(weights_dir=args.weights_dir)
    except FileNotFoundError as exc:
        print(f"lr0fm toy eval: {exc}", file=sys.stderr)
        return 2
    results = evaluate_toy(backbone, resolutions=[None, *args.resolutions], num_per_class=args.num_per_class)
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        columns = list(next(iter(results.values())))
        print(f"{'task':<12}" + "".join(f"{c:>8}" for c in columns))
        for task, row in results.items():
            print(f"{task:<12}" + "".join(f"{row[c]:8.1f}" for c in columns))
    return 0
