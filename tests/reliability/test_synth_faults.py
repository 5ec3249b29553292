"""``lr0fm synth`` under faults: crafted manifests, bad values, concurrent writers, kill -9 and a full disk.

The tiny offline PixArt-alpha pipeline is built once in this process; "real processes" are forked from it
(``multiprocessing`` fork context), so each costs no import time. Every output is compared with an
uninterrupted run's, file by file.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before diffusers/huggingface_hub are imported

import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import tarfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from lr0fm.cli import main as lr0fm_main  # noqa: E402
from lr0fm.synth import SynthConfig, SynthError, generate  # noqa: E402
from lr0fm.synth.manifest import ManifestWriter, read_manifest  # noqa: E402
from lr0fm.synth.storage import is_valid_image  # noqa: E402
from lr0fm.synth.tiny import build_tiny_pixart, save_tiny_pixart  # noqa: E402
from lr0fm.synth.webdataset import pack_webdataset  # noqa: E402

CAPTIONS = ["a dog on the beach", "a red car in the city", "a photo of a tree", "a small white house"]
TINY_CALL = {"use_resolution_binning": False, "clean_caption": False}
FORK = multiprocessing.get_context("fork")


@pytest.fixture(scope="module")
def pipe():
    """The tiny pipeline, with one torch thread so that every process makes bit-identical images."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield build_tiny_pixart(seed=0)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def caption_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("captions") / "captions.txt"
    path.write_text("\n".join(CAPTIONS) + "\n", "utf-8")
    return path


def config(caption_file, output, **overrides) -> SynthConfig:
    """3 captions x 2 images, one image per pipeline call, packed 2 captions per tar."""
    settings = dict(
        captions=str(caption_file),
        output=str(output),
        num_captions=3,
        seed=5,
        images_per_caption=2,
        pipeline="unused-when-a-pipe-is-passed",
        batch_size=1,
        num_inference_steps=2,
        dtype="float32",
        device="cpu",
        image_format="png",
        webdataset=True,
        captions_per_tar=2,
        call_kwargs=TINY_CALL,
        progress=False,
    )
    return SynthConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def reference(pipe, caption_file, tmp_path_factory):
    """One uninterrupted run."""
    output = tmp_path_factory.mktemp("reference")
    report = generate(config(caption_file, output), pipe=pipe)
    assert report.generated == 6 and len(report.webdataset.written) == 2
    return output


