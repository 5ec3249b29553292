"""Diffusion-generated HR training images for LR-TK0 (``lr0fm synth``).

Captions are sampled reproducibly from a caption file, every image gets its own seed derived from
(global seed, caption id, image index), and the output folder is resumable and shardable across
GPUs and machines. See ``docs/synth.md`` for the on-disk layout.
"""

from lr0fm.lazy import lazy_exports

#: public name -> submodule; loaded on first use so ``lr0fm synth --help`` does not import torch
_EXPORTS = {
    "SynthConfig": "config",
    "SynthError": "config",
    "SynthReport": "generation",
    "generate": "generation",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = ["SynthConfig", "SynthError", "SynthReport", "generate"]
