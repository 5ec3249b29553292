"""The ``lr0fm`` command line.

The top level only dispatches: each subcommand lives in its own module and is imported on use, so
``lr0fm --help`` never waits for torch or Lightning.
"""

from __future__ import annotations

import importlib
import os
import sys

#: subcommand -> (module with a ``main(argv)`` function, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "benchmark": (
        "lr0fm.benchmark.cli",
        "zero-shot top-1 of backbones on datasets at 16-128 px and HR, one pass per dataset, resumable",
    ),
    "toy": (
        "lr0fm.toy.cli",
        "offline toy world: `toy pretrain` trains the tiny CLIP (toyclip), `toy eval` scores it",
    ),
    "metrics": (
        "lr0fm.metrics.cli",
        "ACC/SAR/WAR robustness metrics of a results table; `metrics optimize-weights` fits WAR weights",
    ),
    "report": (
        "lr0fm.analysis.report_cli",
        "the paper's figures and one self-contained index.html from a results table (or benchmark folder)",
    ),
    "synth": (
        "lr0fm.synth.cli",
        "generate the diffusion-made HR training set of LR-TK0 (resumable, shardable across GPUs)",
    ),
    "fit": ("lr0fm.lrtk0.cli.fit", "train LR-TK0 tokens (LightningCLI fit): `fit --config configs/lrtk0/toy.yaml`"),
    "validate": ("lr0fm.lrtk0.cli.validate", "LR-TK0 validation loss + zero-shot benchmark of a checkpoint"),
    "test": ("lr0fm.lrtk0.cli.test", "LR-TK0 test loop + zero-shot benchmark of a checkpoint"),
    "export-tokens": (
        "lr0fm.lrtk0.cli.export",
        "write the tokens-only export of an LR-TK0 checkpoint (for `benchmark --lr_tokens`)",
    ),
    "analyze": (
        "lr0fm.analysis.analyze_cli",
        "model analyses as report figures: layer-similarity, tsne, gradcam, mispredictions (paper Figs. 2, 7, 8, 16)",
    ),
}

USAGE = "usage: lr0fm [-h] [--version] <command> [<args>] [--debug]"
#: shows the traceback of an error instead of its one-line message (also: LR0FM_DEBUG=1)
DEBUG_FLAG = "--debug"
DEBUG_ENV = "LR0FM_DEBUG"


def _help() -> str:
    width = max(len(name) for name in SUBCOMMANDS)
    lines = [
        USAGE,
        "",
        "LR0.FM: low-resolution robustness of vision-language foundation models.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in SUBCOMMANDS.items()]
    lines += [
        "",
        "Run `lr0fm <command> --help` for the options of a command. Errors print one line; add --debug (or set",
        "LR0FM_DEBUG=1) for the traceback.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lr0fm`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_help())
        return 0 if argv else 2
    if argv[0] == "--version":
        from lr0fm import __version__

        print(f"lr0fm {__version__}")
        return 0
    command, rest = argv[0], [a for a in argv[1:] if a != DEBUG_FLAG]
    debug = len(rest) < len(argv) - 1 or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    if debug:
        os.environ[DEBUG_ENV] = "1"  # worker and DDP processes inherit it
    if command not in SUBCOMMANDS:
        from lr0fm.catalog import did_you_mean

        print(f"lr0fm: unknown command {command!r}.{did_you_mean(command, list(SUBCOMMANDS))}", file=sys.stderr)
        print(_help(), file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[command][0])
    try:
        return int(module.main(rest) or 0)
    except SystemExit as done:  # a parser's --help, --print_config or usage error: its status, as a return value
        return done.code if isinstance(done.code, int) else int(done.code is not None)
    except BrokenPipeError:  # `lr0fm benchmark --list_models | head`: the reader left; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 0
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"lr0fm {command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line for the user; the traceback with --debug
        if debug:
            raise
        print(f"lr0fm {command}: error: {error_line(exc)}", file=sys.stderr)
        print(f"(run `lr0fm {command} ... {DEBUG_FLAG}` for the traceback)", file=sys.stderr)
        return 1


def error_line(exc: BaseException) -> str:
    """An exception as the user reads it: its message (and its type when the message alone says little)."""
    message = str(exc).strip() or type(exc).__name__
    if isinstance(exc, (OSError, ValueError, LookupError, RuntimeError)) and type(exc).__module__ == "builtins":
        return message
    return f"{message} ({type(exc).__name__})" if str(exc).strip() else message


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
