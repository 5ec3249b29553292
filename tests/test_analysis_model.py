"""Tests of ``lr0fm analyze``: layer similarity, feature t-SNE, Grad-CAM and mispredictions on the toy model."""

import csv
import json
import os
import subprocess
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lr0fm.analysis import ANALYSES
from lr0fm.analysis.analyze_cli import MODEL_ANALYSES
from lr0fm.analysis.figures import read_manifest
from lr0fm.analysis.model_inputs import pick_images
from lr0fm.analysis.similarity import cka_matrix, linear_cka, mean_cosine
from lr0fm.benchmark.classifier import build_classifier
from lr0fm.benchmark.outputs import write_predictions
from lr0fm.cli import main as lr0fm_main
from lr0fm.lrtk0 import LRTokens, load_lr_tokens, save_lr_tokens
from lr0fm.models import load_backbone
from lr0fm.protocols import get_protocol
from lr0fm.toy.datasets import build_toy_dataset

IMAGES = 12  # 2 per class of toy-color (6 classes), 3 per class of toy-shape (4 classes)


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def tokens_file(tmp_path_factory):
    """Toy LR tokens of the right shape with random non-zero values (large enough to change the features)."""
    backbone = load_backbone("toyclip")
    torch.manual_seed(0)
    tokens = LRTokens(backbone, init="normal", std=0.5, attach=False)
    return str(save_lr_tokens(tmp_path_factory.mktemp("tokens") / "toy_tokens.safetensors", tokens, "toyclip"))


def views_of(backbone, dataset, indices, resolutions):
    """The benchmark protocol's views of the images, ``[R, N, 3, S, S]`` (independent of the analysis loop)."""
    transform = get_protocol("paper").transform(backbone, resolutions)
    return torch.stack([transform(dataset[i][0]) for i in indices]).transpose(0, 1)


# --- the math --------------------------------------------------------------------------------------------------


def test_cka_and_cosine_match_their_definitions():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 16, generator=gen)
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=gen))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, 3.0 * x @ q + 5.0) == pytest.approx(1.0, abs=1e-9)  # orthogonal, scale, shift invariant
    unrelated = linear_cka(x, torch.randn(40, 16, generator=gen))
    assert 0.0 < unrelated < 0.6
    # the Gram form of the matrix equals the feature-space form pair by pair
    ys = [x, x + 0.5 * torch.randn(40, 16, generator=gen), torch.randn(40, 8, generator=gen)]
    matrix = cka_matrix(ys, ys)
    for i, a in enumerate(ys):
        for j, b in enumerate(ys):
            assert matrix[i, j] == pytest.approx(linear_cka(a, b), abs=1e-9)
    direct = sum(float(a @ b / (a.norm() * b.norm())) for a, b in zip(x, ys[1])) / len(x)
    assert mean_cosine(x, ys[1]) == pytest.approx(direct, abs=1e-6)
    with pytest.raises(ValueError, match="same n"):
        linear_cka(x, x[:10])


def test_images_are_spread_over_the_classes():
    dataset = build_toy_dataset("toy-color", num_per_class=5)
    picked = pick_images(dataset, 8)
    labels = [dataset.samples[i][1] for i in picked]
    assert len(picked) == 8 and len(set(picked)) == 8
    assert sorted(labels.count(c) for c in range(6)) == [1, 1, 1, 1, 2, 2]
    assert pick_images(dataset, 100) == list(range(30))  # all of them, once


def test_every_analyze_subcommand_is_a_registered_model_analysis():
    import importlib

    for name, (module, _, _) in MODEL_ANALYSES.items():
        importlib.import_module(module)
        entry = ANALYSES.entry(name)
        assert entry.meta["kind"] == "model" and entry.meta["title"]


