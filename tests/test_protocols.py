"""LR protocols against plain torchvision/PIL references of the authors' chains, pixel for pixel.

Each reference below is transcribed from the LR0.FM authors' evaluation code (files named per chain in
``lr0fm/protocols/paper_chains.py``), including their ``if resolution != S`` switch between the LR chain and
the native one and their top row at ``n = 224``; the images are non-square in both orientations and in
palette, greyscale and RGBA modes, resized in their own mode as the authors' loaders hand them over.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import open_clip
import pytest
import torch
import torchvision.transforms as T
from open_clip.transform import PreprocessCfg
from PIL import Image

from lr0fm.datasets import build_dataset
from lr0fm.models.paper_backbones import read_paper_backbones
from lr0fm.protocols import (
    PAPER_CHAINS,
    PAPER_TEXT_CHAIN,
    get_protocol,
    list_protocols,
    parse_resolutions,
)

B = T.InterpolationMode.BICUBIC
OPENAI = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
NORMALISE = {
    "openai": T.Normalize(*OPENAI),
    "imagenet": T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "siglip": T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "none": None,
}
AUTHORS_NORM = {
    "openai-clip": "openai", "clip-benchmark-openclip": "openai", "clip-benchmark-siglip": "siglip",
    "clip-benchmark-clipa": "imagenet", "clip-benchmark-coca": "openai", "metaclip": "openai", "eva-clip": "openai",
    "eva-clip-18b": "openai", "blip": "openai", "albef": "openai", "m2-encoder": "none",
}  # fmt: skip
SQUASH = {"clip-benchmark-openclip", "clip-benchmark-siglip", "clip-benchmark-clipa", "eva-clip-18b", "blip", "albef",
          "m2-encoder"}  # fmt: skip
RESOLUTIONS = [16, 32, 64, 128, "hr"]


def _rgb(image: Image.Image) -> Image.Image:
    return image.convert("RGB")


def authors_transform(chain: str, n: int, size: int) -> T.Compose:
    """The authors' transform for a requested resolution ``n`` (their top row is ``n = 224``)."""
    norm = NORMALISE[AUTHORS_NORM[chain]]
    tail = [_rgb, T.ToTensor()] + ([norm] if norm is not None else [])
    if chain == "openai-clip":  # CLIP/resolution_zero_shot.py: `if args.image_resolution != 224`
        if n != 224:
            return T.Compose([T.Resize(n, interpolation=B), T.Resize(size, interpolation=B), T.CenterCrop(size), *tail])
        return T.Compose([T.Resize(size, interpolation=B), T.CenterCrop(size), *tail])
    if chain == "metaclip":  # every MetaCLIP model of the paper is 224 px: the top row is its native chain
        if n != 224:
            return T.Compose([T.Resize(n, interpolation=B), T.Resize(size, interpolation=B), T.CenterCrop(size), *tail])
        return T.Compose([T.Resize(size, interpolation=B), T.CenterCrop(size), *tail])
    if chain in SQUASH:  # `if low_resolution != org_resolution`, no centre crop
        if n != size:
            return T.Compose([T.Resize((n, n), interpolation=B), T.Resize((size, size), interpolation=B), *tail])
        return T.Compose([T.Resize((size, size), interpolation=B), *tail])
    # coca and EVA: aspect kept, then Resize(S) + CenterCrop(S)
    if n != size:
        return T.Compose(
            [T.Resize(n, interpolation=B), T.Resize(size, interpolation=B), T.CenterCrop((size, size)), *tail]
        )
    return T.Compose([T.Resize(size, interpolation=B), T.CenterCrop((size, size)), *tail])


def sample_images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    rgb = [
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in ((150, 100), (100, 150), (61, 47))
    ]
    palette = rgb[0].quantize(colors=16)
    grey = Image.fromarray(rng.integers(0, 256, (130, 90), dtype=np.uint8))
    rgba = Image.fromarray(rng.integers(0, 256, (80, 120, 4), dtype=np.uint8), "RGBA")
    assert (palette.mode, grey.mode) == ("P", "L")
    return [*rgb, palette, grey, rgba]


def target(size: int, chain: str | None, mean=OPENAI[0], std=OPENAI[1], resize_mode="shortest") -> SimpleNamespace:
    """A stand-in backbone: its preprocessing as open_clip builds it, and its paper chain (if any)."""
    cfg = PreprocessCfg(size=size, mean=mean, std=std, interpolation="bicubic", resize_mode=resize_mode)
    preprocess = open_clip.image_transform(size, is_train=False, mean=mean, std=std, resize_mode=resize_mode)
    return SimpleNamespace(preprocess_cfg=cfg, preprocess=preprocess, info={"paper_protocol": chain} if chain else {})


