"""End-to-end ``lr0fm synth`` on a tiny randomly initialised PixArt-α pipeline (CPU, offline)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before diffusers/huggingface_hub are imported

import json  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from lr0fm.cli import main as lr0fm_main  # noqa: E402
from lr0fm.synth import SynthConfig, SynthError, generate  # noqa: E402
from lr0fm.synth.generation import generate_chunk  # noqa: E402
from lr0fm.synth.manifest import read_manifest  # noqa: E402
from lr0fm.synth.pipeline import load_pipeline  # noqa: E402
from lr0fm.synth.tiny import TINY_IMAGE_SIZE, build_tiny_pixart, save_tiny_pixart  # noqa: E402

CAPTIONS = [
    "a dog on the beach",
    "a red car in the city",
    "a photo of a tree",
    "a small white house",
    "a woman with a blue car",
]
TINY_CALL = {"use_resolution_binning": False}


@pytest.fixture(scope="module")
def pipe():
    return build_tiny_pixart(seed=0)


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    return save_tiny_pixart(tmp_path_factory.mktemp("tiny_pixart"), seed=0)


@pytest.fixture(scope="module")
def caption_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("captions") / "cc.tsv"
    path.write_text("".join(f"{c}\thttp://example.com/{i}.jpg\n" for i, c in enumerate(CAPTIONS)), "utf-8")
    return path


@pytest.fixture(scope="module")
def reference(pipe, caption_file, tmp_path_factory):
    """One uninterrupted, unsharded run: 3 captions x 3 images in chunks of 2 + 1 images."""
    output = tmp_path_factory.mktemp("reference")
    report = generate(_config(caption_file, output), pipe=pipe)
    assert (report.generated, report.skipped, report.total_images) == (9, 0, 9)
    return output


def _config(caption_file, output, **overrides):
    settings = dict(
        captions=str(caption_file),
        output=str(output),
        num_captions=3,
        seed=3,
        images_per_caption=3,
        pipeline="unused-when-a-pipe-is-passed",
        batch_size=2,
        num_inference_steps=2,
        dtype="float32",
        device="cpu",
        image_format="png",
        call_kwargs=TINY_CALL,
        progress=False,
    )
    return SynthConfig(**{**settings, **overrides})


def _image_bytes(output):
    return {p.relative_to(output).as_posix(): p.read_bytes() for p in sorted(output.glob("images/*/*.png"))}


def test_cli_end_to_end_with_saved_pipeline(pipeline_dir, caption_file, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["synth", "--captions", str(caption_file), "--output", str(out), "--pipeline", str(pipeline_dir)]
    argv += ["--num_captions", "2", "--images_per_caption", "2", "--num_inference_steps", "2", "--device", "cpu"]
    argv += ["--dtype", "float32", "--image_format", "jpg", "--call_kwargs", json.dumps(TINY_CALL), "--no_progress"]
    argv += ["--webdataset", "--captions_per_tar", "1"]
    assert lr0fm_main(argv) == 0
    assert "4 generated, 0 already present" in capsys.readouterr().out
    records = read_manifest(out)
    assert [(r["caption_id"], r["image_index"]) for r in records] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert records[1]["path"] == "images/00000/001.jpg"
    assert {r["caption"] for r in records} <= set(CAPTIONS)
    assert (out / "captions.tsv").read_text("utf-8").startswith("caption_id\tsource_line\tcaption\n")
    assert sorted(p.name for p in (out / "webdataset").iterdir()) == ["synth-00000.tar", "synth-00001.tar"]
    assert lr0fm_main(argv) == 0  # rerun: nothing left to do
    assert "0 generated, 4 already present" in capsys.readouterr().out


def test_batched_chunk_matches_single_images(pipe, caption_file, tmp_path):
    from lr0fm.synth.captions import read_caption_file, sample_captions
    from lr0fm.synth.generation import pipeline_call_kwargs, plan_chunks

    config = _config(caption_file, tmp_path, image_format="png")
    captions = sample_captions(read_caption_file(caption_file), 1, seed=3)
    (chunk,) = plan_chunks(captions, 3, 3, seed=3, image_format="png")
    kwargs = {**pipeline_call_kwargs(config), "output_type": "np"}
    batched = generate_chunk(pipe, chunk, kwargs)
    singles = [generate_chunk(pipe, [task], kwargs)[0] for task in chunk]
    assert batched[0].shape == (TINY_IMAGE_SIZE, TINY_IMAGE_SIZE, 3)
    for a, b in zip(batched, singles):  # per-image generators: equal up to float rounding
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert np.abs(batched[0] - batched[1]).max() > 0.01  # different seeds give different images


def test_two_shards_equal_one_run_image_for_image(pipe, caption_file, reference, tmp_path):
    split = tmp_path / "split"
    reports = [generate(_config(caption_file, split, shard=(i, 2)), pipe=pipe) for i in range(2)]
    assert [r.shard_captions for r in reports] == [2, 1]
    assert _image_bytes(reference) == _image_bytes(split)
    assert len(_image_bytes(reference)) == 9
    assert read_manifest(reference) == read_manifest(split)
    assert sorted(p.name for p in split.glob("manifest*")) == [
        "manifest.shard-0-of-2.jsonl",
        "manifest.shard-1-of-2.jsonl",
    ]


class _KilledAfter:
    """Wraps a pipeline and raises on call ``n`` (a kill in the middle of a run)."""

    def __init__(self, pipe, n):
        self.pipe, self.n, self.calls = pipe, n, 0

    def __call__(self, **kwargs):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt
        return self.pipe(**kwargs)


def test_resume_after_kill_and_truncated_image(pipe, caption_file, reference, tmp_path):
    out = tmp_path / "out"
    killed = _KilledAfter(pipe, n=3)
    with pytest.raises(KeyboardInterrupt):
        generate(_config(caption_file, out), pipe=killed)
    assert len(_image_bytes(out)) == 3  # caption 0 (chunks [0, 1] and [2]) finished before the kill
    victim = out / "images" / "00000" / "000.png"
    victim.write_bytes(victim.read_bytes()[:40])  # a file cut short by a kill
    with (out / "manifest.jsonl").open("a", encoding="utf-8") as f:
        f.write('{"caption_id": 2, "image_in')  # a manifest line cut short
    counting = _KilledAfter(pipe, n=-1)
    report = generate(_config(caption_file, out), pipe=counting)
    assert (report.skipped, report.generated) == (2, 7)
    assert _image_bytes(out) == _image_bytes(reference)
    lines = (out / "manifest.jsonl").read_text("utf-8").splitlines()
    assert len(lines) == 9 and all(json.loads(line) for line in lines)
    assert generate(_config(caption_file, out), pipe=counting).generated == 0
    assert counting.calls == 5  # the resume regenerated chunk [0, 1] and 4 chunks; the last rerun none


def test_rerun_with_other_settings_is_refused(pipe, caption_file, tmp_path):
    generate(_config(caption_file, tmp_path, num_captions=1, images_per_caption=1), pipe=pipe)
    with pytest.raises(SynthError, match=r"num_inference_steps: 2 -> 5"):
        generate(_config(caption_file, tmp_path, num_captions=1, num_inference_steps=5), pipe=pipe)


def test_resize_on_storage(pipe, caption_file, tmp_path):
    from PIL import Image

    config = _config(caption_file, tmp_path, num_captions=1, images_per_caption=1, resize_shorter=16)
    generate(config, pipe=pipe)
    with Image.open(tmp_path / "images" / "00000" / "000.png") as img:
        assert img.size == (16, 16)


def test_unknown_pipeline_offline_is_a_clear_error(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SynthError, match=r"'nobody/no-such-pipeline'.*could not be fetched.*save_pretrained"):
        load_pipeline("nobody/no-such-pipeline", "float32", "cpu")
    with pytest.raises(SynthError, match="holds no model_index.json"):
        load_pipeline(str(tmp_path), "float32", "cpu")


def test_bad_inputs_exit_2_with_message(caption_file, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    assert lr0fm_main(["synth", "--captions", str(empty), "--output", str(tmp_path / "o")]) == 2
    assert "holds no caption" in capsys.readouterr().err
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    assert lr0fm_main(["synth", "--captions", str(caption_file), "--output", str(blocker / "out")]) == 2
    assert "is not writable" in capsys.readouterr().err
    assert lr0fm_main(["synth", "--captions", str(caption_file), "--output", "o", "--shard", "2/2"]) == 2
    assert "0 <= i < N" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_output_dir(caption_file, tmp_path):
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        with pytest.raises(SynthError, match="is not writable"):
            generate(_config(caption_file, read_only))
    finally:
        read_only.chmod(0o700)


def test_cli_captions_paper_generates_from_the_authors_captions(pipeline_dir, tmp_path, capsys):
    from lr0fm.synth.captions import paper_captions

    out = tmp_path / "paper"
    argv = ["synth", "--captions", "paper", "--output", str(out), "--pipeline", str(pipeline_dir)]
    argv += ["--images_per_caption", "1", "--num_inference_steps", "2", "--device", "cpu", "--dtype", "float32"]
    argv += ["--call_kwargs", json.dumps(TINY_CALL), "--no_progress", "--shard", "0/2000"]  # 4 of the 7,000
    assert lr0fm_main(argv) == 0
    rows = (out / "captions.tsv").read_text("utf-8").splitlines()[1:]
    assert len(rows) == 7000  # every caption gets its id, whichever shard generates it
    assert [row.split("\t", 2)[2] for row in rows] == [text for _, text in paper_captions()]
    records = read_manifest(out)
    assert len(records) == 4 and all(r["caption"] == paper_captions()[r["caption_id"]][1] for r in records)