def test_analyze_help_imports_no_heavy_library():
    code = (
        "import sys; from lr0fm.cli import main; rc = main(['analyze', 'gradcam', '--help']); "
        "print(rc, [m for m in ('torch', 'lightning', 'scipy', 'open_clip') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "usage: lr0fm analyze gradcam" in out and "--lr_tokens" in out
    assert out.strip().splitlines()[-1] == "0 []"


# --- the hooks on open_clip and timm towers ----------------------------------------------------------------------


def _tiny_tower(kind):
    import timm
    from open_clip.transformer import Transformer, VisionTransformer

    torch.manual_seed(0)
    if kind == "open_clip_seq_first":
        tower = VisionTransformer(
            image_size=32, patch_size=8, width=32, layers=3, heads=2, mlp_ratio=2.0, output_dim=16
        )
        tower.transformer = Transformer(32, 3, 2, mlp_ratio=2.0, batch_first=False)
        return tower.eval(), 32
    name, size = {"eva02": ("eva02_tiny_patch14_224", 56), "siglip": ("vit_base_patch16_siglip_224", 32)}[kind]
    tower = timm.create_model(name, pretrained=False, img_size=size, embed_dim=32, depth=3, num_heads=2, num_classes=0)
    return tower.eval(), size


@pytest.mark.parametrize("kind", ["open_clip_seq_first", "eva02", "siglip"])
def test_block_features_and_grad_cam_on_open_clip_and_timm_towers(kind):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from lr0fm.analysis.vit_hooks import BlockFeatures, cam_target_layer, vit_reshape_transform
    from lr0fm.lrtk0 import tower_layout

    tower, size = _tiny_tower(kind)
    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), BlockFeatures(tower) as hooks:
        tower(x)
        features = hooks.take()
        # the towers' own forward_intermediates: spatial tokens of every block, prefix tokens dropped
        if kind.startswith("open_clip"):
            expected = tower.forward_intermediates(x, intermediates_only=True, output_fmt="NLC")["image_intermediates"]
        else:
            expected = tower.forward_intermediates(x, intermediates_only=True, output_fmt="NLC")
    assert len(features) == 3
    for ours, theirs in zip(features, expected):
        assert torch.allclose(ours, theirs.mean(dim=1), atol=1e-5)
    layout = tower_layout(tower)
    with GradCAM(tower, [cam_target_layer(layout)], vit_reshape_transform(layout)) as cam:
        maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(0)] * 3)
    assert maps.shape == (3, size, size) and np.isfinite(maps).all() and maps.max() > 0


# --- the analyses on toyclip -------------------------------------------------------------------------------------


