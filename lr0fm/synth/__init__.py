"""Diffusion-generated HR training images for LR-TK0 (``lr0fm synth``).

Captions are sampled reproducibly from a caption file, every image gets its own seed derived from
(global seed, caption id, image index), and the output folder is resumable and shardable across
GPUs and machines. See ``docs/synth.md`` for the on-disk layout.
"""

from lr0fm.synth.config import SynthConfig, SynthError
from lr0fm.synth.generate import SynthReport, generate

__all__ = ["SynthConfig", "SynthError", "SynthReport", "generate"]
