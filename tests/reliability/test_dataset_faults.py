"""Bad images, truncated shards, bad templates and bad dataset lists: named, skippable, never silent."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
from benchmark_fixtures import make_image_folder, tiny_clip_json
from datasets_fixtures import jpeg_bytes, make_wds, write_lines
from PIL import Image

from lr0fm.cli import main as cli_main
from lr0fm.datasets import CorruptImageError, DatasetError, build_dataset
from lr0fm.datasets.base import load_image

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def test_a_16_bit_png_keeps_its_grey_levels(tmp_path):
    """Pillow's convert("RGB") clips 16-bit values: mid-grey 32768 became white (255)."""
    path = tmp_path / "grey16.png"
    Image.fromarray(np.array([[0, 32768, 65535, 257 * 100]], dtype=np.uint16)).save(path)
    image = load_image(str(path))
    assert image.mode == "L"
    assert np.asarray(image.convert("RGB"))[0, :, 0].tolist() == [0, 128, 255, 100]


def test_a_decompression_bomb_is_a_named_corrupt_image_and_skippable(tmp_path, monkeypatch, capsys):
    folder = make_image_folder(tmp_path / "data", num_classes=2, per_class=2)
    bomb = folder / "class_00" / "bomb.png"
    Image.new("RGB", (300, 300)).save(bomb)  # 90,000 px: a bomb under the lowered limit below
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20_000)
    with pytest.raises(CorruptImageError, match="bomb.png.*MAX_IMAGE_PIXELS"):
        load_image(str(bomb))
    args = ["benchmark", "--model", str(tiny_clip_json(tmp_path)), "--dataset", f"folder:{folder}",
            "--resolutions", "8", "hr", "--accelerator", "cpu", "--workers", "0", "--seed", "0"]  # fmt: skip
    assert cli_main([*args, "--output", str(tmp_path / "a")]) == 2
    assert str(bomb) in capsys.readouterr().err
    assert cli_main([*args, "--output", str(tmp_path / "b"), "--skip_corrupt"]) == 0
    with (tmp_path / "b" / "results.csv").open() as fh:
        assert {(r["num_samples"], r["num_skipped"]) for r in csv.DictReader(fh)} == {("4", "1")}


def _shard_folder(tmp_path):
    shards = [[(f"s{i:03d}", "jpg", jpeg_bytes(i), str(i % 2).encode()) for i in range(6)]]
    make_wds(tmp_path / "wds", ["cat", "dog"], shards)
    return tmp_path / "wds", tmp_path / "wds" / "test" / "0.tar"


def test_a_whole_shard_reads_all_samples(tmp_path):
    root, _ = _shard_folder(tmp_path)
    assert len(build_dataset(f"wds:{root}")) == 6


@pytest.mark.parametrize("cut", ["inside-member", "at-member-boundary"])
def test_a_truncated_shard_is_named_not_silently_short(tmp_path, cut):
    """tarfile stops quietly at a cut-off header: 4 of 6 samples were scored without a word."""
    import tarfile

    root, shard = _shard_folder(tmp_path)
    data = shard.read_bytes()
    with tarfile.open(shard) as tar:
        members = list(tar)
    fifth = members[8]  # the image of the fifth sample
    end = fifth.offset_data + fifth.size // 2 if cut == "inside-member" else fifth.offset
    shard.write_bytes(data[:end])
    with pytest.raises(DatasetError, match=f"{shard}.*(truncated|cannot read)"):
        build_dataset(f"wds:{root}")


@pytest.mark.parametrize("template, problem", [("a {x} of a {c}.", "KeyError"), ("a {0} {c}", "IndexError"),
                                               ("a } {c}", "ValueError")])  # fmt: skip