def test_layer_similarity_with_and_without_tokens_matches_a_direct_computation(tmp_path, tokens_file):
    out = tmp_path / "report"
    argv = ["analyze", "layer-similarity", "--model", "toyclip", "--lr_tokens", tokens_file, "--dataset",
            "toy-color", "--resolutions", "8", "16", "--images", str(IMAGES), "--output", str(out)]  # fmt: skip
    assert lr0fm_main(argv) == 0
    records = {r.name: r for r in read_manifest(out)}
    assert set(records) == {"layer_similarity_toyclip_toy-color", "layer_similarity_matrix_toyclip_toy-color"}
    for record in records.values():
        assert record.analysis == "layer-similarity" and record.section and record.caption
        assert record.command.startswith("lr0fm analyze layer-similarity --model toyclip --lr_tokens")
        assert all((out / f).is_file() and (out / f).stat().st_size > 0 for f in record.files)
    rows = read_csv(out / "layer_similarity_toyclip_toy-color.csv")
    cell = {(r["variant"], r["resolution"], int(r["block"])): r for r in rows}
    assert len(rows) == 2 * 3 * 4  # variants x (8, 16, hr) x toyclip's 4 blocks
    for block in range(1, 5):  # the base model at HR is the reference itself
        assert float(cell[("base", "hr", block)]["cosine"]) == pytest.approx(1.0, abs=1e-5)
        assert float(cell[("base", "hr", block)]["cka"]) == pytest.approx(1.0, abs=1e-5)

    # independently: open_clip's own forward_intermediates (the tokens' hooks act inside it), mean spatial token
    dataset = build_toy_dataset("toy-color")
    indices = pick_images(dataset, IMAGES)
    backbone = load_backbone("toyclip")
    tokens = load_lr_tokens(tokens_file, backbone)
    views = views_of(backbone, dataset, indices, [8, "hr"])

    def blocks(x, with_tokens):
        tokens.enabled = with_tokens
        with torch.no_grad():
            out = backbone.visual.forward_intermediates(x, intermediates_only=True, output_fmt="NLC")
        return [f.mean(dim=1) for f in out["image_intermediates"]]

    reference = blocks(views[1], False)
    for variant, with_tokens in (("base", False), ("lr-tokens", True)):
        feats = blocks(views[0], with_tokens)
        for b in range(4):
            cos = F.cosine_similarity(feats[b], reference[b], dim=-1).mean().item()
            xc, yc = (
                (feats[b] - feats[b].mean(0)).double().numpy(),
                (reference[b] - reference[b].mean(0)).double().numpy(),
            )
            kx, ky = xc @ xc.T, yc @ yc.T
            cka = (kx * ky).sum() / np.sqrt((kx * kx).sum() * (ky * ky).sum())
            assert float(cell[(variant, "8", b + 1)]["cosine"]) == pytest.approx(cos, abs=1e-5)
            assert float(cell[(variant, "8", b + 1)]["cka"]) == pytest.approx(cka, abs=1e-5)
    # the tokens change the features, so the two variants differ
    assert any(cell[("base", "8", b)]["cosine"] != cell[("lr-tokens", "8", b)]["cosine"] for b in range(1, 5))
    matrix = read_csv(out / "layer_similarity_matrix_toyclip_toy-color.csv")
    assert len(matrix) == 2 * 2 * 4 * 4  # variants x (8, 16) x blocks x HR blocks
    diagonal = {(r["variant"], r["resolution"], r["block"]): r["cka"] for r in matrix if r["block"] == r["hr_block"]}
    assert all(diagonal[(v, res, str(b))] == cell[(v, res, b)]["cka"] for v, res, b in cell if res != "hr")


def test_tsne_panels_and_their_nearest_neighbour_accuracy(tmp_path):
    out = tmp_path / "report"
    argv = ["analyze", "tsne", "--model", "toyclip", "--dataset", "toy-shape", "--resolutions", "8",
            "--images", str(IMAGES), "--output", str(out)]  # fmt: skip
    assert lr0fm_main(argv) == 0
    (record,) = read_manifest(out)
    assert record.name == "tsne_toyclip_toy-shape" and record.analysis == "tsne"
    assert "--images 12" in record.command and "--perplexity 30.0" in record.command
    rows = read_csv(out / "tsne_toyclip_toy-shape.csv")
    assert len(rows) == 2 * IMAGES and {r["variant"] for r in rows} == {"base"}
    dataset = build_toy_dataset("toy-shape")
    indices = pick_images(dataset, IMAGES)
    backbone = load_backbone("toyclip")
    views = views_of(backbone, dataset, indices, [8, "hr"])
    labels = np.array([dataset.samples[i][1] for i in indices])
    for k, resolution in enumerate(("8", "hr")):
        panel = [r for r in rows if r["resolution"] == resolution]
        assert [int(r["index"]) for r in panel] == indices
        assert [r["label_name"] for r in panel] == [dataset.classnames[c] for c in labels]
        assert all(np.isfinite(float(r["x"])) and np.isfinite(float(r["y"])) for r in panel)
        with torch.no_grad():
            emb = F.normalize(backbone.encode_image(views[k]), dim=-1).double().numpy()
        hits = 0
        for i in range(len(emb)):  # leave-one-out 1-NN by brute force
            sims = [emb[i] @ emb[j] if j != i else -np.inf for j in range(len(emb))]
            hits += labels[int(np.argmax(sims))] == labels[i]
        assert float(panel[0]["panel_1nn_accuracy"]) == pytest.approx(hits / len(emb), abs=1e-6)


