"""The LR chains the LR0.FM authors ran, one per evaluation script of their public code.

Read from ``shyammarjit/LR0.FM`` (commit aabd8b8); each chain's ``source`` names the file. Every
backbone of the paper's table (``lr0fm/resources/backbones/lr0fm66.yaml``) names its chain in its
``protocol`` field. The published numbers of a family were produced by its chain, so a new model is
comparable with a published row only when it is measured with that row's chain.

Facts shared by all of them: every resize is bicubic (torchvision on PIL images); RGB conversion comes
after the resizes; the published top row ("224") is the LR chain at ``n = 224`` except in OpenAI CLIP's
script, whose ``!= 224`` check makes it the native chain for every input size.
"""

from __future__ import annotations

from lr0fm.protocols.chains import Chain

_CLIP_BENCHMARK = (
    "CLIP_benchmark/data/__init__.py: create_dataset_zero_shot, model_name={!r} "
    "(run by CLIP_benchmark/zero_shot_classification.py; CLIP_benchmark/README.md lists the backbones)"
)


def _square(name: str, normalize: str, source: str) -> Chain:
    """``Resize((n, n))`` then ``Resize((S, S))``, no crop; the top row is the chain at ``n = 224``."""
    return Chain(name, down="square", up="squash", hr_resolution=224, normalize=normalize, source=source)


def _aspect(name: str, source: str, hr_resolution: int | None = 224) -> Chain:
    """``Resize(n)`` then ``Resize(S)`` + ``CenterCrop(S)``, OpenAI normalisation."""
    return Chain(
        name, down="shorter", up="shorter-crop", hr_resolution=hr_resolution, normalize="openai", source=source
    )


#: The authors' chains by name.
PAPER_CHAINS: dict[str, Chain] = {
    chain.name: chain
    for chain in (
        _aspect(
            "openai-clip",
            "CLIP/clip/clip.py: resolution_transform (LR) and _transform (HR), run by CLIP/resolution_zero_shot.py "
            "(its '!= 224' check keeps the top row native for every input size)",
            hr_resolution=None,
        ),
        _square(
            "clip-benchmark-openclip",
            "openai",
            _CLIP_BENCHMARK.format("openclip") + "; open_clip/scripts/run.sh records ViT-B-16 datacomp_xl_s13b_b90k "
            "Food101 top-1 67.27 at 32 px, the published value",
        ),
        _square("clip-benchmark-siglip", "siglip", _CLIP_BENCHMARK.format("siglip")),
        _square(
            "clip-benchmark-clipa",
            "imagenet",
            _CLIP_BENCHMARK.format("clipa") + " -- bicubic with ImageNet mean/std where open_clip's CLIPA "
            "preprocessing is bilinear; not CLIPA/clipa_torch/zero_shot.py, which accepts 3 of the 7 published "
            "CLIPA models",
        ),
        _aspect("clip-benchmark-coca", _CLIP_BENCHMARK.format("coca")),
        _aspect(
            "metaclip",
            "MetaCLIP/zero_shot.py -> MetaCLIP/src/open_clip_local/transform.py: image_transform",
            hr_resolution=None,
        ),
        _aspect(
            "eva-clip",
            "EVA/EVA-CLIP/rei/zero_shot_classification.py -> EVA/EVA-CLIP/rei/data/__init__.py: "
            "create_dataset_zero_shot (its Scripts/run.sh records EVA-02-CLIP-B/16 Pets and ImageNet rows equal "
            "to the published ones)",
        ),
        _square(
            "eva-clip-18b",
            "openai",
            "EVA/EVA-CLIP-18B/shinji/resolution_zero_shot.py -> EVA/EVA-CLIP-18B/shinji/data/__init__.py: "
            "create_dataset_zero_shot",
        ),
        _square(
            "blip",
            "openai",
            "BLIP/zero_shot_classification.py -> BLIP/data/__init__.py: create_dataset_zero_shot "
            "(image_size 384 in all eight BLIP configs)",
        ),
        _square(
            "albef",
            "openai",
            "ALBEF/zero_shot_classification.py -> ALBEF/data/__init__.py: create_dataset_zero_shot "
            "(image_res 384 in configs/Retrieval_{coco,flickr}.yaml)",
        ),
        _square(
            "m2-encoder",
            "none",
            "M2_Encoder/zero_shot_classification.py -> M2_Encoder/data/__init__.py: create_dataset_zero_shot "
            "(ToTensor, no Normalize, as M2-Encoder's own square_transform)",
        ),
    )
}

#: The paper's text, for a backbone outside the 66: square ``n x n`` bicubic, then the model's own preprocessing.
PAPER_TEXT_CHAIN = Chain(
    "paper-text",
    down="square",
    up="model",
    hr_resolution=None,
    source="LR0.FM paper, Sec. 3 'Low Resolution' (downsampled to 16x16, 32x32, ... with bicubic interpolation, "
    "followed by model specific preprocessing); no authors' script covers this backbone",
)
