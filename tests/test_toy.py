"""Tests of the offline toy world, its zero-shot datasets, the tiny CLIP recipe and the shipped toyclip."""

import dataclasses
import json
import os
import pickle

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from PIL import Image

from lr0fm.cli import main as lr0fm_main
from lr0fm.datasets.base import DatasetError
from lr0fm.toy import world
from lr0fm.toy.backbone import SHIPPED_DIR, load_toyclip
from lr0fm.toy.captions import compose_caption
from lr0fm.toy.cli import pretrain_config
from lr0fm.toy.datasets import TOY_DATASETS, ToyRenderer, build_toy_dataset
from lr0fm.toy.evaluate import evaluate_toy
from lr0fm.toy.lrtk0_data import ToyLRTK0Images
from lr0fm.toy.pretrain import CONFIG_FILE, PretrainConfig, pretrain
from lr0fm.toy.tokenizer import ToyTokenizer

CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "toy", "pretrain.yaml")


def test_world_is_deterministic_per_seed_split_index():
    a, scenes_a = world.render_split("pretrain", range(8), seed=3)
    b, _ = world.render_split("pretrain", range(8), seed=3)
    c, _ = world.render_split("pretrain", range(8), seed=4)
    assert a.shape == (8, 64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    # the batch renderer and the single-image renderer agree
    assert np.array_equal(world.render(scenes_a[5]), a[5])


def test_splits_partition_the_attribute_combinations():
    splits = {s: set(world.split_combinations(s)) for s in world.SPLITS}
    assert not splits["pretrain"] & splits["eval"]
    assert not splits["pretrain"] & splits["lrtk0"]
    assert not splits["lrtk0"] & splits["eval"]
    assert sum(len(v) for v in splits.values()) == 4 * 6 * 4 * 3 * 3
    for combos in splits.values():  # every attribute value occurs in every split
        for k, vocab in enumerate(world.ATTRIBUTES.values()):
            assert {a.as_tuple()[k] for a in combos} == set(vocab)
    _, scenes = world.render_split("lrtk0", range(50))
    assert {s.attrs for s in scenes} <= splits["lrtk0"]
    with pytest.raises(ValueError, match="expected one of pretrain, lrtk0, eval"):
        world.split_combinations("train")


def test_textures_are_visible_at_native_size():
    images = {}
    for t in world.TEXTURES:
        attrs = world.Attributes("square", "red", t, "large", "white")
        scene = world.sample_scene(attrs, np.random.default_rng(1))
        scene = dataclasses.replace(scene, cx=32.0, cy=32.0, noise_std=0.0)
        images[t] = world.render(scene).astype(float)
    centre = {t: img[26:38, 26:38, 0] for t, img in images.items()}
    assert centre["solid"].std() < 10
    for t in ("striped", "dotted", "checkered"):
        assert centre[t].std() > 40, t
    # at low resolution only the shade is left: solid ~ dotted, striped ~ checkered, and the pairs differ
    low = {
        t: np.asarray(Image.fromarray(img.astype(np.uint8)).resize((16, 16), Image.BICUBIC), float)
        for t, img in images.items()
    }
    shade = {t: img[7:9, 7:9, 0].mean() for t, img in low.items()}
    assert abs(shade["solid"] - shade["dotted"]) < 15 and abs(shade["striped"] - shade["checkered"]) < 15
    assert shade["dotted"] - shade["striped"] > 25


def test_captions_and_tokenizer_round_trip(tmp_path):
    tok = ToyTokenizer.default()
    rng = np.random.default_rng(0)
    _, scenes = world.render_split("pretrain", range(200))
    captions = [compose_caption(s.attrs, rng) for s in scenes]
    assert len(set(captions)) > 100  # varied phrasings and omissions
    assert any(len(c.split()) <= 4 for c in captions) and any("background" in c for c in captions)
    tokens = tok(captions)
    assert tokens.shape == (200, tok.context_length) and tokens.dtype == torch.long
    assert tok.decode(tokens) == captions
    # open_clip's argmax pooling finds <eot>
    lengths = torch.tensor([len(c.split()) for c in captions])
    assert torch.equal(tokens.argmax(-1), lengths + 1)
    tok.save(tmp_path / "tok.json")
    assert torch.equal(ToyTokenizer.load(tmp_path / "tok.json")(captions), tokens)
    with pytest.raises(ValueError, match="not in the toy vocabulary"):
        tok(["a purple elephant"])


@pytest.mark.parametrize("name", TOY_DATASETS)
def test_toy_datasets_follow_the_zero_shot_interface(name):
    ds = build_toy_dataset(name, num_per_class=3)
    assert len(ds) == 3 * ds.num_classes and ds.num_classes >= 3
    assert all("{c}" in t for t in ds.templates)
    assert [label for _, label in ds.samples] == sorted(label for _, label in ds.samples)
    image, label = ds[4]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (64, 64)
    again = pickle.loads(pickle.dumps(ds))
    assert np.array_equal(np.asarray(again[4][0]), np.asarray(image)) and again[4][1] == label
    other_seed = build_toy_dataset(name, num_per_class=3, seed=1)
    assert not np.array_equal(np.asarray(other_seed[4][0]), np.asarray(image))
    renderer = ToyRenderer()
    eval_combos = set(world.split_combinations("eval"))
    attribute = ds.extra["attribute"]
    for source, label in ds.samples:
        scene = renderer.scene(source)
        assert scene.attrs in eval_combos
        assert getattr(scene.attrs, attribute) == ds.classnames[label]


def test_unknown_toy_dataset_suggests_a_name():
    with pytest.raises(DatasetError, match="Did you mean 'toy-color'"):
        build_toy_dataset("toy-colour")


def test_lrtk0_images_are_deterministic_hr_images_of_their_split():
    ds = ToyLRTK0Images(num_images=5, seed=2)
    img = ds[3]
    assert img.size == (64, 64) and img.mode == "RGB"
    assert np.array_equal(np.asarray(ToyLRTK0Images(5, seed=2)[3]), np.asarray(img))
    with pytest.raises(IndexError):
        ds[5]


def test_toy_cli_lists_subcommands(capsys):
    assert lr0fm_main(["toy", "--help"]) == 0
    out = capsys.readouterr().out
    assert "pretrain" in out and "eval" in out


def test_load_toyclip_names_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="toyclip.safetensors"):
        load_toyclip(weights_dir=tmp_path)