def test_grad_cam_maps_match_a_direct_grad_cam(tmp_path, tokens_file):
    out = tmp_path / "report"
    argv = ["analyze", "gradcam", "--model", "toyclip", "--lr_tokens", tokens_file, "--dataset", "toy-shape",
            "--resolutions", "8", "--images", "3", "--output", str(out)]  # fmt: skip
    assert lr0fm_main(argv) == 0
    (record,) = read_manifest(out)
    assert record.files[-1] == "gradcam_toyclip_toy-shape_maps.npz"
    maps = np.load(out / record.files[-1])["maps"]
    rows = read_csv(out / "gradcam_toyclip_toy-shape.csv")
    assert maps.shape == (2 * 2 * 3, 64, 64)  # (variants x (8, hr) x images) maps of the 64 px input
    assert len(rows) == len(maps) and [int(r["map"]) for r in rows] == list(range(len(maps)))
    assert 0.0 <= maps.min() and maps.max() <= 1.0 + 1e-6
    assert len({m.tobytes() for m in maps}) == len(maps)  # no two maps alike
    assert sum(float(m.std()) > 0 for m in maps) >= len(maps) - 2  # and (almost) none flat
    for row, cam in zip(rows, maps):
        flat = np.sort(cam.ravel())[::-1].astype(np.float64)
        expected = flat[: round(0.1 * flat.size)].sum() / flat.sum() if flat.sum() > 0 else 0.1
        assert float(row["focus"]) == pytest.approx(expected, abs=1e-5)

    # Grad-CAM by hand for one image and variant: gradient-weighted activations of ln_1 of the last block
    dataset = build_toy_dataset("toy-shape")
    backbone = load_backbone("toyclip")
    tokens = load_lr_tokens(tokens_file, backbone)
    row = next(r for r in rows if r["variant"] == "lr-tokens" and r["resolution"] == "8" and r["map"] != "0")
    index = int(row["index"])
    label = dataset.samples[index][1]
    x = views_of(backbone, dataset, [index], [8])[0].requires_grad_(True)
    classifier = build_classifier(backbone, dataset.classnames, dataset.templates)
    kept = {}
    handle = backbone.visual.transformer.resblocks[-1].ln_1.register_forward_hook(
        lambda m, i, o: kept.update(act=o) or o.retain_grad()
    )
    tokens.enabled = True
    logits = 100 * F.normalize(backbone.encode_image(x), dim=-1) @ classifier.T
    logits[0, label].backward()
    handle.remove()
    act, grad = kept["act"][0, 1:].detach(), kept["act"].grad[0, 1:]
    cam = torch.relu((act * grad.mean(dim=0)).sum(dim=-1)).reshape(8, 8).double().numpy()
    cam = (cam - cam.min()) / (cam.max() - cam.min() + 1e-7)
    cam = cv2.resize(np.float32(cam), (64, 64))
    cam = (cam - cam.min()) / (cam.max() - cam.min() + 1e-7)
    assert np.abs(cam - maps[int(row["map"])]).max() < 1e-3


def _fake_predictions(dataset, path):
    """A predictions file as `lr0fm benchmark` writes it, for 10 images whose top-5 the test chooses."""
    indices = torch.arange(0, 60, 6)  # 10 images, classes 0..5 in turn
    labels = torch.tensor([dataset.samples[i][1] for i in indices.tolist()])
    resolutions = [8, 16, "hr"]
    preds = torch.zeros(10, 3, 5, dtype=torch.long)
    for n, label in enumerate(labels.tolist()):
        wrong = [c for c in range(6) if c != label]
        right = [label, *wrong[:4]]
        off = [wrong[n % 5], label, *[c for c in wrong if c != wrong[n % 5]][:3]]
        at = {8: right, 16: right, "hr": right}
        if n in (1, 2, 5):  # wrong at 8 px, right at HR
            at[8] = off
        if n in (2, 7):  # wrong at 16 px, right at HR
            at[16] = off
        if n == 9:  # wrong everywhere: never selected
            at = {8: off, 16: off, "hr": off}
        for j, r in enumerate(resolutions):
            preds[n, j] = torch.tensor(at[r])
    scores = torch.linspace(0.5, 0.1, 5).expand(10, 3, 5)
    ids = [dataset.sample_id(i) for i in range(len(dataset))]
    path.parent.mkdir(parents=True, exist_ok=True)
    predictions = {"indices": indices, "labels": labels, "preds": preds, "scores": scores}
    write_predictions(path, predictions, resolutions, ids, dataset.classnames)
    return {(1, "8"), (2, "8"), (5, "8"), (2, "16"), (7, "16")}, indices, preds


