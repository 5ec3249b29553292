"""Write ``lr0fm/resources/backbones/lr0fm_plus.yaml``: the paper's 66 (included) plus the newest open_clip families.

One entry per published checkpoint of SigLIP 2, MetaCLIP 2, PE-Core, MobileCLIP2 and DFN in the installed
open_clip (:mod:`lr0fm.models.groups` selects the pairs). A tag that open_clip also lists under the
``-quickgelu`` twin of its architecture (same weights) is entered once, as the ``-quickgelu`` spec, like the
paper's table does for DFN-5B; the two DFN-5B ViT-H checkpoints already in the 66 are not repeated.
``params`` is counted on a ``meta``-device build (no weights, no memory), ``resolution`` is the model
config's input size. No network is needed.

    python benchmarks/make_lr0fm_plus.py [--output lr0fm/resources/backbones/lr0fm_plus.yaml]
"""

from __future__ import annotations

import argparse
import re
import warnings
from pathlib import Path

import open_clip
import torch

from lr0fm.models.groups import FAMILY_GROUPS, family_of
from lr0fm.models.paper_backbones import DEFAULT_PAPER_CONFIG, PLUS_PAPER_CONFIG, read_paper_backbones

#: Family group -> (family label, pre-training data, its size; ``None`` where the release does not state one).
FAMILIES = {
    "siglip2": ("SigLIP2", "WebLI", "10B"),
    "metaclip2": ("MetaCLIP2", "MetaCLIP 2 worldwide", None),
    "pe-core": ("PE-Core", "PE (MetaCLIP-curated)", None),
    "mobileclip2": ("MobileCLIP2", "DFNDR-2B", "2B"),
    "dfn": ("DFN", None, None),
}
_DFN_DATA = {"dfn2b": ("DFN-2B", "2B"), "dfn2b_s39b": ("DFN-2B", "2B"), "dfn5b": ("DFN-5B", "5B")}

HEADER = """\
# lr0fm-plus: the LR0.FM paper's 66 backbones (included from lr0fm66.yaml, unchanged) plus the newest open_clip
# families -- SigLIP 2, MetaCLIP 2, PE-Core, MobileCLIP2, DFN -- one entry per published checkpoint of the
# installed open_clip. Written by benchmarks/make_lr0fm_plus.py; same fields as lr0fm66.yaml.
#
# protocol of the new entries: "paper-text" -- Resize((n, n)) bicubic, then the model's own preprocessing, i.e.
# open_clip's evaluation transform of the pretrained tag (its size, mean/std, interpolation and resize mode:
# squash for SigLIP 2, PE-Core and DFN-5B, shortest side + centre crop for MobileCLIP2, DFN-2B and MetaCLIP 2
# at 224), as the paper's text describes the benchmark ("followed by model specific preprocessing"). No
# authors' script covers these models, so none of their hard-coded chains (lr0fm/protocols/paper_chains.py)
# applies; hr is the native open_clip transform.
# MobileCLIP2-S0...S4 have FastViT (MCi) image towers, not ViTs: they benchmark but take no LR tokens.
"""


def _name(arch: str, tag: str, label: str) -> str:
    """A table name in the paper's style: ``SigLIP2-ViT-B/16@256px``, ``DFN-ViT-L/14 (2B, 39B seen)``."""
    if label in ("PE-Core", "MobileCLIP2"):
        body = arch.removeprefix(f"{label}-")
        body = re.sub(r"^([A-Za-z]+)-(\d+)", r"\1/\2", body)
        name = f"{label}-{body}"
        return re.sub(r"-(\d{3})$", r"@\1px", name)
    base = arch.replace("-quickgelu", "").replace("-SigLIP2", "").replace("-worldwide", "")
    base = re.sub(r"^ViT-(\w+)-(\d+)", r"ViT-\1/\2", base)
    base = re.sub(r"-(\d{3})$", r"@\1px", base)
    name = f"{label}-{base}"
    if tag == "dfn2b_s39b":
        name += " (2B, 39B seen)"
    elif tag.startswith("dfn"):
        name += f" ({tag.removeprefix('dfn').upper()})"
    return name


def _params_m(arch: str) -> float:
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")
        model = open_clip.create_model(arch, device="meta")
    return round(sum(p.numel() for p in model.parameters()) / 1e6, 2)


def new_pairs() -> list[tuple[str, str]]:
    """The family pairs of the installed open_clip, one per checkpoint (``-quickgelu`` twin preferred)."""
    pairs = [(arch, tag) for arch, tag in open_clip.list_pretrained() if family_of(arch, tag)]
    listed = set(pairs)
    in_66 = {str(e.get("spec")) for e in read_paper_backbones(DEFAULT_PAPER_CONFIG).values()}
    out = []
    for arch, tag in pairs:
        twin = arch.replace("-quickgelu", "")
        if arch == twin and (f"{arch}-quickgelu", tag) in listed:
            continue  # the -quickgelu twin holds the same weights
        if f"{arch}:{tag}" in in_66 or f"{twin}:{tag}" in in_66:
            continue
        out.append((arch, tag))
    order = list(FAMILY_GROUPS)
    return sorted(out, key=lambda pair: order.index(family_of(*pair)))


def entries() -> list[dict]:
    """The new table entries."""
    rows = []
    for arch, tag in new_pairs():
        label, data, size = FAMILIES[family_of(arch, tag)]
        if label == "DFN":
            data, size = _DFN_DATA[tag]
        rows.append(
            {
                "name": _name(arch, tag, label),
                "family": label,
                "protocol": "paper-text",
                "spec": f"{arch}:{tag}",
                "params": _params_m(arch),
                "pretrain_data": data,
                "pretrain_size": size,
                "resolution": int(open_clip.get_model_config(arch)["vision_cfg"]["image_size"]),
            }
        )
    return rows


def _yaml_value(value: object) -> str:
    return "null" if value is None else f'"{value}"' if isinstance(value, str) else str(value)


def render(rows: list[dict]) -> str:
    """The YAML text of the table."""
    lines = [HEADER, "include: lr0fm66.yaml", "backbones:"]
    family = None
    for row in rows:
        if row["family"] != family:
            family = row["family"]
            lines.append(f"  # {family}")
        first, *rest = row.items()
        lines.append(f"  - {first[0]}: {_yaml_value(first[1])}")
        lines += [f"    {key}: {_yaml_value(value)}" for key, value in rest]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=PLUS_PAPER_CONFIG)
    args = parser.parse_args()
    rows = entries()
    args.output.write_text(render(rows), encoding="utf-8")
    print(f"wrote {args.output}: {len(rows)} new backbones after the included 66")


if __name__ == "__main__":
    main()
