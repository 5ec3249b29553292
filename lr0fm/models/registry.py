"""One entry point for every backbone: :func:`load_backbone` and :func:`list_models`.

In the style of open_clip's factory and timm's registry: a spec string names the architecture and the
weights, wildcards list what can be loaded, unknown names fail with close matches.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import open_clip

from lr0fm.models import (  # noqa: F401  (each registers its spec scheme)
    albef_loader,  # albef:
    blip_loader,  # hf:
    blip_pth_loader,  # blip:
    eva_clip_loader,  # eva-clip:
    m2_encoder_loader,  # m2-encoder:
)
from lr0fm.models.base import Backbone
from lr0fm.models.families import BACKBONES, SCHEMES
from lr0fm.models.groups import FAMILY_GROUPS, TABLE_GROUPS, family_pairs
from lr0fm.models.openclip_loader import load_open_clip
from lr0fm.models.paper_backbones import PLUS_PAPER_CONFIG, read_paper_backbones
from lr0fm.models.specs import SPEC_FORMS, parse_spec


def backbone_table(paper_config: str | Path | None = None) -> dict[str, dict]:
    """The backbone table names resolve through: ``paper_config``, else ``lr0fm_plus.yaml`` (the 66 and more).

    The default is the extended table so that its names (the paper's 66 and the newest families') load by
    name; a spec of the paper's 66 gets the same entry, and so the same LR chain, from either table.
    """
    if paper_config is None and PLUS_PAPER_CONFIG.is_file():
        paper_config = PLUS_PAPER_CONFIG
    return read_paper_backbones(paper_config)


def list_models(pattern: str = "*", *, paper_config: str | Path | None = None) -> list[str]:
    """List loadable backbone names matching an fnmatch ``pattern`` (case-insensitive), or a group's names.

    The names are every open_clip ``ARCH:TAG`` pretrained pair, the named backbones (registered with
    :func:`lr0fm.models.families.register_backbone`, e.g. the toy world's ``toyclip``) and the backbone
    names of the table (default: ``lr0fm/resources/backbones/lr0fm_plus.yaml``, the paper's 66 and more).

    Args:
        pattern: wildcard pattern, e.g. ``"ViT-B-16*:*laion*"`` or ``"*SigLIP*"``, or a group name
            (:mod:`lr0fm.models.groups`): a family (``siglip2``, ``metaclip2``, ``pe-core``, ``mobileclip2``,
            ``dfn``: its open_clip pretrained pairs) or a packaged table (``lr0fm66``, ``lr0fm-plus``: its names).
        paper_config: another backbone table to read instead of the default YAML.

    """
    group = pattern.lower()
    if group in FAMILY_GROUPS:
        return family_pairs(group, open_clip.list_pretrained())
    if group in TABLE_GROUPS:
        return list(read_paper_backbones(group))
    names = [*open_clip.list_pretrained(as_str=True), *BACKBONES.names(), *backbone_table(paper_config)]
    pattern = pattern.lower()
    return [name for name in dict.fromkeys(names) if fnmatch.fnmatchcase(name.lower(), pattern)]


def check_spec(spec: str, *, paper_config: str | Path | None = None) -> str:
    """Check a spec without loading any weights; return how it loads (``named``, a scheme, ``open_clip``).

    Raises:
        ValueError: unknown spec, architecture or tag (with close matches), or a paper backbone without loader.
        FileNotFoundError: a path in an open_clip spec does not exist.

    """
    spec = spec.strip()
    if spec in BACKBONES:
        return "named"
    paper = backbone_table(paper_config)
    if spec in paper:
        entry = paper[spec]
        if entry.get("needs_adapter") or not entry.get("spec"):
            raise ValueError(f"Paper backbone {spec!r} cannot be loaded by lr0fm yet: {entry.get('note', '')}.")
        return check_spec(str(entry["spec"]), paper_config=paper_config)
    scheme, sep, _ = spec.partition(":")
    if sep and scheme in SCHEMES:
        return scheme
    parse_spec(spec, [*open_clip.list_pretrained(as_str=True), *BACKBONES.names(), *paper])
    return "open_clip"


def load_backbone(
    spec: str,
    *,
    device: str = "cpu",
    seed: int | None = None,
    cache_dir: str | None = None,
    precision: str = "fp32",
    paper_config: str | Path | None = None,
) -> Backbone:
    """Load a zero-shot image-text backbone in eval mode from a spec string.

    Spec forms:
        - ``ARCH:TAG``: an open_clip pretrained pair, e.g. ``"ViT-B-16:laion2b_s34b_b88k"``,
          ``"EVA02-B-16:merged2b_s8b_b131k"``, ``"ViT-B-16-SigLIP:webli"``, ``"RN50:openai"``.
        - ``ARCH:/path/weights.safetensors`` (or ``.bin``/``.pt``): open_clip architecture, local weights.
        - ``ARCH:none``: random weights, initialised from ``seed`` (0 when not given).
        - ``/path/arch.json`` or ``/path/arch.json:TAG``: an open_clip model config, registered under its
          file stem; without a TAG the weights are random (as ``ARCH:none``).
        - ``local-dir:/path`` and ``hf-hub:org/repo``: passed to open_clip unchanged, so the
          ``preprocess_cfg`` stored with the weights is honoured.
        - ``hf:Salesforce/blip-itm-base-coco`` (any BLIP ITM hub repo or local dir): BLIP ITC zero-shot
          through transformers.
        - ``albef:/path/ALBEF_4M.pth[?tokenizer=DIR_OR_HUB_ID&image_size=N]``: an original ALBEF checkpoint,
          ITC zero-shot (:mod:`lr0fm.models.albef_loader`); relative names are looked up in ``$LR0FM_WEIGHTS``.
        - ``blip:/path/model_base.pth`` (or a bare file name looked up in ``$LR0FM_WEIGHTS``, then the current
          directory; ``?tokenizer=DIR`` for a local ``bert-base-uncased``): Salesforce's original BLIP
          checkpoints, ITC zero-shot at 384 px.
        - ``eva-clip:EVA-CLIP-8B[:/path/EVA_CLIP_8B_psz14_s9B.pt|none]`` (also ``EVA-CLIP-18B`` or a config
          ``.json``): EVA-CLIP-8B/-18B from the original checkpoint (:mod:`lr0fm.models.eva_clip_loader`).
        - ``m2-encoder:M2-Encoder-0.4B[:/path/m2_encoder_0.4B.ckpt|none][?tokenizer=/path/sp.model]`` (also
          ``M2-Encoder-1B``/``-10B`` or an Ant config ``.json``): M²-Encoder from the original checkpoint
          (:mod:`lr0fm.models.m2_encoder_loader`); bare file names are looked up in ``$LR0FM_WEIGHTS``.
        - a registered name (``"toyclip"``) or a paper backbone name from ``list_models()``.

    Args:
        spec: the spec string.
        device: torch device for the model.
        seed: random seed for any randomly initialised weights (restores the caller's RNG afterwards).
        cache_dir: download cache for pretrained weights.
        precision: ``"fp32"`` (default), ``"fp16"`` or ``"bf16"``; open_clip models also accept
            ``"pure_fp16"``/``"pure_bf16"``.
        paper_config: backbone table to resolve paper names from (default:
            ``lr0fm/resources/backbones/lr0fm_plus.yaml``, which includes ``lr0fm66.yaml``).

    Returns:
        The backbone (``spec`` is the resolved spec string); ``info`` holds ``arch``, ``tag``,
        ``num_params``, ``image_size`` and, when the spec or name is in the paper's table, ``paper_name``,
        ``paper_family`` and ``paper_protocol`` (the authors' LR chain, see :mod:`lr0fm.protocols`).

    Raises:
        ValueError: unknown spec, architecture or tag (with close matches and the accepted forms), or a
            paper backbone that lr0fm cannot load yet.
        FileNotFoundError: a path in the spec does not exist.
        WeightsUnavailableError: the weights could not be downloaded or found in the cache.

    """
    spec = spec.strip()
    if spec in BACKBONES:
        return BACKBONES.get(spec)(device=device)
    paper = backbone_table(paper_config)
    entry = paper.get(spec)
    if entry is not None:
        if entry.get("needs_adapter") or not entry.get("spec"):
            note = entry.get("note", "no loader yet")
            raise ValueError(f"Paper backbone {spec!r} cannot be loaded by lr0fm yet: {note}.")
        paper_name, spec = spec, str(entry["spec"]).strip()
    else:
        paper_name = next((name for name, e in paper.items() if str(e.get("spec", "")).strip() == spec), None)
    scheme, sep, rest = spec.partition(":")
    kwargs = {"name": spec, "device": device, "seed": seed, "cache_dir": cache_dir, "precision": precision}
    if sep and scheme in SCHEMES:
        backbone = SCHEMES.get(scheme)(rest, **kwargs)
    else:
        known = [*open_clip.list_pretrained(as_str=True), *BACKBONES.names(), *paper]
        backbone = load_open_clip(parse_spec(spec, known), **kwargs)
    if paper_name is not None:
        entry = paper[paper_name]
        backbone.info.update(
            paper_name=paper_name, paper_family=entry.get("family"), paper_protocol=entry.get("protocol")
        )
    return backbone


__all__ = ["SPEC_FORMS", "backbone_table", "check_spec", "list_models", "load_backbone"]