def test_mispredictions_are_exactly_those_of_the_predictions_file(tmp_path):
    dataset = build_toy_dataset("toy-color")
    bench = tmp_path / "bench"
    expected, indices, preds = _fake_predictions(
        dataset, bench / "predictions" / "paper" / "toyclip" / "toy-color.jsonl"
    )
    out = tmp_path / "report"
    argv = ["analyze", "mispredictions", "--model", "toyclip", "--dataset", "toy-color", "--resolutions", "8", "16",
            "--images", "4", "--predictions", str(bench), "--output", str(out)]  # fmt: skip
    assert lr0fm_main(argv) == 0
    names = {r.name for r in read_manifest(out)}
    assert names == {"mispredictions_toyclip_toy-color", "mispredictions_similarity_toyclip_toy-color"}
    rows = read_csv(out / "mispredictions_toyclip_toy-color.csv")
    position = {int(i): n for n, i in enumerate(indices.tolist())}
    assert {(position[int(r["index"])], r["resolution"]) for r in rows} == expected
    backbone = load_backbone("toyclip")
    classes = build_classifier(backbone, dataset.classnames, dataset.templates).double()
    sims = classes @ classes.T
    for r in rows:
        n, j = position[int(r["index"])], {"8": 0, "16": 1}[r["resolution"]]
        label, predicted = dataset.samples[int(r["index"])][1], int(preds[n, j, 0])
        assert r["top5"].split(" | ") == [dataset.classnames[c] for c in preds[n, j].tolist()]
        assert float(r["similarity"]) == pytest.approx(float(sims[label, predicted]), abs=1e-5)
        others = [float(sims[label, c]) for c in range(6) if c != label]
        assert float(r["random_wrong_similarity"]) == pytest.approx(sum(others) / 5, abs=1e-5)
        below = [c for c in range(6) if c not in (label, predicted) and sims[label, c] < sims[label, predicted]]
        assert float(r["percentile"]) == pytest.approx(len(below) / 4, abs=1e-6)
    summary = {r["resolution"]: r for r in read_csv(out / "mispredictions_similarity_toyclip_toy-color.csv")}
    assert (summary["8"]["mispredictions"], summary["16"]["mispredictions"]) == ("3", "2")
    assert summary["8"]["right_at_hr"] == "9" and summary["8"]["images"] == "10"

    # a predictions file given directly works the same
    direct = tmp_path / "direct"
    file = bench / "predictions" / "paper" / "toyclip" / "toy-color.jsonl"
    argv[argv.index("--predictions") + 1], argv[-1] = str(file), str(direct)
    assert lr0fm_main(argv) == 0
    assert read_csv(direct / "mispredictions_toyclip_toy-color.csv") == rows


def test_mispredictions_with_tokens_read_the_file_the_benchmark_wrote(tmp_path, tokens_file):
    """The model label with tokens has characters a file name cannot keep: both sides use one path function."""
    bench, out = tmp_path / "bench", tmp_path / "report"
    common = ["--model", "toyclip", "--lr_tokens", tokens_file, "--dataset", "toy-color"]
    assert lr0fm_main(["benchmark", *common, "--resolutions", "8", "hr", "--workers", "0", "--output", str(bench)]) == 0
    written = list((bench / "predictions").rglob("toy-color.jsonl"))
    assert len(written) == 1 and written[0].parent.name != "toyclip"
    argv = ["analyze", "mispredictions", *common, "--resolutions", "8", "--images", "4", "--predictions", str(bench),
            "--output", str(out)]  # fmt: skip
    assert lr0fm_main(argv) == 0
    (summary_csv,) = out.glob("mispredictions_similarity_toyclip_lrtk0_*_toy-color.csv")
    summary = read_csv(summary_csv)
    lines = [json.loads(line) for line in written[0].read_text().splitlines()]
    right_hr = sum(line["top5"]["hr"]["classes"][0] == line["label"] for line in lines)
    assert [r["resolution"] for r in summary] == ["8"] and int(summary[0]["right_at_hr"]) == right_hr