@pytest.mark.parametrize("size", [224, 384])
@pytest.mark.parametrize("chain", sorted(PAPER_CHAINS))
def test_paper_protocol_is_each_authors_chain_pixel_for_pixel(chain: str, size: int) -> None:
    backbone = target(size, chain, mean=(0.1, 0.2, 0.3), std=(0.3, 0.2, 0.1))  # the model's own: never used
    transform = get_protocol("paper").transform(backbone, RESOLUTIONS)
    assert transform.chain is PAPER_CHAINS[chain]
    for image in sample_images():
        views = transform(image)
        assert views.shape == (len(RESOLUTIONS), 3, size, size)
        for view, res in zip(views, RESOLUTIONS):
            reference = authors_transform(chain, 224 if res == "hr" else res, size)(image)
            assert torch.equal(view, reference), (chain, size, image.mode, image.size, res)


@pytest.mark.parametrize("resize_mode", ["shortest", "squash", "longest"])
@pytest.mark.parametrize("chain", [*sorted(PAPER_CHAINS), None])
def test_uint8_views_then_float_views_are_bit_identical_to_the_whole_transform(chain, resize_mode) -> None:
    """The default transport: PIL steps to uint8 in the workers, ToTensor/Normalize on the batch's device."""
    backbone = target(96, chain, mean=(0.1, 0.2, 0.3), std=(0.3, 0.2, 0.1), resize_mode=resize_mode)
    transform = get_protocol("paper").transform(backbone, RESOLUTIONS)
    uint8_half, float_half = transform.split_uint8()
    for image in sample_images():
        small = uint8_half(image)
        assert small.dtype == torch.uint8 and small.shape == (len(RESOLUTIONS), 3, 96, 96)
        batch = torch.stack([small, small])  # [B, R, 3, S, S], as the step receives it
        assert torch.equal(float_half(batch)[1], transform(image)), (chain, resize_mode, image.mode)


def test_a_preprocessing_that_cannot_be_split_keeps_the_float_transform() -> None:
    backbone = target(64, None)
    backbone.preprocess = T.Compose([T.Resize(64), T.CenterCrop(64), T.ToTensor()])  # no RGB step, no Normalize
    transform = get_protocol("paper").transform(backbone, [16, "hr"])
    assert transform.split_uint8() is None
    from lr0fm.benchmark.data import view_pipeline

    worker_half, device_half = view_pipeline(transform)
    assert worker_half is transform and device_half is None


def test_the_top_row_is_224_to_s_for_squashing_families_and_native_for_openai_clip() -> None:
    image = sample_images()[0]
    siglip = get_protocol("paper").transform(target(384, "clip-benchmark-siglip"), ["hr", 224])(image)
    assert torch.equal(siglip[0], siglip[1])  # the published "224" row of a 384 px model
    native = T.Compose([T.Resize((384, 384), interpolation=B), T.ToTensor(), NORMALISE["siglip"]])(image)
    assert not torch.equal(siglip[0], native)
    clip = get_protocol("paper").transform(target(336, "openai-clip"), ["hr", 224])(image)
    assert not torch.equal(clip[0], clip[1])


def test_shorter_side_and_square_protocols_are_their_reference_chains() -> None:
    for backbone in (target(64, None), target(64, None, resize_mode="squash"), target(64, "clip-benchmark-clipa")):
        shorter = get_protocol("shorter-side").transform(backbone, RESOLUTIONS)
        square = get_protocol("square").transform(backbone, RESOLUTIONS)
        chain = backbone.info.get("paper_protocol")
        norm = NORMALISE[AUTHORS_NORM[chain]] if chain else T.Normalize(*OPENAI)  # family's, else the model's own
        for image in sample_images():
            for view, res in zip(shorter(image), RESOLUTIONS):
                ref = backbone.preprocess(image if res == "hr" else T.Resize(res, interpolation=B)(image))
                assert torch.equal(view, ref), ("shorter-side", image.mode, res)
            for view, res in zip(square(image), RESOLUTIONS):
                steps = [] if res == "hr" else [T.Resize((res, res), interpolation=B)]
                ref = T.Compose([*steps, T.Resize((64, 64), interpolation=B), _rgb, T.ToTensor(), norm])(image)
                assert torch.equal(view, ref), ("square", image.mode, res)
        first = sample_images()[0]
        assert not torch.equal(shorter(first)[1], square(first)[1])  # non-square: the chains differ


def test_paper_protocol_falls_back_to_the_papers_text_outside_the_66() -> None:
    backbone = target(48, None)
    transform = get_protocol("paper").transform(backbone, RESOLUTIONS)
    assert transform.chain is PAPER_TEXT_CHAIN and "Sec. 3" in PAPER_TEXT_CHAIN.source
    for image in sample_images():
        for view, res in zip(transform(image), RESOLUTIONS):
            ref = backbone.preprocess(image if res == "hr" else T.Resize((res, res), interpolation=B)(image))
            assert torch.equal(view, ref)


