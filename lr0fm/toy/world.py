"""The procedural toy world: textured shapes on plain backgrounds, rendered at 64 px from a seed.

Every image is drawn from five *discrete* attributes (shape, colour, texture, size, background) and
continuous nuisances (exact radius, position, rotation, texture period, colour jitter, noise).

Split scheme (no shared images, no shared attribute combinations):
    The 4 x 6 x 4 x 3 x 3 = 864 discrete combinations are shuffled once with the fixed
    :data:`COMBO_SEED` and cut into ``pretrain`` (70 %), ``lrtk0`` (15 %) and ``eval`` (15 %), stratified
    so that every split contains every single attribute value. An image of split ``s`` only ever uses a
    combination of ``s``; the tiny CLIP's pre-training, the LR-token training (the stand-in for
    diffusion-generated images) and the evaluation sets therefore never share an image, and LR-token
    training never sees an evaluation combination. Within a split, the nuisances of image ``i`` come
    from ``numpy.random.default_rng((seed, split_id, *key))``, so every image is reproducible from
    ``(seed, split, index)``.

Textures alternate the object colour with a darkened copy of it at a period of 4 or 6 px, axis-aligned
and locked to the pixel grid (the rotation turns the shape only). Stripes and checks cover half of the
object, dots a quarter, and a solid object has exactly the mean colour of a dotted one: a patch-8 ViT
resolves the patterns at 64 px, while a 4x bicubic downsampling (16 px) blurs them into flat shades. What
survives at 16 px is a weak trace: {solid, dotted} and {striped, checkered} differ in shade relative to
the object's colour, while the members of each pair look alike. A model pre-trained at 64 px does not
read it, but it is learnable -- the headroom LR tokens can win back in the toy world.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import product

import numpy as np

#: Native side of every rendered image.
NATIVE_SIZE = 64

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
COLORS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "orange")
TEXTURES: tuple[str, ...] = ("solid", "striped", "dotted", "checkered")
SIZES: tuple[str, ...] = ("small", "medium", "large")
BACKGROUNDS: tuple[str, ...] = ("white", "black", "gray")

#: Attribute name -> its vocabulary, in the order of an attribute tuple.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "shape": SHAPES,
    "color": COLORS,
    "texture": TEXTURES,
    "size": SIZES,
    "background": BACKGROUNDS,
}

SPLITS: tuple[str, ...] = ("pretrain", "lrtk0", "eval")
SPLIT_FRACTIONS: tuple[float, float, float] = (0.70, 0.15, 0.15)
#: Fixed seed of the combination shuffle: the split scheme is part of the world, not of a run.
COMBO_SEED = 20250401

_RGB: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (40, 165, 50),
    "blue": (35, 70, 220),
    "yellow": (235, 210, 40),
    "purple": (145, 50, 185),
    "orange": (245, 135, 25),
    "white": (240, 240, 240),
    "black": (20, 20, 20),
    "gray": (128, 128, 128),
}
#: Object radius range (px, circumradius-like) per size class; ranges are well separated.
_RADIUS: dict[str, tuple[float, float]] = {
    "small": (8.0, 10.5),
    "medium": (13.5, 16.0),
    "large": (19.5, 23.0),
}
_PERIODS = (4.0, 6.0)  # texture periods in px at 64 px
_DARK = 0.3  # the texture's second colour is the object colour times this factor
_DOT_RADIUS = 0.28  # dots (in periods) cover ~25 % of the object; stripes and checks cover 50 %
_SOLID_SHADE = 1.0 - np.pi * _DOT_RADIUS**2 * (1.0 - _DARK)  # a solid object has a dotted one's mean colour
_NOISE_STD = (0.0, 6.0)  # Gaussian pixel noise range (0-255 scale)
_JITTER = 12.0  # max per-channel colour jitter


@dataclass(frozen=True)
class Attributes:
    """The discrete attributes of one object (each a word of its vocabulary in :data:`ATTRIBUTES`)."""

    shape: str
    color: str
    texture: str
    size: str
    background: str

    def __post_init__(self) -> None:
        for name, vocab in ATTRIBUTES.items():
            value = getattr(self, name)
            if value not in vocab:
                raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(vocab)}")

    def as_tuple(self) -> tuple[str, str, str, str, str]:
        """Return the attributes in :data:`ATTRIBUTES` order."""
        return (self.shape, self.color, self.texture, self.size, self.background)


@dataclass(frozen=True)
class Scene:
    """One renderable object: discrete attributes plus the continuous nuisances."""

    attrs: Attributes
    radius: float
    cx: float
    cy: float
    angle: float
    period: float
    jitter: tuple[float, float, float, float, float, float]
    noise_std: float
    noise_seed: int


def split_id(split: str) -> int:
    """Integer id of a split name (``pretrain``=0, ``lrtk0``=1, ``eval``=2)."""
    if split not in SPLITS:
        raise ValueError(f"unknown toy split {split!r}; expected one of {', '.join(SPLITS)}")
    return SPLITS.index(split)


@lru_cache(maxsize=1)
def _split_table() -> dict[str, tuple[Attributes, ...]]:
    combos = list(product(*ATTRIBUTES.values()))
    rng = np.random.default_rng(COMBO_SEED)
    # Retry the shuffle until every split contains every attribute value (the first draw usually does).
    while True:
        order = rng.permutation(len(combos))
        cuts = np.cumsum([round(f * len(combos)) for f in SPLIT_FRACTIONS])[:-1]
        parts = np.split(order, cuts)
        if all(
            len({combos[i][k] for i in part}) == len(vocab)
            for part in parts
            for k, vocab in enumerate(ATTRIBUTES.values())
        ):
            break
    return {s: tuple(Attributes(*combos[i]) for i in sorted(part)) for s, part in zip(SPLITS, parts)}


def split_combinations(split: str) -> tuple[Attributes, ...]:
    """All discrete attribute combinations that belong to ``split`` (sorted, disjoint across splits)."""
    split_id(split)
    return _split_table()[split]


def sample_scene(attrs: Attributes, rng: np.random.Generator) -> Scene:
    """Draw the continuous nuisances of an object with attributes ``attrs``."""
    lo, hi = _RADIUS[attrs.size]
    radius = float(rng.uniform(lo, hi))
    margin = radius + 1.0
    cx, cy = rng.uniform(margin, NATIVE_SIZE - margin, size=2)
    return Scene(
        attrs=attrs,
        radius=radius,
        cx=float(cx),
        cy=float(cy),
        angle=float(rng.uniform(0, 2 * np.pi)),
        period=float(rng.choice(_PERIODS)),
        jitter=tuple(float(v) for v in rng.uniform(-_JITTER, _JITTER, size=6)),
        noise_std=float(rng.uniform(*_NOISE_STD)),
        noise_seed=int(rng.integers(2**31)),
    )


def scene_at(split: str, index: int, seed: int = 0) -> Scene:
    """Return scene ``index`` of ``split`` for world ``seed`` (uniform over the split's combinations)."""
    rng = np.random.default_rng((seed, split_id(split), index))
    combos = split_combinations(split)
    return sample_scene(combos[int(rng.integers(len(combos)))], rng)


def _shape_mask(shapes: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside-masks [B,H,W] for shape ids ``shapes`` [B] at unit-radius local coordinates ``u, v``."""
    au, av = np.abs(u), np.abs(v)
    masks = np.stack(
        [
            u * u + v * v <= 1.0,
            np.maximum(au, av) <= 0.78,
            (v <= 0.55) & (v >= -1.0 + np.sqrt(3.0) * au),
            ((au <= 0.32) & (av <= 0.95)) | ((av <= 0.32) & (au <= 0.95)),
        ]
    )  # [S,B,H,W]
    return masks[shapes, np.arange(len(shapes))]


def _texture_mask(textures: np.ndarray, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Dark-colour masks [B,H,W] for texture ids at texture coordinates ``s, t`` in periods."""
    fs, ft = s - np.floor(s), t - np.floor(t)
    masks = np.stack(
        [
            np.zeros_like(s, dtype=bool),
            fs < 0.5,
            (fs - 0.5) ** 2 + (ft - 0.5) ** 2 <= _DOT_RADIUS**2,
            (fs < 0.5) ^ (ft < 0.5),
        ]
    )
    return masks[textures, np.arange(len(textures))]


def render_scenes(scenes: Sequence[Scene], size: int = NATIVE_SIZE) -> np.ndarray:
    """Render a batch of scenes (vectorised) to ``uint8`` images of shape [B, size, size, 3]."""
    if not scenes:
        return np.zeros((0, size, size, 3), dtype=np.uint8)
    scale = size / NATIVE_SIZE

    def col(values: list[float]) -> np.ndarray:
        return np.asarray(values, dtype=np.float64)[:, None, None]

    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    dx = xs[None] - col([sc.cx * scale for sc in scenes])
    dy = ys[None] - col([sc.cy * scale for sc in scenes])
    cos, sin = col([np.cos(sc.angle) for sc in scenes]), col([np.sin(sc.angle) for sc in scenes])
    u_px, v_px = cos * dx + sin * dy, -sin * dx + cos * dy  # object-aligned pixel offsets
    radius = col([sc.radius * scale for sc in scenes])
    shape_ids = np.array([SHAPES.index(sc.attrs.shape) for sc in scenes])
    inside = _shape_mask(shape_ids, u_px / radius, v_px / radius)
    period = col([sc.period * scale for sc in scenes])
    s, t = (xs[None] - 0.5) / period, (ys[None] - 0.5) / period  # locked to the pixel grid
    dark = _texture_mask(np.array([TEXTURES.index(sc.attrs.texture) for sc in scenes]), s, t)

    fg = np.array([np.add(_RGB[sc.attrs.color], sc.jitter[:3]) for sc in scenes])[:, None, None, :]
    bg = np.array([np.add(_RGB[sc.attrs.background], sc.jitter[3:]) for sc in scenes])[:, None, None, :]
    solid = np.array([sc.attrs.texture == "solid" for sc in scenes])[:, None, None, None]
    fg = np.where(solid, fg * _SOLID_SHADE, fg)  # solid = the mean colour of a dotted object
    obj = np.where(dark[..., None], fg * _DARK, fg)
    img = np.where(inside[..., None], obj, bg)
    noise = np.stack(
        [np.random.default_rng(sc.noise_seed).standard_normal((size, size, 3)) * sc.noise_std for sc in scenes]
    )
    return np.clip(np.rint(img + noise), 0, 255).astype(np.uint8)


def render(scene: Scene | Attributes, size: int = NATIVE_SIZE, seed: int = 0) -> np.ndarray:
    """Render one scene to a ``uint8`` image of shape [size, size, 3].

    Args:
        scene: a full :class:`Scene`, or bare :class:`Attributes` whose nuisances are drawn from ``seed``.
        size: output side (the geometry scales with it; textures stay at the same relative period).
        seed: seed of the nuisances when ``scene`` is bare attributes.

    """
    if isinstance(scene, Attributes):
        scene = sample_scene(scene, np.random.default_rng(seed))
    return render_scenes([scene], size)[0]


def render_split(split: str, indices: Sequence[int], seed: int = 0) -> tuple[np.ndarray, list[Scene]]:
    """Render images ``indices`` of ``split``: ``(uint8 [B,64,64,3], scenes)``."""
    scenes = [scene_at(split, int(i), seed) for i in indices]
    return render_scenes(scenes), scenes
