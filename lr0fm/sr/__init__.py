"""Super-resolution front-ends of ``lr0fm benchmark --sr``: an SR model between the LR image and the backbone.

:mod:`lr0fm.sr.upscalers` reads a ``--sr`` spec and loads the model (spandrel weights files, the packaged
table of the paper's Table 3 models, diffusers upscaler pipelines, classical interpolation);
:mod:`lr0fm.sr.chain` is the LR chain that runs it (the LR0.FM authors' SR script) on batches on the
accelerator. The names below are imported on first use.
"""

from __future__ import annotations

from lr0fm.lazy import lazy_exports

_EXPORTS = {
    "SR_CHAIN": "chain",
    "SRInputs": "chain",
    "SRViews": "chain",
    "describe_sr_chain": "chain",
    "sr_protocol_name": "chain",
    "sr_view_pipeline": "chain",
    "SRSpec": "upscalers",
    "SRSpecError": "upscalers",
    "Upscaler": "upscalers",
    "load_upscaler": "upscalers",
    "parse_sr_spec": "upscalers",
    "sr_table": "upscalers",
}

__getattr__ = lazy_exports(__name__, _EXPORTS)


__all__ = sorted(_EXPORTS)
