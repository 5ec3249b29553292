"""``lr0fm fit | validate | test | export-tokens`` under faults, with the shipped toy config at tiny sizes.

Run folders own their files (checkpoints under ``version_N/checkpoints``, ``last.ckpt`` every epoch,
``--ckpt_path last`` resuming the same config's run), bad checkpoints and bad training data are one line naming
the file, and a kill or a full disk during a checkpoint write never leaves a partial checkpoint.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before open_clip/huggingface_hub are imported

import json  # noqa: E402
import multiprocessing  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from lr0fm import cli  # noqa: E402
from lr0fm.benchmark.callback import robustness_metrics  # noqa: E402
from lr0fm.lrtk0 import load_lr_tokens  # noqa: E402
from lr0fm.lrtk0.checkpoints import read_checkpoint  # noqa: E402
from lr0fm.models import load_backbone  # noqa: E402

FORK = multiprocessing.get_context("fork")
SHIPPED = Path(__file__).resolve().parents[2] / "lr0fm" / "configs" / "lrtk0" / "toy.yaml"
#: a tiny open_clip CLIP: 32 px, patch 8 (16 spatial tokens), width 32, 2 vision blocks
TINY_ARCH = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
TOKENS = {"logit_scale", "tokens.block_tokens", "tokens.embed_token"}


@pytest.fixture(autouse=True)
def quiet_and_single_threaded(monkeypatch):
    """One torch thread (bit-identical reruns, no oversubscription) and one-line errors (no --debug)."""
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def arch(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("arch") / "tiny-lrtk0-vit.json"
    path.write_text(json.dumps(TINY_ARCH))
    return str(path)


def toy_config(folder: Path, arch: str, **trainer) -> Path:
    """The shipped toy config with its checkpoint callback as shipped, at tiny sizes (2 steps per epoch)."""
    config = yaml.safe_load(SHIPPED.read_text())
    shipped_checkpoint = [c for c in config["trainer"]["callbacks"] if c["class_path"].endswith("ModelCheckpoint")]
    config["trainer"].update(
        {"max_epochs": 2, "log_every_n_steps": 1, "enable_model_summary": False, "callbacks": shipped_checkpoint}
    )
    config["trainer"].update(trainer)
    config["model"].update({"backbone": arch, "lr": 0.01, "warmup_steps": 1})
    config["data"].update({"source": "toy:24", "buckets": [[8, 12], [12, 20]], "batch_size": 8, "val_images": 8})
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def lr0fm(*argv: str) -> int:
    return cli.main([str(a) for a in argv])


def one_error_line(err: str, command: str) -> str:
    """The error line of ``err``: the last line, starting with ``lr0fm CMD: error:``, and no traceback."""
    assert "Traceback" not in err, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith(f"lr0fm {command}: error: ")]
    assert len(errors) == 1, err[-3000:]
    return errors[0]


def run_forked(target, *args) -> int:
    process = FORK.Process(target=target, args=args)
    process.start()
    process.join(300)
    assert process.exitcode is not None, "forked fit hung"
    return process.exitcode


def trained(path: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in read_checkpoint(path)["state_dict"].items() if k in TOKENS}


@pytest.fixture(scope="module")
def run_a(arch, tmp_path_factory) -> Path:
    """One finished 2-epoch toy run (``version_0``); its files are copied, never changed, by the tests."""
    root = tmp_path_factory.mktemp("run_a")
    config = toy_config(root, arch, default_root_dir=str(root))
    assert lr0fm("fit", "--config", config) == 0
    return root / "lightning_logs" / "version_0"


# -- run folders ----------------------------------------------------------------------------------------------


def test_each_run_owns_its_checkpoints_and_last_resumes_the_same_run(arch, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the shipped config's paths are relative to the working directory
    config = toy_config(tmp_path, arch)
    assert lr0fm("fit", "--config", config) == 0  # run A
    # run B: another config (4 steps per epoch), same folder
    assert lr0fm("fit", "--config", config, "--model.lr", "0.02", "--data.source", "toy:40") == 0
    logs = tmp_path / "lightning_logs"
    for version in (0, 1):
        names = sorted(p.name for p in (logs / f"version_{version}" / "checkpoints").iterdir())
        assert "last.ckpt" in names and any(n.startswith("epoch") for n in names), names
    assert not list(logs.rglob("last-v*.ckpt")) and not (logs / "checkpoints").exists()
    b_last = (logs / "version_1" / "checkpoints" / "last.ckpt").read_bytes()
    capsys.readouterr()

    # resuming A after B ran: A's state, continued in A's own folder
    assert lr0fm("fit", "--config", config, "--trainer.max_epochs", "3", "--ckpt_path", "last") == 0
    assert sorted(p.name for p in logs.iterdir()) == ["version_0", "version_1"]
    state = read_checkpoint(logs / "version_0" / "checkpoints" / "last.ckpt")
    assert (state["epoch"], state["global_step"]) == (2, 2 * 2 + 2)  # A's 4 steps, then one epoch (B's: 8 + 2)
    assert (logs / "version_1" / "checkpoints" / "last.ckpt").read_bytes() == b_last

    # a config with no run of its own starts a new folder, saying why
    assert lr0fm("fit", "--config", config, "--model.lr", "0.03", "--ckpt_path", "last") == 0
    err = capsys.readouterr().err
    assert "no run of this config" in err and "version_1, version_0" in err and "from scratch" in err
    assert not list(logs.rglob("last-v*.ckpt"))
    assert (logs / "version_2" / "checkpoints" / "last.ckpt").is_file()


def test_last_ckpt_is_written_every_epoch_whatever_the_monitored_metric(arch, tmp_path):
    # val/loss (the monitored metric) exists only at validation epochs: here epoch 1 of 0, 1, 2
    config = toy_config(tmp_path, arch, default_root_dir=str(tmp_path), max_epochs=3, check_val_every_n_epoch=2)
    assert lr0fm("fit", "--config", config) == 0
    state = read_checkpoint(tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt")
    assert (state["epoch"], state["global_step"]) == (2, 6)  # the last epoch (index 2), not the last validated one


def _fit_killed_mid_checkpoint(config: Path, nth: int) -> None:
    """``lr0fm fit`` that is SIGKILLed after writing half of its ``nth`` checkpoint file."""
    import lightning.fabric.plugins.io.torch_io as torch_io

    count = [0]

    def half_then_kill(checkpoint, path):
        count[0] += 1
        data = __import__("io").BytesIO()
        torch.save(checkpoint, data)
        with open(path, "wb") as handle:
            handle.write(data.getvalue()[: len(data.getvalue()) // 2])
        if count[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
        with open(path, "wb") as handle:
            handle.write(data.getvalue())

    torch_io._atomic_save = half_then_kill
    lr0fm("fit", "--config", config)


def test_kill_9_during_a_checkpoint_write_then_resume_equals_an_uninterrupted_run(arch, tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    for root in (reference, killed):
        root.mkdir()
    assert lr0fm("fit", "--config", toy_config(reference, arch, default_root_dir=str(reference), max_epochs=3)) == 0
    config = toy_config(killed, arch, default_root_dir=str(killed), max_epochs=3)
    # checkpoint writes per epoch: epochNNN.ckpt (a better val/loss), then last.ckpt; kill in epoch 1's
    assert run_forked(_fit_killed_mid_checkpoint, config, 3) == -signal.SIGKILL
    folder = killed / "lightning_logs" / "version_0" / "checkpoints"
    for path in folder.glob("*.ckpt"):  # every file under a checkpoint name is whole
        read_checkpoint(path)
    assert lr0fm("fit", "--config", config, "--ckpt_path", "last") == 0
    ours, theirs = trained(folder / "last.ckpt"), trained(reference / "lightning_logs/version_0/checkpoints/last.ckpt")
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


@pytest.mark.slow
def test_kill_9_at_every_checkpoint_write_then_resume_equals_an_uninterrupted_run(arch, tmp_path):
    """Walk every checkpoint write of a 3-epoch run (epochNNN.ckpt and last.ckpt of each epoch)."""
    reference = tmp_path / "reference"
    reference.mkdir()
    assert lr0fm("fit", "--config", toy_config(reference, arch, default_root_dir=str(reference), max_epochs=3)) == 0
    expected = trained(reference / "lightning_logs/version_0/checkpoints/last.ckpt")
    nth, killed_runs = 1, 0
    while True:
        killed = tmp_path / f"killed{nth}"
        killed.mkdir()
        config = toy_config(killed, arch, default_root_dir=str(killed), max_epochs=3)
        status = run_forked(_fit_killed_mid_checkpoint, config, nth)
        if status == 0:  # fewer than nth checkpoint writes: every one was walked
            break
        assert status == -signal.SIGKILL
        killed_runs += 1
        for path in killed.glob("lightning_logs/version_*/checkpoints/*.ckpt"):  # whole files only
            read_checkpoint(path)
        assert lr0fm("fit", "--config", config, "--ckpt_path", "last") == 0
        # killed before any last.ckpt existed, the rerun starts a new run (version_1); else it resumes version_0
        (last,) = sorted(killed.glob("lightning_logs/version_*/checkpoints/last.ckpt"))[-1:]
        torch.testing.assert_close(trained(last), expected, rtol=0, atol=0)
        nth += 1
    assert killed_runs >= 4


def _fit_with_file_size_limit(config: Path, limit: int, result: Path) -> None:
    import contextlib
    import io

    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = lr0fm("fit", "--config", config, "--trainer.max_epochs", "3", "--ckpt_path", "last")
    result.write_text(json.dumps({"status": status, "err": err.getvalue()[-4000:]}))


def test_full_disk_names_the_checkpoint_and_keeps_the_previous_one(arch, run_a, tmp_path):
    import shutil

    shutil.copytree(run_a.parents[1], tmp_path / "root")
    root = tmp_path / "root"
    config = toy_config(tmp_path, arch, default_root_dir=str(root))
    folder = root / "lightning_logs" / "version_0" / "checkpoints"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    limit = min(len(data) for data in before.values()) // 2  # no checkpoint fits; logs and configs do
    result = tmp_path / "result.json"
    assert run_forked(_fit_with_file_size_limit, config, limit, result) == 0
    done = json.loads(result.read_text())
    line = one_error_line(done["err"], "fit")
    assert done["status"] == 1 and "could not write checkpoint" in line and str(folder) in line
    assert "free disk space" in line and "--ckpt_path last" in line
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # no partial file, nothing replaced


# -- bad checkpoints ------------------------------------------------------------------------------------------


class _Payload:
    """Unpickling this runs ``Path.touch`` on a marker file: what a crafted checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def bad_checkpoints(folder: Path, good: Path) -> dict[str, tuple[Path, str]]:
    """Name -> (file, words its error must hold)."""
    data = good.read_bytes()
    (folder / "random.ckpt").write_bytes(os.urandom(2048))
    (folder / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    torch.save({"weights": torch.zeros(3)}, folder / "plain.ckpt")
    torch.save({"state_dict": {}, "hyper_parameters": {"backbone": _Payload(folder / "pwned")}}, folder / "evil.ckpt")
    state = torch.load(good, weights_only=True)
    state["state_dict"]["tokens.block_tokens"][0, 0, 0] = float("nan")
    torch.save(state, folder / "nan.ckpt")
    (folder / "a-folder.ckpt").mkdir()
    return {
        "missing": (folder / "missing.ckpt", "does not exist"),
        "folder": (folder / "a-folder.ckpt", "is a folder"),
        "random": (folder / "random.ckpt", "cannot be read"),
        "truncated": (folder / "truncated.ckpt", "truncated or damaged"),
        "not lightning": (folder / "plain.ckpt", "not a Lightning checkpoint"),
        "crafted pickle": (folder / "evil.ckpt", "refuses to unpickle"),
        "nan": (folder / "nan.ckpt", "NaN/inf values"),
    }


@pytest.mark.parametrize("subcommand", ["validate", "test"])
def test_validate_and_test_refuse_a_bad_checkpoint_in_one_line(arch, run_a, tmp_path, capsys, subcommand):
    config = toy_config(tmp_path, arch, default_root_dir=str(tmp_path))
    for name, (path, words) in bad_checkpoints(tmp_path, run_a / "checkpoints" / "last.ckpt").items():
        assert lr0fm(subcommand, "--config", config, "--ckpt_path", path) == 2, name
        line = one_error_line(capsys.readouterr().err, subcommand)
        assert repr(str(path)) in line and words in line, (name, line)
    assert not (tmp_path / "pwned").exists()
    assert lr0fm(subcommand, "--config", config, "--ckpt_path", "last") == 2
    assert "no run of this config" in one_error_line(capsys.readouterr().err, subcommand)


def test_fit_refuses_to_resume_from_a_weights_only_checkpoint(arch, run_a, tmp_path, capsys):
    state = torch.load(run_a / "checkpoints" / "last.ckpt", weights_only=True)
    weights = {key: state[key] for key in ("state_dict", "hyper_parameters", "epoch", "global_step")}
    torch.save(weights, tmp_path / "weights.ckpt")
    config = toy_config(tmp_path, arch, default_root_dir=str(tmp_path))
    assert lr0fm("fit", "--config", config, "--ckpt_path", tmp_path / "weights.ckpt") == 2
    line = one_error_line(capsys.readouterr().err, "fit")
    assert "weights only" in line and "weights.ckpt" in line


# -- export-tokens --------------------------------------------------------------------------------------------


def test_export_tokens_never_overwrites_its_checkpoint(run_a, tmp_path, capsys):
    import shutil

    checkpoint = tmp_path / "last.ckpt"
    shutil.copy(run_a / "checkpoints" / "last.ckpt", checkpoint)
    data = checkpoint.read_bytes()
    renamed = tmp_path / "tokens.safetensors"  # a checkpoint whose default output is itself
    shutil.copy(checkpoint, renamed)
    for argv in ([checkpoint, "-o", checkpoint], [checkpoint, "--output", tmp_path / "." / "last.ckpt"], [renamed]):
        assert lr0fm("export-tokens", *argv) == 2
        line = one_error_line(capsys.readouterr().err, "export-tokens")
        assert "is the checkpoint itself; refusing to overwrite it" in line and "-o " in line
    assert checkpoint.read_bytes() == data and renamed.read_bytes() == data
    assert lr0fm("export-tokens", checkpoint, "-o", tmp_path) == 2
    assert "is a folder" in one_error_line(capsys.readouterr().err, "export-tokens")


def test_export_tokens_on_a_bad_file_is_one_line_naming_it(run_a, tmp_path, capsys):
    cases = bad_checkpoints(tmp_path, run_a / "checkpoints" / "last.ckpt")
    state = torch.load(run_a / "checkpoints" / "last.ckpt", weights_only=True)
    state["hyper_parameters"]["backbone"] = "toyclip"  # tokens of the tiny ViT, named for another backbone
    torch.save(state, tmp_path / "other-backbone.ckpt")
    cases["other backbone"] = (tmp_path / "other-backbone.ckpt", "has shape [2, 16, 32] but backbone 'toyclip' needs")
    for name, (path, words) in cases.items():
        assert lr0fm("export-tokens", path, "-o", tmp_path / "out.safetensors") == 2, name
        line = one_error_line(capsys.readouterr().err, "export-tokens")
        assert repr(str(path)) in line and words in line, (name, line)
    assert not (tmp_path / "out.safetensors").exists() and not (tmp_path / "pwned").exists()


def test_export_tokens_is_quiet(run_a, tmp_path, capfd):
    assert lr0fm("export-tokens", run_a / "checkpoints" / "last.ckpt", "-o", tmp_path / "t.safetensors") == 0
    out, err = capfd.readouterr()
    assert out.strip() == f"LR tokens exported to {tmp_path / 't.safetensors'}"
    assert "missing" not in err.lower() and "Found keys" not in err and len(err.splitlines()) <= 1, err


# -- LR tokens with NaN/inf -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_tokens_with_nan_or_inf_are_refused_on_load(run_a, arch, tmp_path, capsys, bad):
    from safetensors import safe_open

    good = run_a / "lr_tokens.safetensors"
    with safe_open(str(good), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - safe_open has no iter
    tensors["block_tokens"][1, 2, 3] = bad
    poisoned = tmp_path / "poisoned.safetensors"
    save_file(tensors, str(poisoned), metadata=metadata)
    with pytest.raises(ValueError, match=rf"{poisoned}: block_tokens holds 1 NaN/inf values.*earlier checkpoint"):
        load_lr_tokens(poisoned, load_backbone(arch))
    load_lr_tokens(good, load_backbone(arch))  # the untouched export loads
    # the benchmark refuses it before scoring anything
    out = tmp_path / "bench"
    status = lr0fm("benchmark", "--model", arch, "--dataset", "toy-color", "--lr_tokens", poisoned, "--output", out)
    assert status != 0
    line = one_error_line(capsys.readouterr().err, "benchmark")
    assert str(poisoned) in line and "NaN/inf" in line
    assert not list(out.rglob("results.csv"))


# -- bad training input ---------------------------------------------------------------------------------------


def image_folder(root: Path, count: int = 24) -> Path:
    for i in range(count):
        folder = root / "images" / f"{i // 4:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 40), (i * 10, 100, 200 - i * 5)).save(folder / f"{i % 4:03d}.png")
    return root


@pytest.mark.parametrize("workers", [0, 1])
def test_a_truncated_training_image_is_named(arch, tmp_path, capsys, workers):
    source = image_folder(tmp_path / "synth")
    victim = source / "images" / "00002" / "001.png"
    victim.write_bytes(victim.read_bytes()[:60])
    config = toy_config(tmp_path, arch, default_root_dir=str(tmp_path))
    status = lr0fm("fit", "--config", config, "--data.source", f"folder:{source}", "--data.num_workers", workers)
    line = one_error_line(capsys.readouterr().err, "fit")
    assert status == 2 and repr(str(victim)) in line and "cannot be decoded" in line and "rerun" in line


def test_a_16_bit_training_image_keeps_its_grey_levels(tmp_path):
    import numpy as np

    from lr0fm.lrtk0.sources import build_hr_images

    folder = tmp_path / "s16" / "images" / "00000"
    folder.mkdir(parents=True)
    Image.fromarray(np.full((40, 40), 32768, np.uint16)).save(folder / "000.png")  # mid-grey, 16 bits
    pixel = np.asarray(build_hr_images(f"folder:{tmp_path / 's16'}").image(0))[0, 0]
    assert pixel.tolist() == [128, 128, 128]  # 32768 / 257, as the benchmark decodes it (not saturated to 255)


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--data.source", "/no/such/folder", "training folder '/no/such/folder' (data.source) does not exist"),
        ("--data.source", "folder:/no/such/folder", "training folder '/no/such/folder' (data.source) does not exist"),
        ("--data.source", "wds:/no/such/shards", "no webdataset shard (*.tar) at '/no/such/shards'"),
        ("--model.backbone", "{arch}:/no/such/weights.safetensors", "'/no/such/weights.safetensors'"),
        ("--data.batch_size", "0", "data.batch_size=0 is not valid: expected an integer >= 1"),
        ("--data.val_images", "-1", "data.val_images=-1 is not valid"),
        ("--model.lr", "-1", "model.lr=-1.0 is not valid: expected a number > 0"),
        ("--model.init_temperature", "0", "model.init_temperature=0.0 is not valid"),
    ],
)
def test_fit_input_errors_are_one_line_naming_the_thing(arch, tmp_path, capsys, option, value, words):
    config = toy_config(tmp_path, arch, default_root_dir=str(tmp_path))
    assert lr0fm("fit", "--config", config, option, value.format(arch=arch)) != 0
    line = one_error_line(capsys.readouterr().err, "fit")
    assert words in line, line
    assert not list(tmp_path.rglob("*.ckpt"))


# -- units ----------------------------------------------------------------------------------------------------


def test_benchmark_scalars_during_training_are_fractions_and_sar_may_exceed_one():
    def records(top1: dict[str, float]) -> list[dict]:
        return [{"dataset": "toy-color", "resolution": r, "top1": v, "num_classes": 10} for r, v in top1.items()]

    student = records({"16": 0.45, "hr": 0.9})
    teacher = records({"16": 0.30, "hr": 0.6})
    metrics = robustness_metrics(student, teacher)
    assert metrics["acc_16"] == pytest.approx(0.45) and metrics["acc_hr"] == pytest.approx(0.9)
    assert metrics["sar_16"] == pytest.approx(0.75)  # 0.45 / 0.6
    assert metrics["sar_hr"] == pytest.approx(1.5)  # the student at HR beats the teacher at HR: above 1
