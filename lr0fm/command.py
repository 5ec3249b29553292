"""The one config layer of lr0fm's commands, on jsonargparse (as LightningCLI for ``fit``/``validate``/``test``).

Every command gets ``--config`` (a YAML file, or the name of a preset packaged under ``lr0fm/configs``; several
are merged, later ones win, flags win over files), ``--print_config`` (the resolved config, as YAML, then
exit), type-checked snake_case options, and writes its resolved config next to its outputs so a run can be
repeated with ``--config OUTPUT/config.yaml``.
"""

from __future__ import annotations

import sys
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, get_type_hints

from jsonargparse import ActionConfigFile, ActionYesNo, ArgumentParser, Namespace

from lr0fm.atomic import write_text_atomic
from lr0fm.presets import list_presets, resolve_config_args

#: Name of the resolved config a command writes next to its outputs.
CONFIG_NAME = "config.yaml"


def command_parser(
    prog: str, description: str, *, preset_kind: str | None = None, epilog: str | None = None
) -> ArgumentParser:
    """A parser with ``--config`` (files or packaged presets of ``preset_kind``) and ``--print_config``."""
    parser = ArgumentParser(prog=prog, description=description, epilog=epilog, print_config="--print_config")
    presets = f"; packaged presets: {', '.join(list_presets(preset_kind))}" if preset_kind else ""
    parser.add_argument("--config", action=ActionConfigFile, help=f"YAML file of options (flags win){presets}")
    return parser


def add_subcommands(parser: ArgumentParser, subcommands: dict[str, tuple[ArgumentParser, str]]) -> None:
    """Attach ``{name: (subparser, help)}`` under ``parser`` (dest ``command``); usage reads ``PROG NAME``.

    jsonargparse names a subcommand's usage ``PROG [options] NAME``; ours keep ``lr0fm metrics report``, the
    form a user types.
    """
    commands = parser.add_subcommands(dest="command")
    for name, (subparser, help_text) in subcommands.items():
        commands.add_subcommand(name, subparser, help=help_text)
        subparser.prog = f"{parser.prog} {name}"


def parse(parser: ArgumentParser, argv: list[str], preset_kind: str | None = None) -> Namespace:
    """Parse ``argv`` (``--config NAME`` resolved to a packaged preset first); exits 2 with a message on bad input."""
    if preset_kind is not None:
        try:
            argv = resolve_config_args(argv, preset_kind)
        except FileNotFoundError as exc:
            parser.error(str(exc))
    for i, arg in enumerate(argv):
        path = argv[i + 1] if arg == "--config" and i + 1 < len(argv) else arg.partition("=")[2]
        if (arg == "--config" or arg.startswith("--config=")) and Path(path).is_file():
            owner = _subcommand_parser(parser, argv[:i])
            problem = config_file_problem(owner, Path(path))
            if problem:  # one line: the usage block says nothing about a config file's content
                print(f"{owner.prog}: error: {problem}", file=sys.stderr)
                raise SystemExit(2)
    return parser.parse_args(argv)


def _subcommand_parser(parser: ArgumentParser, before: list[str]) -> ArgumentParser:
    """The (sub)parser that owns an option given after ``before`` (``lr0fm metrics report --config F``)."""
    action = parser._subcommands_action
    names = action._name_parser_map if action is not None else {}
    for arg in before:
        if arg in names:
            return _subcommand_parser(names[arg], before[before.index(arg) + 1 :])
    return parser


def config_file_problem(parser: ArgumentParser, path: Path) -> str | None:
    """What is wrong with a ``--config`` YAML file, in words that name the file, the key and the fix.

    Checks what the option parser reports obscurely: YAML syntax (with line and column), a top level that
    is not a mapping, and a single value where the option takes a list (``resolutions: 8``).
    """
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return f"config {path} is not valid YAML{where}: {problem}"
    except UnicodeDecodeError:
        return f"config {path} is not a UTF-8 text file"
    if data is None:
        return None
    if not isinstance(data, dict):
        return f"config {path} must be a mapping of option: value (found a {type(data).__name__})"
    list_options = {a.dest for a in parser._actions if a.nargs in ("+", "*")}
    for key, value in data.items():
        if key in list_options and value is not None and not isinstance(value, list):
            return f"config {path}: {key!r} takes a list; write `{key}: [{value}]` (found {value!r})"
    if parser._subcommands_action is None:  # a command's own options (subcommand configs nest their keys)
        for key, value in data.items():
            problem = _value_problem(parser, key, value)
            if problem:
                return f"config {path}: {problem}"
    return None