def test_the_grid_shows_distinct_images_class_by_class():
    from lr0fm.analysis.mispredictions import examples_to_show

    cases = [({"index": i, "label": label}, r) for i, label in ((0, 0), (1, 0), (2, 0), (5, 1), (9, 2)) for r in "ab"]
    shown = examples_to_show(cases, 4)
    assert [(c[0]["index"], c[1]) for c in shown] == [(0, "a"), (5, "a"), (9, "a"), (1, "a")]
    assert len(examples_to_show(cases, 99)) == 5


# --- bad input ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["layer-similarity", "--model", "toyclip", "--dataset", "toy-colour"], "unknown dataset 'toy-colour'"),
        (["tsne", "--model", "toyclipp", "--dataset", "toy-color"], "toyclipp"),
        (
            ["gradcam", "--model", "toyclip", "--dataset", "toy-color", "--lr_tokens", "nowhere.safetensors"],
            "LR tokens file not found: nowhere.safetensors",
        ),
        (
            ["tsne", "--model", "toyclip", "--dataset", "toy-color", "--resolutions", "hr"],
            "at least one low resolution",
        ),
        (["gradcam", "--model", "toyclip", "--dataset", "toy-color", "--device", "cuda:7"], "--device"),
    ],
    ids=["dataset", "model", "tokens", "resolutions", "device"],
)
def test_bad_input_is_a_clear_error(tmp_path, capsys, argv, message):
    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    assert lr0fm_main(["analyze", *argv, "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lr0fm analyze {argv[0]}: error: ") and message in err
    assert not (tmp_path / "figures.json").exists()


def test_a_tower_without_transformer_blocks_is_a_clear_error(tmp_path, capsys):
    resnet = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 8},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    spec = tmp_path / "tiny-resnet-clip.json"
    spec.write_text(json.dumps(resnet))
    argv = ["analyze", "layer-similarity", "--model", str(spec), "--dataset", "toy-color", "--images", "4",
            "--output", str(tmp_path / "out")]  # fmt: skip
    assert lr0fm_main(argv) == 2
    err = capsys.readouterr().err
    assert "this analysis reads the transformer blocks of a ViT vision tower" in err and "ModifiedResNet" in err


