"""The benchmark engine against independent references: top-1 per LR protocol, classifier cache."""

import open_clip
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from benchmark_fixtures import make_image_folder, tiny_clip_json
from PIL import Image
from torchvision.datasets import ImageFolder

from lr0fm.benchmark.classifier import ClassifierCache, build_classifier
from lr0fm.benchmark.engine import evaluate_backbone
from lr0fm.benchmark.runner import BenchmarkConfig, run_benchmark
from lr0fm.datasets import build_dataset
from lr0fm.datasets.base import ZeroShotDataset
from lr0fm.models import load_backbone

RESOLUTIONS = [8, 16, 32, "hr"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    backbone = load_backbone(str(tiny_clip_json(root)), seed=0)
    folder = make_image_folder(root / "images", num_classes=5, per_class=7, sizes=((50, 38), (38, 50), (45, 45)))
    return root, backbone, folder


def independent_top1(model, tokenizer, preprocess, folder, classnames, templates, res, protocol):
    """Straightforward zero-shot top-1: open_clip + torchvision, one resolution at a time.

    ``shorter-side``: ``Resize(n)`` then the model's preprocessing; ``paper`` for a backbone outside the
    paper's table (the paper's text): ``Resize((n, n))`` then the model's preprocessing.
    """
    with torch.no_grad():
        weights = []
        for c in classnames:
            emb = model.encode_text(tokenizer([t.format(c=c) for t in templates]))
            emb = F.normalize(emb, dim=-1).mean(0)
            weights.append(emb / emb.norm())
        weights = torch.stack(weights, dim=1)
        size = res if protocol == "shorter-side" else (res, res)
        down = T.Resize(size, interpolation=T.InterpolationMode.BICUBIC)
        tf = preprocess if res == "hr" else T.Compose([down, preprocess])
        data = ImageFolder(str(folder), transform=tf, loader=lambda path: Image.open(path))
        correct = 0
        for images, labels in torch.utils.data.DataLoader(data, batch_size=16):
            feats = F.normalize(model.encode_image(images), dim=-1)
            correct += int(((feats @ weights).argmax(-1) == labels).sum())
        return correct / len(data)


@pytest.mark.parametrize("protocol", ["shorter-side", "paper"])
def test_top1_equals_an_independent_implementation(world, tmp_path, protocol):
    root, backbone, folder = world
    dataset = build_dataset(f"folder:{folder}")
    name = backbone.info.get("arch", "lr0fm-bench-tiny")
    tokenizer = open_clip.get_tokenizer(name)
    expected = {
        res: independent_top1(
            backbone.model, tokenizer, backbone.preprocess, folder, dataset.classnames, dataset.templates, res, protocol
        )
        for res in RESOLUTIONS
    }
    assert len(set(expected.values())) > 1  # the resolutions really differ on this model
    # the in-process engine
    records = evaluate_backbone(backbone, {"f": dataset}, RESOLUTIONS, batch_size=6, protocol=protocol)
    expected_chain = "shorter-side" if protocol == "shorter-side" else "paper-text"
    assert {(r["protocol"], r["chain"]) for r in records} == {(protocol, expected_chain)}
    assert {r["resolution"]: r["top1"] for r in records} == pytest.approx(expected, abs=1e-12)
    # the Trainer.validate path that `lr0fm benchmark` runs
    config = BenchmarkConfig(
        models=[str(root / "lr0fm-bench-tiny.json")],
        datasets=[f"folder:{folder}"],
        resolutions=RESOLUTIONS,
        output=str(tmp_path / "out"),
        batch_size=4,
        workers=0,
        seed=0,
        accelerator="cpu",
        protocol=protocol,
    )
    out = run_benchmark(config, log=lambda *_: None)
    assert {(r["protocol"], r["chain"]) for r in out} == {(protocol, expected_chain)}
    assert {r["resolution"]: r["top1"] for r in out} == pytest.approx(expected, abs=1e-12)
    assert all(r["num_samples"] == 35 and r["num_classes"] == 5 for r in out)


def test_classifier_is_built_once_and_cached_on_disk(world, tmp_path):
    _, backbone, folder = world
    dataset = build_dataset(f"folder:{folder}")
    cache = ClassifierCache(tmp_path / "cache")
    evaluate_backbone(backbone, {"a": dataset, "b": dataset}, [16, "hr"], cache=cache)
    assert (cache.builds, cache.disk_hits) == (1, 0)  # two datasets, two resolutions, one build
    again = ClassifierCache(tmp_path / "cache")
    w = again.get(backbone, dataset.classnames, dataset.templates)
    assert (again.builds, again.disk_hits) == (0, 1)
    assert torch.equal(w, build_classifier(backbone, dataset.classnames, dataset.templates))
    other = ClassifierCache(tmp_path / "cache")
    other.get(backbone, dataset.classnames, ["a blurry photo of a {c}."])  # different templates: new key
    assert other.builds == 1


def test_label_subset_datasets_slice_the_parent_classifier(world, monkeypatch):
    _, backbone, _ = world
    from lr0fm.datasets import resources

    # a 12-class, 3-template stand-in for ImageNet keeps the text encoder's work small
    parent_names = resources.classnames("imagenet")[:12]
    parent_templates = resources.templates("imagenet")[:3]
    monkeypatch.setattr(resources, "classnames", lambda name: parent_names if name == "imagenet" else None)
    monkeypatch.setattr(resources, "templates", lambda name: parent_templates if name == "imagenet" else None)
    subset = [2, 5, 11]
    sub = ZeroShotDataset(
        name="imagenet-a",
        classnames=[parent_names[i] for i in subset],
        templates=parent_templates,
        samples=[],
        loader=None,
        class_subset=subset,
        parent_classifier="imagenet",
    )
    cache = ClassifierCache()
    sliced = cache.for_dataset(backbone, sub)
    assert sliced.shape[0] == 3 and cache.builds == 1
    direct = build_classifier(backbone, sub.classnames, parent_templates)
    torch.testing.assert_close(sliced, direct, rtol=1e-5, atol=1e-6)


def test_inputs_follow_the_model_after_it_is_moved(world):
    # Lightning moves the module after loading; the encoders must send inputs to the model's current device
    root, _, _ = world
    backbone = load_backbone(str(root / "lr0fm-bench-tiny.json"), seed=0).to("meta")
    out = backbone.encode_image(torch.zeros(2, 3, 32, 32))
    assert out.device.type == "meta" and out.shape == (2, 32)
    tokens = backbone.tokenizer(["a photo of a cat."])
    assert backbone.encode_text(tokens).device.type == "meta"


def test_large_class_sets_show_progress_while_the_classifier_is_built(world, monkeypatch, capsys):
    from lr0fm.benchmark import classifier

    _, backbone, _ = world
    build_classifier(backbone, [f"c{i}" for i in range(6)], ["a {c}.", "the {c}."])
    assert "it/s" not in capsys.readouterr().err  # 12 prompts: no bar
    monkeypatch.setattr(classifier, "PROGRESS_PROMPTS", 12)
    weights = build_classifier(backbone, [f"c{i}" for i in range(6)], ["a {c}.", "the {c}."], batch_size=4)
    assert weights.shape[0] == 6 and "it/s" in capsys.readouterr().err