def _value_problem(parser: ArgumentParser, key: str, value: Any) -> str | None:
    """Why ``key: value`` is not accepted by ``parser`` (unknown key, wrong type), or ``None``."""
    from jsonargparse import ArgumentError

    from lr0fm.catalog import did_you_mean

    options = [a.dest for a in parser._actions if a.dest not in ("help", "config", "print_config")]
    if key not in options:
        return f"unknown option {key!r}.{did_you_mean(key, options)} Options: {', '.join(options)}"
    saved, parser.exit_on_error = parser.exit_on_error, False
    try:
        parser.parse_object({key: value}, defaults=False, _skip_validation=True)  # types only, not required args
    except ArgumentError as exc:
        reason = " ".join(str(exc).split())
        return f"{key}: {value!r} is not valid ({reason}); see `{parser.prog} --help` for what {key} takes"
    finally:
        parser.exit_on_error = saved
    return None


def config_files(cfg: Namespace) -> list[Path]:
    """The ``--config`` files of a parse, in order."""
    return [Path(str(path)) for path in (cfg.get("config") or []) if path is not None]


def save_config(parser: ArgumentParser, cfg: Namespace, folder: str | Path, name: str = CONFIG_NAME) -> Path:
    """Write the resolved config (without ``--config`` itself) to ``folder/name``; return the path."""
    values: dict[str, Any] = cfg.clone().as_dict()
    values.pop("config", None)
    values.pop("__path__", None)
    return write_text_atomic(Path(folder) / name, parser.dump(parser.parse_object(values), format="yaml"))


def add_dataclass_options(
    parser: ArgumentParser,
    cls: type,
    help: dict[str, str],
    *,
    lists: dict[str, Any] | None = None,
    types: dict[str, Any] | None = None,
    aliases: dict[str, str] | None = None,
) -> None:
    """One ``--field`` option per field of the dataclass ``cls``, with its default (the one source of defaults).

    Args:
        parser: the command's parser.
        cls: the settings dataclass.
        help: help text of every field.
        lists: fields given as space-separated values (``--models A B``), with their item type.
        types: fields whose option type differs from the annotation (e.g. ``int | str``).
        aliases: extra option names (``{"models": "--model"}``).

    """
    hints = get_type_hints(cls)
    lists, types, aliases = lists or {}, types or {}, aliases or {}
    for f in fields(cls):
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        default = None if default is MISSING else default
        names = [f"--{f.name}", *([aliases[f.name]] if f.name in aliases else [])]
        if f.name in lists:
            parser.add_argument(*names, nargs="+", type=lists[f.name], default=default, help=help[f.name])
        elif hints[f.name] is bool:
            parser.add_argument(*names, action=ActionYesNo, default=default, help=help[f.name])
        else:
            parser.add_argument(*names, type=types.get(f.name, hints[f.name]), default=default, help=help[f.name])


def dataclass_values(cfg: Namespace, cls: type) -> dict[str, Any]:
    """The values of ``cls``'s fields in a parse."""
    return {f.name: cfg[f.name] for f in fields(cls)}


def file_blocking(path: str | Path) -> Path | None:
    """The file that stops ``path`` from being (or being created as) a folder: itself or an ancestor; else ``None``."""
    path = Path(path)
    for candidate in (path, *path.parents):  # the nearest one that exists decides
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


class OutputPathError(ValueError):
    """An output option names a path that cannot be written as asked (a file where a folder goes, or back)."""


def check_output_folder(path: str | Path, flag: str = "--output", holds: str = "the outputs") -> None:
    """Refuse an output folder that is a file or lies below one, before any work is done.

    Args:
        path: the folder a command will write into (it may not exist yet).
        flag: the option that named it, for the message.
        holds: what the folder is for, for the message.

    Raises:
        OutputPathError: naming the path, the file in the way and the fix.

    """
    blocker = file_blocking(path)
    if blocker is not None:
        where = "is a file" if Path(blocker) == Path(path) else f"lies below {str(blocker)!r}, which is a file"
        raise OutputPathError(
            f"{flag} {str(path)!r} {where}; expected a folder (new or existing) for {holds}: pass another {flag} "
            "or move the file"
        )
