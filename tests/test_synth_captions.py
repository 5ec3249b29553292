"""Caption sampling, seeds, sharding, manifest and file handling of ``lr0fm synth`` (no pipeline)."""

from __future__ import annotations

import hashlib
import json

import pytest
from PIL import Image

from lr0fm.synth.captions import (
    load_captions_tsv,
    read_caption_file,
    sample_captions,
    write_captions_tsv,
)
from lr0fm.synth.cli import config_from_args
from lr0fm.synth.config import SynthConfig, SynthError
from lr0fm.synth.manifest import ManifestWriter, manifest_name, read_manifest
from lr0fm.synth.seeds import image_seed
from lr0fm.synth.sharding import local_device, parse_shard, shard_caption_ids, shard_from_env
from lr0fm.synth.storage import is_valid_image, resize_shorter_side, save_image_atomic


def _write_captions(path, n, tsv=True):
    lines = [f"caption number {i}" + (f"\thttp://example.com/{i}.jpg" if tsv else "") for i in range(n)]
    path.write_text("\n".join(lines[:3] + [""] + lines[3:]) + "\n", encoding="utf-8")
    return path


def test_tsv_and_plain_files_give_the_same_captions(tmp_path):
    tsv = read_caption_file(_write_captions(tmp_path / "cc.tsv", 6))
    txt = read_caption_file(_write_captions(tmp_path / "cc.txt", 6, tsv=False))
    assert [text for _, text in tsv] == [text for _, text in txt] == [f"caption number {i}" for i in range(6)]
    assert tsv[3][0] == 5  # 1-based line numbers, the blank line 4 skipped


def test_sampling_is_reproducible_without_replacement_and_extends(tmp_path):
    captions = read_caption_file(_write_captions(tmp_path / "cc.tsv", 200))
    first = sample_captions(captions, 50, seed=7)
    assert first == sample_captions(captions, 50, seed=7)
    assert [c.caption_id for c in first] == list(range(50))
    assert len({c.source_line for c in first}) == 50
    assert {c.text for c in first} != {c.text for c in sample_captions(captions, 50, seed=8)}
    assert sample_captions(captions, 80, seed=7)[:50] == first  # asking for more keeps earlier ids
    assert [c.text for c in sample_captions(captions, None, seed=7)] == [t for _, t in captions]


def test_too_many_captions_and_empty_or_missing_file_are_clear_errors(tmp_path):
    captions = read_caption_file(_write_captions(tmp_path / "cc.tsv", 5))
    with pytest.raises(SynthError, match=r"--num-captions 9 .* \(5 non-empty lines\)"):
        sample_captions(captions, 9, seed=0)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n\t\n", encoding="utf-8")
    with pytest.raises(SynthError, match="holds no caption"):
        read_caption_file(empty)
    with pytest.raises(SynthError, match="does not exist"):
        read_caption_file(tmp_path / "nope.tsv")


def test_captions_tsv_roundtrip_extension_and_conflict(tmp_path):
    captions = sample_captions(read_caption_file(_write_captions(tmp_path / "cc.tsv", 30)), 10, seed=1)
    write_captions_tsv(tmp_path, captions[:4])
    write_captions_tsv(tmp_path, captions)  # extends the earlier, shorter list
    write_captions_tsv(tmp_path, captions[:6])  # a shorter rerun keeps the longer list
    assert load_captions_tsv(tmp_path / "captions.tsv") == captions
    other = sample_captions(read_caption_file(tmp_path / "cc.tsv"), 10, seed=2)
    with pytest.raises(SynthError, match="other captions"):
        write_captions_tsv(tmp_path, other)


def test_image_seeds_are_stable_and_distinct():
    # the documented formula, so seeds stay the same across versions and machines
    expected = int.from_bytes(hashlib.sha256(b"lr0fm-synth-image/5/12/3").digest()[:8], "big") >> 1
    assert image_seed(5, 12, 3) == expected
    seeds = {image_seed(s, c, i) for s in range(2) for c in range(20) for i in range(30)}
    assert len(seeds) == 2 * 20 * 30
    assert all(0 <= s < 2**63 for s in seeds)


def test_shards_are_disjoint_and_cover_everything():
    ids = list(range(23))
    parts = [shard_caption_ids(ids, (i, 4)) for i in range(4)]
    assert sorted(sum(parts, [])) == ids
    assert parse_shard("3/4") == (3, 4)
    for bad in ("4/4", "1", "a/b", "-1/2"):
        with pytest.raises(SynthError, match="i/N"):
            parse_shard(bad)
    assert shard_from_env({"RANK": "2", "WORLD_SIZE": "8", "LOCAL_RANK": "2"}) == (2, 8)
    assert shard_from_env({"SLURM_PROCID": "1", "SLURM_NTASKS": "3"}) == (1, 3)
    assert shard_from_env({}) == (0, 1)
    assert local_device("cuda", {"LOCAL_RANK": "3"}) == "cuda:3"
    assert local_device("cpu", {"LOCAL_RANK": "3"}) == "cpu"