def final_files(output: Path) -> dict[str, bytes]:
    """Every file under its final name (hidden temporary and lock files of killed or concurrent runs left out)."""
    return {
        p.relative_to(output).as_posix(): p.read_bytes()
        for p in sorted(output.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def run_forked(target, *args) -> int:
    """Run ``target(*args)`` in a forked process; return its exit code (-9: killed by SIGKILL)."""
    process = FORK.Process(target=target, args=args)
    process.start()
    process.join(120)
    assert process.exitcode is not None, "forked synth process hung"
    return process.exitcode


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


# -- crafted manifests ----------------------------------------------------------------------------------------


def test_manifest_path_escape_is_refused_naming_the_line(pipe, caption_file, tmp_path, capsys):
    secret = tmp_path / "secret.txt"
    secret.write_text("api-key", "utf-8")
    output = tmp_path / "out"
    cfg = config(caption_file, output, webdataset=False)
    generate(cfg, pipe=pipe)
    manifest = output / "manifest.jsonl"
    lines = manifest.read_text("utf-8").splitlines()
    before = final_files(output)
    for evil in ("../secret.txt", str(secret), "images/00000/../../../secret.txt", "captions.tsv"):
        poisoned = {**json.loads(lines[1]), "path": evil}
        manifest.write_text("\n".join([lines[0], json.dumps(poisoned), *lines[2:]]) + "\n", "utf-8")
        with pytest.raises(SynthError) as error:
            pack_webdataset(output, 3, 2, 2)
        message = str(error.value)
        assert f"{manifest}:2" in message and repr(evil) in message and "delete that line" in message
        assert not (output / "webdataset" / "synth-00000.tar").exists()
        # the command says the same in one line, exit 2, and packs nothing
        argv = ["synth", "--captions", str(caption_file), "--output", str(output), "--num_captions", "3"]
        argv += ["--seed", "5", "--images_per_caption", "2", "--pipeline", "unused-when-a-pipe-is-passed"]
        argv += ["--batch_size", "1"]
        argv += ["--num_inference_steps", "2", "--dtype", "float32", "--device", "cpu", "--image_format", "png"]
        argv += ["--call_kwargs", json.dumps(TINY_CALL), "--no_progress", "--webdataset", "--captions_per_tar", "2"]
        assert lr0fm_main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"{manifest}:2" in err and "refused" in err
        assert not list(output.glob("webdataset/*.tar"))
    manifest.write_text("\n".join(lines) + "\n", "utf-8")
    assert final_files(output) == {**before, "config.yaml": (output / "config.yaml").read_bytes()}
    assert b"api-key" not in b"".join(p.read_bytes() for p in output.rglob("*.tar"))


def test_image_symlinked_outside_the_output_is_not_packed(pipe, caption_file, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not yours")
    output = tmp_path / "out"
    generate(config(caption_file, output, webdataset=False), pipe=pipe)
    victim = output / "images" / "00001" / "000.png"
    victim.unlink()
    victim.symlink_to(secret)
    with pytest.raises(SynthError, match=r"images/00001/000.png.*outside the output folder.*Replace the link"):
        pack_webdataset(output, 3, 2, 2)
    assert not list((output / "webdataset").glob("*.tar"))  # tar 0 (captions 0-1) holds the link: none written


def test_malformed_manifest_records_are_refused_but_cut_lines_dropped(tmp_path):
    manifest = tmp_path / "manifest.jsonl"
    good = {"caption_id": 0, "image_index": 0, "seed": 1, "caption": "x", "path": "images/00000/000.png"}
    manifest.write_text(json.dumps(good) + "\n" + '{"caption_id": 0, "ima', "utf-8")  # a kill's cut line
    assert read_manifest(tmp_path) == [good]
    for bad in ({**good, "caption_id": "0"}, {**good, "path": 7}, {"caption_id": 0}):
        manifest.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n", "utf-8")
        with pytest.raises(SynthError, match=f"{manifest}:2"):
            ManifestWriter(manifest)
        assert manifest.read_text("utf-8").startswith(json.dumps(good))  # the refused file is left as it was


# -- bad values -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "value", "accepted"),
    [
        ("--height", "7", "multiple of 8 from 8 to 8192"),
        ("--width", "100000", "multiple of 8 from 8 to 8192"),
        ("--height", "0", "positive integer"),
        ("--quality", "0", "integer from 1 to 100"),
        ("--guidance_scale", "1e999", "finite number"),  # nan and inf: the parser refuses them itself
        ("--images_per_caption", "-1", "positive integer"),
        ("--dtype", "float8", "float16, bfloat16, float32"),
        ("--image_format", "gif", "jpg, png, webp"),
    ],
)
def test_invalid_values_are_one_line_with_the_accepted_values(caption_file, tmp_path, capsys, flag, value, accepted):
    output = tmp_path / "out"
    assert lr0fm_main(["synth", "--captions", str(caption_file), "--output", str(output), flag, value]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lr0fm synth: error: ") and len(err.splitlines()) == 1
    assert f"{flag} {'inf' if value == '1e999' else value}" in err.replace("'", "") and accepted in err
    assert not output.exists()  # refused before any output is made


def test_a_call_the_pipeline_refuses_is_one_line_naming_the_settings(pipe, caption_file, tmp_path):
    with pytest.raises(SynthError, match=r"refused the call settings .*'height': 12.*divisible by 8.*--call_kwargs"):
        generate(config(caption_file, tmp_path, call_kwargs={**TINY_CALL, "height": 12}), pipe=pipe)
    assert not list((tmp_path / "images").rglob("*.png"))


# -- concurrent writers ---------------------------------------------------------------------------------------


class _Gate:
    """Pipeline wrapper that makes two processes overlap: A waits for B's first call; B is slow once."""

    def __init__(self, pipe, marker: Path, role: str) -> None:
        self.pipe, self.marker, self.role, self.calls = pipe, marker, role, 0

    def __call__(self, **kwargs):
        self.calls += 1
        if self.role == "A" and self.calls == 2:  # B has opened (and, before the fix, compacted) the manifest
            deadline = time.monotonic() + 60
            while not self.marker.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        if self.role == "B" and self.calls == 1:
            self.marker.touch()
            time.sleep(1.0)  # A writes the rest meanwhile
        return self.pipe(**kwargs)


def test_two_unsharded_processes_into_one_folder_keep_every_manifest_line(pipe, caption_file, reference, tmp_path):
    output, marker = tmp_path / "out", tmp_path / "b-started"
    cfg = config(caption_file, output, webdataset=False)

    def worker(role):
        generate(cfg, pipe=_Gate(pipe, marker, role))

    first = FORK.Process(target=worker, args=("A",))
    first.start()
    deadline = time.monotonic() + 60
    while not ((output / "manifest.jsonl").is_file() and (output / "manifest.jsonl").read_text().strip()):
        assert time.monotonic() < deadline and first.exitcode is None, "process A wrote no manifest line"
        time.sleep(0.01)
    second = FORK.Process(target=worker, args=("B",))
    second.start()
    first.join(120), second.join(120)
    assert (first.exitcode, second.exitcode) == (0, 0)
    records = read_manifest(output)
    assert [(r["caption_id"], r["image_index"]) for r in records] == [(c, i) for c in range(3) for i in range(2)]
    assert records == read_manifest(reference)
    images = {k: v for k, v in final_files(output).items() if k.startswith("images/")}
    assert images == {k: v for k, v in final_files(reference).items() if k.startswith("images/")}


# -- kill -9 at every write boundary, then rerun ---------------------------------------------------------------


def _kill_at_replace(pattern: str, nth: int, after: bool) -> None:
    """SIGKILL at the ``nth`` rename onto a final name ending in ``pattern`` (before or after it happens)."""
    real, count = os.replace, [0]

    def replace(src, dst):
        if str(dst).endswith(pattern):
            count[0] += 1
            if count[0] == nth and not after:
                kill_self()
            real(src, dst)
            if count[0] == nth and after:
                kill_self()
        else:
            real(src, dst)

    os.replace = replace


def _kill_mid_manifest_line(nth: int) -> None:
    """SIGKILL after writing half of the ``nth`` manifest line (a torn write)."""
    count = [0]

    def append(self, record):
        count[0] += 1
        if count[0] == nth:
            line = json.dumps(record).encode()
            with self.path.open("ab") as handle:
                handle.write(line[: len(line) // 2])
            kill_self()
        return real_append(self, record)

    real_append = ManifestWriter.append
    ManifestWriter.append = append


def _kill_mid_tar(nth: int) -> None:
    real, count = tarfile.TarFile.addfile, [0]

    def addfile(self, *args, **kwargs):
        count[0] += 1
        if count[0] == nth:
            kill_self()
        return real(self, *args, **kwargs)

    tarfile.TarFile.addfile = addfile


KILLS = {
    "captions.tsv written, not renamed": (_kill_at_replace, ("captions.tsv", 1, False)),
    "settings renamed": (_kill_at_replace, ("synth.json", 1, True)),
    "image written, not renamed": (_kill_at_replace, ("001.png", 2, False)),
    "image renamed, no manifest line": (_kill_at_replace, ("000.png", 2, True)),
    "manifest line torn": (_kill_mid_manifest_line, (4,)),
    "tar half written": (_kill_mid_tar, (7,)),
    "tar written, not renamed": (_kill_at_replace, ("synth-00000.tar", 1, False)),
    "first tar renamed": (_kill_at_replace, ("synth-00000.tar", 1, True)),
}


@pytest.mark.parametrize("boundary", list(KILLS))
def test_kill_9_then_rerun_equals_an_uninterrupted_run(pipe, caption_file, reference, tmp_path, boundary):
    output = tmp_path / "out"
    cfg = config(caption_file, output)
    install, args = KILLS[boundary]

    def killed():
        install(*args)
        generate(cfg, pipe=pipe)

    assert run_forked(killed) == -signal.SIGKILL
    assert all(is_valid_image(p) for p in output.rglob("*.png")), "a partial image under its final name"
    for tar in output.rglob("*.tar"):  # a tar under its final name is complete
        assert tar.read_bytes() == (reference / tar.relative_to(output)).read_bytes()
    assert run_forked(generate, cfg, pipe) == 0  # rerun the same command
    assert final_files(output) == final_files(reference)
    lines = (output / "manifest.jsonl").read_text("utf-8").splitlines()
    assert len(lines) == 6 and all(json.loads(line) for line in lines)


# -- a full disk ----------------------------------------------------------------------------------------------


def _synth_cli(argv: list[str], result: Path, file_size_limit: int | None) -> None:
    """``lr0fm synth ARGV`` with stderr and the exit status written to ``result``; optionally ``ulimit -f``."""
    if file_size_limit is not None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = lr0fm_main(argv)
    result.write_text(json.dumps({"status": status, "err": err.getvalue()}))


@pytest.fixture(scope="module")
def pipeline_dir(pipe, tmp_path_factory):
    return save_tiny_pixart(tmp_path_factory.mktemp("tiny_pixart"), seed=0)


def test_full_disk_names_the_file_and_keeps_finished_work(pipeline_dir, caption_file, tmp_path):
    def argv(output, captions):
        args = ["synth", "--captions", str(caption_file), "--output", str(output), "--pipeline", str(pipeline_dir)]
        args += ["--num_captions", str(captions), "--seed", "5", "--images_per_caption", "2", "--batch_size", "1"]
        args += ["--num_inference_steps", "2", "--dtype", "float32", "--device", "cpu", "--image_format", "png"]
        return args + ["--call_kwargs", json.dumps(TINY_CALL), "--no_progress"]

    result = tmp_path / "result.json"
    reference, output = tmp_path / "reference", tmp_path / "out"
    assert run_forked(_synth_cli, argv(reference, 3), result, None) == 0
    assert run_forked(_synth_cli, argv(output, 1), result, None) == 0  # earlier work: caption 0
    earlier = final_files(output)
    assert run_forked(_synth_cli, argv(output, 3), result, 2048) == 0  # PNGs are ~3 KB: the first new one fails
    done = json.loads(result.read_text())
    line = done["err"].strip()
    assert done["status"] == 2 and len(line.splitlines()) == 1
    assert "could not write" in line and "/images/00001/000.png" in line and "free space" in line
    assert all(final_files(output)[name] == data for name, data in earlier.items() if name.startswith("images/"))
    assert read_manifest(output)[:2] == read_manifest(reference)[:2]
    assert not list(output.rglob("*.tmp")) and all(is_valid_image(p) for p in output.rglob("*.png"))
    assert run_forked(_synth_cli, argv(output, 3), result, None) == 0  # rerun once there is space
    assert final_files(output) == {**final_files(reference), "config.yaml": final_files(output)["config.yaml"]}
