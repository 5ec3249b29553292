"""Named groups of backbones for ``lr0fm benchmark --list_models GROUP``: the newest open_clip families and the tables.

A family group selects open_clip ``ARCH:TAG`` pretrained pairs by architecture or tag (open_clip 3.x names):

* ``siglip2``: SigLIP 2 (``*SigLIP2*`` architectures, tag ``webli``), timm ViT towers;
* ``metaclip2``: MetaCLIP 2 (tag ``metaclip2_worldwide``), open_clip ViT towers;
* ``pe-core``: Perception Encoder Core (``PE-Core-*``, tag ``meta``), timm ``Eva`` towers with RoPE;
* ``mobileclip2``: MobileCLIP2 (``MobileCLIP2-*``, tag ``dfndr2b``): ``-B`` is a hybrid ViT (conv stem),
  ``-L-14`` a ViT, ``-S0``...``-S4`` FastViT (MCi) towers, which are not ViTs and take no LR tokens;
* ``dfn``: Data Filtering Networks CLIP (tags ``dfn2b``, ``dfn2b_s39b``, ``dfn5b``), open_clip ViT towers.

``lr0fm66`` and ``lr0fm-plus`` list the names of the packaged backbone tables
(:mod:`lr0fm.models.paper_backbones`). Import-light: no torch, no open_clip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

#: ``predicate(arch, tag)`` of each family group.
FAMILY_GROUPS: dict[str, Callable[[str, str], bool]] = {
    "siglip2": lambda arch, tag: "siglip2" in arch.lower(),
    "metaclip2": lambda arch, tag: tag == "metaclip2_worldwide",
    "pe-core": lambda arch, tag: arch.startswith("PE-Core-"),
    "mobileclip2": lambda arch, tag: arch.startswith("MobileCLIP2-"),
    "dfn": lambda arch, tag: tag in ("dfn2b", "dfn2b_s39b", "dfn5b"),
}
#: Groups that are the names of a packaged backbone table.
TABLE_GROUPS = ("lr0fm66", "lr0fm-plus")


def list_groups() -> list[str]:
    """Names accepted as ``--list_models GROUP``."""
    return [*FAMILY_GROUPS, *TABLE_GROUPS]


def family_of(arch: str, tag: str) -> str | None:
    """The family group an open_clip pretrained pair belongs to, or ``None``."""
    return next((name for name, member in FAMILY_GROUPS.items() if member(arch, tag)), None)


def family_pairs(group: str, pairs: Iterable[tuple[str, str]]) -> list[str]:
    """The ``ARCH:TAG`` strings of ``pairs`` in family ``group``.

    Raises:
        KeyError: ``group`` is not a family group.

    """
    member = FAMILY_GROUPS[group]
    return [f"{arch}:{tag}" for arch, tag in pairs if member(arch, tag)]
