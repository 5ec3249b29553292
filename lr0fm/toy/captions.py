"""Captions composed from a scene's attributes, with varied phrasings and randomly omitted attributes.

The zero-shot prompt templates of the toy datasets (``"a {c} shape"``, ``"a photo of a {c} object"``)
are phrasings this module also produces when the other attributes are omitted, so the text tower has
seen them during pre-training.
"""

from __future__ import annotations

import re

import numpy as np

from lr0fm.toy.world import Attributes

#: Nouns that stand in for the shape when it is omitted.
GENERIC_NOUNS: tuple[str, ...] = ("shape", "object", "thing")
#: Noun phrases for textures in "with ..." phrasings.
TEXTURE_PHRASES: dict[str, str] = {
    "solid": "a plain fill",
    "striped": "stripes",
    "dotted": "dots",
    "checkered": "a checkered pattern",
}
#: Caption patterns: ``{adj}`` is the adjective chain (size colour texture), ``{noun}`` the shape or a
#: generic noun, ``{bg}`` an optional background clause, ``{with}`` a texture clause.
PATTERNS: tuple[str, ...] = (
    "a {adj} {noun}{bg}",
    "a photo of a {adj} {noun}{bg}",
    "an image of a {adj} {noun}{bg}",
    "a picture of a {adj} {noun}",
    "there is a {adj} {noun}{bg}",
    "a {adj} {noun} with {with}{bg}",
)
#: Probability that each of size, colour, texture, shape, background is left out of a caption.
OMIT_PROB = 0.5


def fixed_words() -> set[str]:
    """Return the words of the patterns, texture phrases, background clause and generic nouns."""
    texts = [re.sub(r"\{\w+\}", " ", p) for p in PATTERNS] + list(TEXTURE_PHRASES.values())
    return {w for text in texts for w in text.split()} | {"on", "background"} | set(GENERIC_NOUNS)


def compose_caption(attrs: Attributes, rng: np.random.Generator) -> str:
    """Compose a caption of ``attrs``: a random phrasing in which each attribute may be omitted.

    Args:
        attrs: the object's attributes.
        rng: source of the phrasing and omission choices (deterministic given its state).

    Returns:
        A lower-case caption such as ``"a small red striped triangle on a white background"``.

    """
    keep = rng.random(5) >= OMIT_PROB
    if not keep[:4].any():  # always say something about the object itself
        keep[int(rng.integers(4))] = True
    pattern = PATTERNS[int(rng.integers(len(PATTERNS)))]
    with_texture = "{with}" in pattern and keep[2]
    if "{with}" in pattern and not with_texture:
        pattern = PATTERNS[0]
    size = [attrs.size] if keep[0] else []
    color = [attrs.color] if keep[1] else []
    texture = [attrs.texture] if keep[2] and not with_texture else []
    adj = " ".join(size + color + texture)
    noun = attrs.shape if keep[3] else GENERIC_NOUNS[int(rng.integers(len(GENERIC_NOUNS)))]
    caption = pattern.format(
        adj=adj,
        noun=noun,
        bg=f" on a {attrs.background} background" if keep[4] else "",
        **{"with": TEXTURE_PHRASES[attrs.texture]},
    )
    return " ".join(caption.split())  # collapse the gaps left by omitted adjectives