STAGE2 = CONFIG.replace("pretrain.yaml", "pretrain_stage2.yaml")


def _config(path: str, *extra: str) -> PretrainConfig:
    """The PretrainConfig ``lr0fm toy pretrain --config PATH EXTRA...`` would train with."""
    return pretrain_config(["--config", path, *extra])[0]


def test_config_file_is_the_built_in_recipe():
    assert _config(CONFIG) == PretrainConfig()
    stage2 = _config(STAGE2)
    assert stage2.init_from and stage2.model_cfg == PretrainConfig().model_cfg
    with pytest.raises(SystemExit):  # an unknown option is refused, not ignored
        _config(CONFIG, "--nonsense", "1")


def test_few_step_retrain_from_the_shipped_config_lowers_the_loss(tmp_path):
    torch.set_num_threads(1)
    cfg = _config(CONFIG, "--max_steps", "30", "--batch_size", "24", "--warmup_steps", "5", "--log_every", "0")
    module = pretrain(cfg, tmp_path)
    losses = module.loss_history
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.15  # well beyond step-to-step noise (~0.01)
    assert (tmp_path / CONFIG_FILE).is_file()
    assert load_toyclip(weights_dir=tmp_path).family == "toy"
    # a second stage records the first stage's recipe
    stage2 = dataclasses.replace(cfg, max_steps=2, init_from=str(tmp_path), seed=1)
    pretrain(stage2, tmp_path / "stage2")
    written = json.loads((tmp_path / "stage2" / CONFIG_FILE).read_text())
    assert written["recipe"]["init_from"] == str(tmp_path) and written["recipe"]["max_steps"] == 2
    assert [s["recipe"]["max_steps"] for s in written["earlier_stages"]] == [30]


def test_shipped_weights_record_both_shipped_recipes():
    shipped = json.loads((SHIPPED_DIR / CONFIG_FILE).read_text())
    stage1 = _config(CONFIG)
    stage2 = _config(STAGE2)
    recipe = {k: v for k, v in dataclasses.asdict(stage2).items() if k != "model_cfg"}
    assert shipped["recipe"] == recipe
    (first,) = shipped["earlier_stages"]
    assert first["recipe"] == {k: v for k, v in dataclasses.asdict(stage1).items() if k != "model_cfg"}


@pytest.fixture(scope="module")
def shipped_results():
    if not (SHIPPED_DIR / "toyclip.safetensors").is_file():
        pytest.fail(f"shipped toyclip weights missing from {SHIPPED_DIR}")
    torch.manual_seed(0)
    backbone = load_toyclip()
    return evaluate_toy(backbone, tasks=("toy-color", "toy-texture", "toy-size"), resolutions=(None, 16))


def test_shipped_toyclip_meets_native_thresholds(shipped_results):
    assert shipped_results["toy-color"]["hr"] >= 95.0
    assert shipped_results["toy-texture"]["hr"] >= 80.0
    assert shipped_results["toy-size"]["hr"] >= 80.0


def test_shipped_toyclip_loses_texture_at_16px(shipped_results):
    assert shipped_results["toy-texture"]["16"] <= shipped_results["toy-texture"]["hr"] - 30.0
