"""A tiny, randomly initialised PixArt-α pipeline built fully offline (tests and smoke runs).

The real ``PixArtAlphaPipeline`` class is assembled from components sized down to a few thousand
parameters: a 1-layer ``PixArtTransformer2DModel``, a 1-block ``AutoencoderKL``, a 1-layer
``T5EncoderModel`` and a word-level tokenizer trained in memory. Nothing is downloaded. The output
images are noise-like but go through every step of the real pipeline (text encoding, classifier-free
guidance, DPM-Solver denoising, VAE decoding).
"""

from __future__ import annotations

from pathlib import Path

import torch

#: Words the tiny tokenizer knows; anything else maps to ``<unk>``.
_VOCAB_WORDS = (
    "a an the of on in with and to at by is are photo picture image dog cat man woman person "
    "car street tree house city sky water beach mountain red blue green white black small large"
).split()

#: Side of the images the tiny pipeline produces with resolution binning off.
TINY_IMAGE_SIZE = 32


def build_tiny_tokenizer():
    """Build a ``PreTrainedTokenizerFast`` with a word-level vocabulary, without any download.

    Returns:
        A tokenizer with ``<pad>`` (id 0), ``</s>`` (id 1) and ``<unk>`` (id 2) special tokens.

    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for word in _VOCAB_WORDS:
        vocab.setdefault(word, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=120,
    )


def build_tiny_pixart(seed: int = 0):
    """Build a tiny randomly initialised ``PixArtAlphaPipeline`` in memory.

    Args:
        seed: seeds the random weights, so two calls with the same seed give the same pipeline.

    Returns:
        A ``diffusers.PixArtAlphaPipeline`` on CPU in float32. Call it with
        ``use_resolution_binning=False`` (its ``sample_size`` has no aspect-ratio bins); it makes
        ``TINY_IMAGE_SIZE`` x ``TINY_IMAGE_SIZE`` images.

    """
    from diffusers import (
        AutoencoderKL,
        DPMSolverMultistepScheduler,
        PixArtAlphaPipeline,
        PixArtTransformer2DModel,
    )
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    text_dim = 32
    transformer = PixArtTransformer2DModel(
        sample_size=TINY_IMAGE_SIZE // 2,
        num_layers=1,
        patch_size=2,
        attention_head_dim=8,
        num_attention_heads=2,
        caption_channels=text_dim,
        in_channels=4,
        cross_attention_dim=16,
        out_channels=8,
        attention_bias=True,
        activation_fn="gelu-approximate",
        num_embeds_ada_norm=1000,
        norm_type="ada_norm_single",
        norm_elementwise_affine=False,
        norm_eps=1e-6,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=TINY_IMAGE_SIZE,
    )
    tokenizer = build_tiny_tokenizer()
    text_encoder = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=text_dim,
            d_kv=8,
            d_ff=64,
            num_layers=1,
            num_heads=2,
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
    )
    pipe = PixArtAlphaPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder.eval(),
        vae=vae.eval(),
        transformer=transformer.eval(),
        scheduler=DPMSolverMultistepScheduler(),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_pixart(directory: str | Path, seed: int = 0) -> Path:
    """Save :func:`build_tiny_pixart` with ``save_pretrained`` so ``--pipeline DIR`` can load it.

    Args:
        directory: where to write ``model_index.json`` and the component folders.
        seed: seeds the random weights.

    Returns:
        The directory, as a ``Path``.

    """
    directory = Path(directory)
    build_tiny_pixart(seed).save_pretrained(directory)
    return directory
