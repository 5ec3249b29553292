"""The text-classifier cache: a real content key, and every disk entry checked before it is used."""

from __future__ import annotations

import pytest
import torch

from lr0fm.benchmark.classifier import ClassifierCache, build_classifier, model_fingerprint
from lr0fm.datasets import build_dataset
from lr0fm.toy.backbone import load_toyclip


@pytest.fixture(scope="module")
def toy():
    return load_toyclip().eval(), build_dataset("toy-color")


def _only_file(folder):
    (path,) = folder.glob("*.pt")
    return path


def _fresh(backbone, dataset):
    return build_classifier(backbone, dataset.classnames, dataset.templates)


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda e: {**e, "weights": e["weights"].roll(1, dims=0)}, "checksum"),  # rows rolled: 0 % top-1 before
        (lambda e: e["weights"].roll(1, dims=0), "not a classifier cache entry"),  # a bare tensor (old format)
        (lambda e: {**e, "key": "0" * 32}, "another model"),
        (lambda e: {**e, "weights": e["weights"][:-1]}, "rows for"),
        (lambda e: {**e, "weights": e["weights"] * float("nan")}, "non-finite"),
    ],
)
def test_a_damaged_entry_is_reported_and_rebuilt(toy, tmp_path, damage, reason):
    backbone, dataset = toy
    ClassifierCache(tmp_path).for_dataset(backbone, dataset)
    path = _only_file(tmp_path)
    torch.save(damage(torch.load(path, weights_only=True)), path)
    notes = []
    cache = ClassifierCache(tmp_path, log=notes.append)
    weights = cache.for_dataset(backbone, dataset)
    assert (cache.builds, cache.disk_hits) == (1, 0)
    assert torch.equal(weights, _fresh(backbone, dataset))
    assert len(notes) == 1 and str(path) in notes[0] and reason in notes[0] and "rebuilding" in notes[0]
    again = ClassifierCache(tmp_path, log=notes.append)  # the rebuilt entry is good again
    again.for_dataset(backbone, dataset)
    assert (again.builds, again.disk_hits, len(notes)) == (0, 1, 1)


def test_a_truncated_entry_is_rebuilt(toy, tmp_path):
    backbone, dataset = toy
    ClassifierCache(tmp_path).for_dataset(backbone, dataset)
    path = _only_file(tmp_path)
    path.write_bytes(path.read_bytes()[:100])
    notes = []
    cache = ClassifierCache(tmp_path, log=notes.append)
    assert torch.equal(cache.for_dataset(backbone, dataset), _fresh(backbone, dataset))
    assert "unreadable" in notes[0]


def test_the_fingerprint_sees_every_weight(toy):
    backbone, _ = toy
    before = model_fingerprint(backbone)
    other = load_toyclip().eval()
    assert model_fingerprint(other) == before
    with torch.no_grad():  # flipping two columns keeps per-tensor sums and |sums|: the old fingerprint collided
        proj = other.model.text_projection
        proj[:, [0, 1]] = proj[:, [1, 0]]
    assert model_fingerprint(other) != before


def test_a_cache_folder_that_is_a_file_is_named(tmp_path):
    target = tmp_path / "cache"
    target.write_text("x")
    with pytest.raises(NotADirectoryError, match=str(target)):
        ClassifierCache(target)