def test_dataset_images_keep_their_mode_until_the_chain_converts(tmp_path: Path) -> None:
    for i, image in enumerate(sample_images()[3:]):  # palette, greyscale, RGBA files on disk
        folder = tmp_path / f"class{i}"
        folder.mkdir()
        image.save(folder / "x.png")
    dataset = build_dataset(f"folder:{tmp_path}")
    transform = get_protocol("paper").transform(target(224, "blip"), [16, "hr"])
    for index in range(len(dataset)):
        decoded, _ = dataset[index]
        on_disk = Image.open(dataset.sample_id(index))  # what the authors' loaders pass on: no conversion
        assert decoded.mode == on_disk.mode != "RGB"
        for view, res in zip(transform(decoded), [16, "hr"]):
            assert torch.equal(view, authors_transform("blip", 224 if res == "hr" else res, 224)(on_disk))


def test_every_paper_backbone_has_a_protocol_and_a_citation() -> None:
    table = read_paper_backbones()
    assert len(table) == 66
    family_chain = {
        "CLIP": {"openai-clip"}, "OpenCLIP": {"clip-benchmark-openclip"}, "MetaCLIP": {"metaclip"},
        "CLIPA": {"clip-benchmark-clipa"}, "SigLIP": {"clip-benchmark-siglip"}, "CoCa": {"clip-benchmark-coca"},
        "EVA-CLIP": {"eva-clip", "eva-clip-18b"}, "BLIP": {"blip"}, "ALBEF": {"albef"}, "M2-Encoder": {"m2-encoder"},
    }  # fmt: skip
    for name, entry in table.items():
        chain = PAPER_CHAINS[entry["protocol"]]
        assert entry["protocol"] in family_chain[entry["family"]], name
        assert chain.source and ".py" in chain.source, name  # a file of the authors' code
    assert table["EVA-CLIP-8B"]["protocol"] == "eva-clip-18b"
    # the authors ran the pre-trained BLIP and ALBEF models at 384 px too
    assert {e["resolution"] for e in table.values() if e["family"] in ("BLIP", "ALBEF")} == {384}


def test_protocol_names_and_errors() -> None:
    assert list_protocols()[:3] == ["paper", "shorter-side", "square"]
    with pytest.raises(ValueError, match="unknown LR protocol 'sqaure'.*Did you mean 'square'"):
        get_protocol("sqaure")
    with pytest.raises(ValueError, match="names LR chain 'nope'"):
        get_protocol("paper").chain(target(32, "nope"))
    assert parse_resolutions(["16", 32, "HR", 16]) == [16, 32, "hr"]
    with pytest.raises(ValueError, match="'abc'"):
        parse_resolutions(["abc"])


@pytest.mark.parametrize("protocol", ["paper", "shorter-side", "square"])
def test_views_on_device_agree_with_the_exact_path_on_the_toy_tasks(protocol):
    """Per-sample top-1 of toyclip with views made by torch (CPU tensors) vs the exact PIL path: >= 99.5 %."""
    from lr0fm.benchmark.classifier import ClassifierCache
    from lr0fm.benchmark.scoring import predict_top5
    from lr0fm.datasets import build_dataset
    from lr0fm.protocols.device import DecodeRGB, DeviceViews
    from lr0fm.toy.backbone import load_toyclip

    backbone, cache, resolutions = load_toyclip().eval(), ClassifierCache(), [8, 16, 32, "hr"]
    agree = total = 0
    for name in ("toy-color", "toy-texture", "toy-size", "toy-shape"):
        dataset = build_dataset(name)
        exact = get_protocol(protocol).transform(backbone, resolutions)
        device = DeviceViews(exact, backbone.preprocess_cfg)
        images = [dataset[i][0] for i in range(0, len(dataset), 3)]
        classifier = cache.for_dataset(backbone, dataset)
        with torch.no_grad():
            a, _ = predict_top5(backbone, classifier, torch.stack([exact(image) for image in images]))
            b, _ = predict_top5(backbone, classifier, device([DecodeRGB()(image) for image in images]))
        agree += int((a[..., 0] == b[..., 0]).sum())
        total += a[..., 0].numel()
    assert total >= 2000 and agree / total >= 0.995, f"{agree}/{total}"


def test_device_views_follow_the_chain_on_a_photo_shaped_image():
    """A 500x375 image through every chain step: same shapes and nearly the same pixels as the PIL path."""
    from lr0fm.protocols.device import DecodeRGB, DeviceViews

    rng = np.random.default_rng(0)
    small = Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).resize((500, 375), Image.BICUBIC)
    target = SimpleNamespace(preprocess_cfg=SimpleNamespace(size=224, mean=(0.5,) * 3, std=(0.25,) * 3))
    for chain in (PAPER_CHAINS[name] for name in sorted(PAPER_CHAINS)):
        exact = chain.transform([16, 64, "hr"], size=224, mean=(0.5,) * 3, std=(0.25,) * 3, preprocess=None)
        if chain.up == "model":
            continue
        views = DeviceViews(exact, target.preprocess_cfg)([DecodeRGB()(small)])[0]
        reference = exact(small)
        assert views.shape == reference.shape
        assert (views - reference).abs().mean() < 0.02, chain.name  # about 1/255 of the normalised range