def test_missing_or_foreign_predictions_are_clear_errors(tmp_path, capsys):
    base = ["analyze", "mispredictions", "--model", "toyclip", "--dataset", "toy-color", "--output", str(tmp_path)]
    bench = tmp_path / "bench"
    (bench / "predictions" / "paper" / "other").mkdir(parents=True)
    (bench / "predictions" / "paper" / "other" / "toy-size.jsonl").write_text("")
    assert lr0fm_main([*base, "--predictions", str(bench)]) == 2
    err = capsys.readouterr().err
    assert "no predictions of 'toyclip' on 'toy-color'" in err
    assert "predictions/paper/toyclip/toy-color.jsonl" in err and "predictions/paper/other/toy-size.jsonl" in err
    assert lr0fm_main([*base, "--predictions", str(tmp_path / "missing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    # predictions of toy-color read against toy-size: other images
    file = tmp_path / "p.jsonl"
    _fake_predictions(build_toy_dataset("toy-color"), file)
    argv = [*base, "--predictions", str(file)]
    argv[argv.index("toy-color")] = "toy-size"
    assert lr0fm_main(argv) == 2
    assert "written for another dataset" in capsys.readouterr().err
    assert lr0fm_main([*base, "--predictions", str(file), "--resolutions", "16", "32"]) == 2
    assert "has no predictions at 32 px (it has 8, 16)" in capsys.readouterr().err
    (bench / "bad.jsonl").write_text('{"index": 0}\n')
    assert lr0fm_main([*base, "--predictions", str(bench / "bad.jsonl")]) == 2
    assert "not a predictions record written by lr0fm benchmark" in capsys.readouterr().err


@pytest.mark.slow
def test_mispredictions_from_a_real_benchmark_run(tmp_path):
    bench, out = tmp_path / "bench", tmp_path / "report"
    argv = ["benchmark", "--model", "toyclip", "--dataset", "toy-shape", "--resolutions", "8", "16", "hr",
            "--output", str(bench), "--workers", "0"]  # fmt: skip
    assert lr0fm_main(argv) == 0
    argv = ["analyze", "mispredictions", "--model", "toyclip", "--dataset", "toy-shape", "--resolutions", "8", "16",
            "--predictions", str(bench), "--output", str(out)]  # fmt: skip
    assert lr0fm_main(argv) == 0
    lines = [json.loads(x) for x in (bench / "predictions/paper/toyclip/toy-shape.jsonl").read_text().splitlines()]
    expected = {(x["index"], r) for x in lines for r in ("8", "16")
                if x["top5"]["hr"]["classes"][0] == x["label"] != x["top5"][r]["classes"][0]}  # fmt: skip
    rows = read_csv(out / "mispredictions_toyclip_toy-shape.csv")
    assert expected and {(int(r["index"]), r["resolution"]) for r in rows} == expected


def test_sr_samples_show_what_the_benchmark_scores_behind_each_front_end(tmp_path, tokens_file):
    """Each picture's top-1 is the benchmark's for that image behind the same front-end (same chain, same model)."""
    from lr0fm.toy.backbone import SHIPPED_SR

    bench, out = tmp_path / "bench", tmp_path / "figures"
    base = ["--model", "toyclip", "--dataset", "toy-texture", "--resolutions", "16", "32"]
    for extra in (["--sr", str(SHIPPED_SR)], ["--lr_tokens", tokens_file], []):
        argv = ["benchmark", *base, "hr", "--output", str(bench), "--workers", "0", *extra]
        assert lr0fm_main(argv) == 0
    argv = ["analyze", "sr-samples", *base, "--images", "8", "--sr", str(SHIPPED_SR), "bicubic", "--lr_tokens",
            tokens_file, "--output", str(out)]  # fmt: skip
    assert lr0fm_main(argv) == 0
    folders = {
        "toy_sr_compact_x4": next((bench / "predictions").glob("sr_toy_sr_compact_x4*")) / "toyclip",
        "plain (without LR tokens)": bench / "predictions" / "paper" / "toyclip",
        "plain (with LR tokens)": next((bench / "predictions" / "paper").glob("toyclip+lrtk0*")),
    }
    top1 = {
        (column, x["id"], r): x["top5"][r]["names"][0]
        for column, folder in folders.items()
        for x in map(json.loads, (folder / "toy-texture.jsonl").read_text().splitlines())
        for r in ("16", "32", "hr")
    }
    for r in ("16", "32"):
        rows = read_csv(out / f"sr_samples_toyclip_toy-texture_{r}.csv")
        columns = {row["column"] for row in rows}
        assert columns == {"HR", *folders, "bicubic-x4"} and len(rows) == 8 * len(columns)
        for row in rows:
            column = "plain (without LR tokens)" if row["column"] == "HR" else row["column"]
            if column in folders:
                assert row["predicted"] == top1[(column, row["id"], "hr" if row["column"] == "HR" else r)], row
            assert row["correct"] == str(row["predicted"] == row["label_name"])
    records = [x for x in read_manifest(out) if x.analysis == "sr-samples"]
    assert [x.name for x in records] == ["sr_samples_toyclip_toy-texture_16", "sr_samples_toyclip_toy-texture_32"]
    assert all((out / f"{x.name}.png").stat().st_size > 10_000 for x in records)