def test_manifest_drops_cut_lines_and_duplicates(tmp_path):
    record = {"caption_id": 0, "image_index": 0, "seed": 1, "caption": "x", "path": "images/00000/000.jpg"}
    path = tmp_path / manifest_name((0, 1))
    path.write_text(json.dumps(record) + "\n" + json.dumps(record) + "\n" + '{"caption_id": 0, "ima', "utf-8")
    with ManifestWriter(path) as writer:
        assert (0, 0) in writer
        writer.append({**record, "image_index": 1, "path": "images/00000/001.jpg"})
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2
    other = {**record, "caption_id": 1, "path": "images/00001/000.jpg"}
    (tmp_path / manifest_name((1, 2))).write_text(json.dumps(other) + "\n", "utf-8")
    assert [(r["caption_id"], r["image_index"]) for r in read_manifest(tmp_path)] == [(0, 0), (0, 1), (1, 0)]


def test_truncated_image_is_invalid_and_atomic_write_leaves_no_temp(tmp_path):
    image = Image.new("RGB", (40, 30), (10, 200, 30))
    path = tmp_path / "images" / "00000" / "000.jpg"
    save_image_atomic(image, path, "jpg", 95)
    assert is_valid_image(path)
    assert [p.name for p in path.parent.iterdir()] == ["000.jpg"]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert not is_valid_image(path)
    assert not is_valid_image(tmp_path / "missing.jpg")
    assert resize_shorter_side(image, 15).size == (20, 15)
    assert resize_shorter_side(image, 64) is image


def test_paper_config_and_flag_overrides(tmp_path, capsys):
    shipped = config_from_args(["--config", "paper_7k", "--output", "o"])
    assert (shipped.captions, shipped.num_captions, shipped.images_per_caption) == ("paper", None, 30)
    config = config_from_args(
        ["--config", "configs/synth/paper_7k.yaml", "--captions", "c.tsv", "--output", "o", "--shard", "1/4"]
    )
    assert (config.captions, config.num_captions, config.images_per_caption) == ("c.tsv", None, 30)
    assert (config.pipeline, config.dtype, config.shard) == (
        "PixArt-alpha/PixArt-XL-2-1024-MS",
        "float16",
        (1, 4),
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("images_per_captoin: 3\n", encoding="utf-8")
    with pytest.raises(SystemExit):
        config_from_args(["--config", str(bad)])
    assert "unknown option 'images_per_captoin'. Did you mean 'images_per_caption'" in capsys.readouterr().err
    with pytest.raises(SynthError, match="missing --captions and --output"):
        config_from_args([])
    with pytest.raises(SynthError, match="--batch_size 0 is not valid: expected a positive integer"):
        SynthConfig(captions="c", output="o", batch_size=0)


#: the LR0.FM authors' published caption files (shyammarjit/LR0.FM, Captions/, commit aabd8b8)
AUTHORS_SHA256 = {
    "caption_2k.txt": "28748cc25bc8f34d66bf1c67d3001d0f6de4b23e607e6f969bd08b5f670b0459",
    "caption_5k.txt": "80e7cc9ec716b26320cb0f2916f11f51434e8d031666498c887230b4d2c78b3b",
}


def test_paper_captions_are_exactly_the_authors_7000(tmp_path):
    from lr0fm.synth.captions import _PACKAGED

    for name, digest in AUTHORS_SHA256.items():  # the shipped files are the published ones, byte for byte
        assert hashlib.sha256((_PACKAGED / name).read_bytes()).hexdigest() == digest
    captions = sample_captions(read_caption_file("paper"), None, seed=0)
    assert len(captions) == 7000 and [c.caption_id for c in captions] == list(range(7000))
    # as the authors' training code reads them: 2K lines without the last one, then the 5K lines, stripped
    with (_PACKAGED / "caption_2k.txt").open(encoding="utf-8") as handle:
        two_k = [line.strip() for line in handle.readlines()[:-1]]
    with (_PACKAGED / "caption_5k.txt").open(encoding="utf-8") as handle:
        five_k = [line.strip() for line in handle.readlines()]
    assert [c.text for c in captions] == two_k + five_k
    assert len({c.text for c in captions}) == 6915  # repeated captions keep one id per line, as their labels
    assert [c.text for c in sample_captions(read_caption_file("paper-2k"), None, 0)] == two_k
    # the synth run writes them unchanged into captions.tsv
    write_captions_tsv(tmp_path, captions)
    assert load_captions_tsv(tmp_path / "captions.tsv") == captions
