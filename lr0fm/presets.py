"""Configs and data shipped with lr0fm, reachable by name from any working directory.

``lr0fm benchmark --config toy``, ``lr0fm fit --config eva02_b16 --config ablations/vpt``,
``lr0fm synth --config paper_7k``, ``lr0fm toy pretrain --config pretrain`` and
``lr0fm metrics report lr0fm66`` name files inside the installed package (``lr0fm/configs/<command>/`` and
``lr0fm/resources/results/``); a path to an existing file is used as it is. The repository's ``configs/``
is a link to ``lr0fm/configs``: one copy of every preset.
"""

from __future__ import annotations

from pathlib import Path

#: The packaged configs, one folder per command family.
CONFIGS = Path(__file__).resolve().parent / "configs"
#: Published results tables by name.
RESULTS = {"lr0fm66": Path(__file__).resolve().parent / "resources" / "results" / "lr0fm66_results.csv"}


def list_presets(kind: str) -> list[str]:
    """Names of the packaged configs of ``kind`` (``benchmark``, ``lrtk0``, ``synth``, ``toy``).

    A ``weights/`` folder holds files the presets point to (WAR weights), not presets.
    """
    folder = CONFIGS / kind
    paths = (p.relative_to(folder) for p in folder.rglob("*.yaml"))
    return sorted(p.with_suffix("").as_posix() for p in paths if p.parts[0] != "weights")


def resolve_config(value: str, kind: str) -> str:
    """The file a ``--config`` value names: an existing path, else the packaged preset ``kind/value[.yaml]``.

    Raises:
        FileNotFoundError: neither a file nor a preset (the message lists the presets of ``kind``).

    """
    if Path(value).is_file():
        return value
    name = value[: -len(".yaml")] if value.endswith(".yaml") else value
    preset = CONFIGS / kind / f"{name}.yaml"
    if preset.is_file():
        return str(preset)
    from lr0fm.catalog import did_you_mean

    names = list_presets(kind)
    raise FileNotFoundError(
        f"config {value!r} is neither a file nor a packaged {kind} preset.{did_you_mean(name, names)} "
        f"Presets: {', '.join(names)}."
    )


def resolve_results(value: str) -> str:
    """The results table a value names: an existing path, else a published table by name (``lr0fm66``)."""
    if value in RESULTS and not Path(value).exists():
        return str(RESULTS[value])
    return value


def resolve_config_args(argv: list[str], kind: str) -> list[str]:
    """``--config NAME`` -> the packaged preset file of ``kind`` (a path to an existing file is kept).

    Raises:
        FileNotFoundError: a ``--config`` value is neither a file nor a preset.

    """
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--config" and i + 1 < len(out):
            out[i + 1] = resolve_config(out[i + 1], kind)
        elif arg.startswith("--config="):
            out[i] = "--config=" + resolve_config(arg.partition("=")[2], kind)
    return out