def test_a_bad_template_names_its_file_and_line(tmp_path, template, problem):
    folder = make_image_folder(tmp_path / "data", num_classes=2, per_class=1)
    templates = folder / "zeroshot_classification_templates.txt"
    write_lines(templates, ["a photo of a {c}.", template])
    with pytest.raises(DatasetError, match=f"{templates}, template 2 .*{problem}.*literal brace"):
        build_dataset(f"folder:{folder}")


def test_every_missing_dataset_is_reported_before_any_work(tmp_path, capsys):
    out = tmp_path / "out"
    status = cli_main(["benchmark", "--model", "toyclip", "--dataset", "toy-color", "imagenet=/nowhere/in",
                       "dtd=/nowhere/dtd", "--output", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 2 and "2 of 3 datasets cannot be used" in err
    assert "/nowhere/in" in err and "/nowhere/dtd" in err and "Expected layout" in err
    assert not (out / "results.csv").exists()


def test_a_one_class_dataset_warns(tmp_path, capsys):
    folder = make_image_folder(tmp_path / "data", num_classes=1, per_class=2)
    args = ["benchmark", "--model", str(tiny_clip_json(tmp_path)), "--dataset", f"folder:{folder}", "--resolutions",
            "8", "--accelerator", "cpu", "--workers", "0", "--output", str(tmp_path / "o")]  # fmt: skip
    assert cli_main(args) == 0
    assert "has 1 class: every model scores 100 % top-1" in capsys.readouterr().out


@pytest.mark.parametrize("values, message", [(["100000"], "above 2048 px"), (["0"], "positive"), (["x"], "'hr'")])
def test_resolutions_out_of_bounds_stop_before_the_output_folder_exists(tmp_path, capsys, values, message):
    out = tmp_path / "out"
    assert cli_main(["benchmark", "--model", "toyclip", "--dataset", "toy-color", "--resolutions", *values,
                     "--output", str(out)]) == 2  # fmt: skip
    assert message in capsys.readouterr().err and not out.exists()


def test_a_listing_that_matches_nothing_says_so(capsys):
    assert cli_main(["benchmark", "--list_models", "zzz-no-such-*"]) == 1
    assert "no backbone matches 'zzz-no-such-*'" in capsys.readouterr().err


@pytest.mark.parametrize("yaml_text, message", [
    ("models: [toyclip\ndatasets: [toy-color]\n", "is not valid YAML at line 2"),
    ("models: [toyclip]\nresolutions: 8\n", "'resolutions' takes a list; write `resolutions: [8]"),
    ("- toyclip\n", "must be a mapping"),
    ("models: [toyclip]\nskip_existing: nope\n", "skip_existing: 'nope' is not valid (Value not boolean"),
    ("models: [toyclip]\nbatch_size: abc\n", "batch_size: 'abc' is not valid"),
    ("models: [toyclip]\nbatch_sise: 8\n", "unknown option 'batch_sise'. Did you mean 'batch_size'"),
])  # fmt: skip
def test_a_bad_config_file_is_named_with_the_fix(tmp_path, capsys, yaml_text, message):
    config = tmp_path / "bench.yaml"
    config.write_text(yaml_text)
    assert cli_main(["benchmark", "--config", str(config), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(config) in err and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


@pytest.mark.parametrize("value, skips", [('"no"', False), ("no", False), ('"yes"', True), ("false", False)])
def test_config_booleans_mean_what_they_say(tmp_path, value, skips):
    from lr0fm.benchmark.cli import build_parser
    from lr0fm.command import parse

    config = tmp_path / "bench.yaml"
    config.write_text(f"models: [toyclip]\nskip_existing: {value}\n")
    assert parse(build_parser(), ["--config", str(config)]).skip_existing is skips


def test_a_bad_value_in_a_subcommand_config_is_one_line(tmp_path, capsys):
    config = tmp_path / "m.yaml"
    config.write_text("alpha: abc\n")
    argv = ["metrics", "report", "lr0fm66", "--config", str(config), "--output", str(tmp_path / "m")]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lr0fm metrics report: error: config ") and "alpha: 'abc' is not valid" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "m").exists()
