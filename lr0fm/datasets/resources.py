"""Packaged class names, prompt templates and WordNet-id lists of the 15 canonical datasets.

The files live in ``lr0fm/resources/datasets/<name>/`` (see the README there for their sources):
``classnames.txt`` (one name per line, line index = label), ``templates.txt`` (one prompt per line with
``{c}`` where the class name goes) and, for the ImageNet family, ``wnids.txt``; ``folders.txt`` maps the
on-disk folder names of Caltech101 and EuroSAT to the label order of ``classnames.txt``.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from lr0fm.datasets.base import DatasetError

#: The placeholder every prompt template must contain.
PLACEHOLDER = "{c}"


def _read_lines(text: str) -> list[str]:
    return [line.rstrip("\r") for line in text.split("\n") if line.strip()]


@cache
def packaged_lines(name: str, filename: str) -> tuple[str, ...]:
    """Return the non-empty lines of the packaged file ``resources/datasets/<name>/<filename>``.

    Raises:
        DatasetError: when the package ships no such file.

    """
    node = resources.files("lr0fm").joinpath("resources", "datasets", name, filename)
    if not node.is_file():
        raise DatasetError(f"lr0fm ships no {filename!r} for dataset {name!r} (looked in {node}).")
    return tuple(_read_lines(node.read_text(encoding="utf-8")))


def classnames(name: str) -> list[str]:
    """CLIP's curated class names of canonical dataset ``name`` (index = label)."""
    return list(packaged_lines(name, "classnames.txt"))


def templates(name: str) -> list[str]:
    """CLIP's prompt templates of canonical dataset ``name`` (each contains ``{c}``)."""
    return list(packaged_lines(name, "templates.txt"))


def check_templates(items: list[str], source: str) -> list[str]:
    """Validate prompt templates: non-empty, each containing ``{c}``.

    Args:
        items: the templates.
        source: where they came from (a file path), named in the error.

    Raises:
        DatasetError: naming the first template without the placeholder.

    """
    if not items:
        raise DatasetError(f"{source}: no prompt templates; write one per line, e.g. 'a photo of a {{c}}.'")
    for line_no, template in enumerate(items, 1):
        if PLACEHOLDER not in template:
            raise DatasetError(
                f"{source}, template {line_no} {template!r} has no {PLACEHOLDER!r} placeholder; every "
                f"template must contain {PLACEHOLDER} where the class name goes, e.g. 'a photo of a {{c}}.'"
            )
        try:
            template.format(c="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise DatasetError(
                f"{source}, template {line_no} {template!r} is not a valid template ({type(exc).__name__}: {exc}): "
                f"the only placeholder is {PLACEHOLDER}; write a literal brace as {{{{ or }}}}"
            ) from None
    return items


def read_text_lines(path: Path) -> list[str]:
    """Read the non-empty lines of a user-supplied UTF-8 text file (class names, templates)."""
    return _read_lines(path.read_text(encoding="utf-8"))
