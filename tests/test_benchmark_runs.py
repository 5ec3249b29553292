"""End-to-end runs of ``lr0fm benchmark``: DDP equals one process, resume, bad input, outputs, shipped configs.

Everything is offline: a tiny random open_clip model from a JSON config and generated image folders.
"""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
import yaml
from benchmark_fixtures import make_image_folder, tiny_clip_json
from PIL import Image

from lr0fm.benchmark.cli import build_parser, make_config
from lr0fm.benchmark.outputs import RESULT_COLUMNS, ResultsStore
from lr0fm.catalog import DATASETS
from lr0fm.cli import main as cli_main
from lr0fm.datasets import build_dataset

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
RESOLUTIONS = ["8", "16", "hr"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Tiny model config and two image folders with odd image counts (21 and 9)."""
    base = tmp_path_factory.mktemp("bench_runs")
    return SimpleNamespace(
        base=base,
        model=str(tiny_clip_json(base)),
        a=make_image_folder(base / "a", num_classes=7, per_class=3, seed=0),
        b=make_image_folder(base / "b", num_classes=3, per_class=3, seed=1),
    )


def bench_args(world, datasets, output, *extra) -> list[str]:
    """``lr0fm benchmark`` arguments for the tiny model on CPU without workers."""
    return [
        "benchmark",
        "--model", world.model,
        "--dataset", *[f"folder:{d}" for d in datasets],
        "--resolutions", *RESOLUTIONS,
        "--output", str(output),
        "--accelerator", "cpu",
        "--workers", "0",
        "--batch_size", "4",
        "--seed", "0",
        *extra,
    ]  # fmt: skip


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def cells(rows) -> list[tuple]:
    """The measured values of a results table, sorted, as strings (CSV and JSONL compare alike)."""
    keys = ("model", "dataset", "resolution", "top1", "top5", "num_samples", "num_classes")
    return sorted(tuple(str(r[k]) for k in keys) for r in rows)


@pytest.fixture(scope="module")
def reference(world):
    """One uninterrupted single-process run over both folders."""
    out = world.base / "reference"
    assert cli_main(bench_args(world, [world.a, world.b], out)) == 0
    return out


def subprocess_env() -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


# --- DDP ---------------------------------------------------------------------------------------------------


def test_ddp_two_cpu_processes_equal_one_process(world, reference, tmp_path):
    # Lightning's subprocess launcher re-executes `python -m lr0fm.cli ...` for rank 1 (it keeps the -m form).
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "lr0fm.cli", *bench_args(world, [world.a, world.b], out)]
    cmd += ["--devices", "2", "--strategy", "ddp"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    ddp, single = read_csv(out / "results.csv"), read_csv(reference / "results.csv")
    assert cells(ddp) == cells(single)
    counts = {r["dataset"]: int(r["num_samples"]) for r in ddp}
    assert counts == {f"folder:{world.a}": 21, f"folder:{world.b}": 9}  # no padded duplicates
    # per-sample predictions are gathered from both ranks into the same file a single process writes
    for name in ("folder_" + str(world.a).strip("/").replace("/", "_"),):
        ddp_pred = next((out / "predictions").rglob(f"{name}-*.jsonl")).read_text()
        ref_pred = next((reference / "predictions").rglob(f"{name}-*.jsonl")).read_text()
        assert ddp_pred == ref_pred


# --- resume ------------------------------------------------------------------------------------------------


def test_resume_skips_finished_work_and_repairs_a_torn_line(world, reference, tmp_path, capsys):
    out = tmp_path / "resume"
    assert cli_main(bench_args(world, [world.a], out)) == 0
    # simulate a kill in the middle of writing the last JSON line (the CSV row was already written)
    jsonl = out / "results.jsonl"
    lines = jsonl.read_text().splitlines(keepends=True)
    assert len(lines) == 3
    jsonl.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    capsys.readouterr()

    assert cli_main(bench_args(world, [world.a, world.b], out)) == 0
    log = capsys.readouterr().out
    # dataset a: only the torn cell (hr) is measured again; b is measured in full
    assert f"on folder:{world.a} (21 images): hr:" in log
    assert f"on folder:{world.b} (9 images): 8:" in log

    final = ResultsStore(out).records()
    assert cells(final) == cells(ResultsStore(reference).records())
    # both files hold each cell exactly once and every JSONL line parses (lr0fm metrics reads it)
    assert cells(read_csv(out / "results.csv")) == cells(final)
    assert [json.loads(line) for line in jsonl.read_text().splitlines()] == final

    before = jsonl.read_text()
    assert cli_main(bench_args(world, [world.a, world.b], out)) == 0
    assert "already in" in capsys.readouterr().out
    assert jsonl.read_text() == before


@pytest.mark.slow
def test_resume_after_kill(world, reference, tmp_path):
    """Kill a real run after its first dataset is recorded; the rerun completes it without duplicates."""
    big = make_image_folder(tmp_path / "big", num_classes=3, per_class=100, seed=2)
    out = tmp_path / "killed"
    args = bench_args(world, [world.a, big], out)
    proc = subprocess.Popen(
        [sys.executable, "-m", "lr0fm.cli", *args],
        cwd=tmp_path,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    jsonl = out / "results.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if jsonl.is_file() and len(jsonl.read_text().splitlines()) >= len(RESOLUTIONS):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert {r["dataset"] for r in ResultsStore(out).records()} == {f"folder:{world.a}"}

    assert cli_main(args) == 0
    uninterrupted = tmp_path / "uninterrupted"
    assert cli_main(bench_args(world, [world.a, big], uninterrupted)) == 0
    assert cells(ResultsStore(out).records()) == cells(ResultsStore(uninterrupted).records())
    assert cells(read_csv(out / "results.csv")) == cells(read_csv(uninterrupted / "results.csv"))


# --- bad input ---------------------------------------------------------------------------------------------


def run_error(args, capsys) -> str:
    """Run the CLI, expect exit code 2 and return stderr."""
    capsys.readouterr()
    assert cli_main(args) == 2
    return capsys.readouterr().err


def test_unknown_model_suggests_close_matches(world, tmp_path, capsys):
    args = bench_args(world, [world.a], tmp_path / "out")
    args[args.index(world.model)] = "ViT-B-16:laion2b_s34b_b88kk"
    err = run_error(args, capsys)
    assert "laion2b_s34b_b88kk" in err and "Did you mean 'laion2b_s34b_b88k'" in err
    assert not (tmp_path / "out" / "results.csv").exists()


def test_canonical_dataset_without_root_states_the_layout(world, tmp_path, capsys):
    args = bench_args(world, [], tmp_path / "out")
    args[args.index("--dataset") + 1 : args.index("--dataset") + 1] = ["dtd=" + str(tmp_path / "nowhere")]
    err = run_error(args, capsys)
    assert "nowhere" in err and "<root>/dtd/dtd/images/<texture>/*.jpg" in err

    args = bench_args(world, [], tmp_path / "out")
    args[args.index("--dataset") + 1 : args.index("--dataset") + 1] = ["dtd"]
    err = run_error(args, capsys)
    assert "'dtd'" in err and "layout" in err


@pytest.fixture
def folder_copy(world, tmp_path):
    return Path(shutil.copytree(world.b, tmp_path / "data"))


def test_corrupt_image_stops_naming_the_file_unless_skipped(world, folder_copy, tmp_path, capsys):
    broken = folder_copy / "class_01" / "img_001.jpg"
    broken.write_bytes(b"not a jpeg")
    err = run_error(bench_args(world, [folder_copy], tmp_path / "stop"), capsys)
    assert str(broken) in err

    assert cli_main(bench_args(world, [folder_copy], tmp_path / "skip", "--skip_corrupt")) == 0
    rows = read_csv(tmp_path / "skip" / "results.csv")
    assert [r["resolution"] for r in rows] == RESOLUTIONS
    assert all(r["num_skipped"] == "1" and r["num_samples"] == "8" for r in rows)


def test_corrupt_image_message_with_dataloader_workers(world, folder_copy, tmp_path, capsys):
    broken = folder_copy / "class_01" / "img_001.jpg"
    broken.write_bytes(b"not a jpeg")
    args = bench_args(world, [folder_copy], tmp_path / "stop")
    args[args.index("--workers") + 1] = "1"
    err = run_error(args, capsys)
    assert f"corrupt image file {str(broken)!r}" in err and "Traceback" not in err


def test_empty_class_folder(world, folder_copy, tmp_path, capsys):
    (folder_copy / "class_99").mkdir()
    err = run_error(bench_args(world, [folder_copy], tmp_path / "out"), capsys)
    assert str(folder_copy / "class_99") in err and "holds no images" in err


def test_templates_without_placeholder(world, folder_copy, tmp_path, capsys):
    templates = folder_copy / "zeroshot_classification_templates.txt"
    templates.write_text("a photo of a {c}.\na photo of something.\n")
    err = run_error(bench_args(world, [folder_copy], tmp_path / "out"), capsys)
    assert str(templates) in err and "a photo of something." in err and "{c}" in err


def test_unknown_config_option(world, tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"models": [world.model], "datasets": [f"folder:{world.a}"], "batchsize": 8}))
    err = run_error(["benchmark", "--config", str(config)], capsys)
    assert "unknown option 'batchsize'. Did you mean 'batch_size'" in err and str(config) in err  # the closest first
    err = run_error(bench_args(world, [world.a], tmp_path / "out", "--batchsize", "8"), capsys)
    assert "unrecognized arguments: --batchsize" in err


# --- outputs -----------------------------------------------------------------------------------------------


def test_outputs(world, reference):
    rows = read_csv(reference / "results.csv")
    with (reference / "results.csv").open() as fh:
        assert next(csv.reader(fh)) == RESULT_COLUMNS
    assert len(rows) == 2 * len(RESOLUTIONS)
    assert {(r["dataset"], r["resolution"]) for r in rows} == {
        (f"folder:{d}", r) for d in (world.a, world.b) for r in RESOLUTIONS
    }

    preds_file = next((reference / "predictions").rglob("folder_*_a-*.jsonl"))
    preds = [json.loads(line) for line in preds_file.read_text().splitlines()]
    images = sorted(str(p) for p in Path(world.a).rglob("*.jpg"))
    assert [p["index"] for p in preds] == list(range(21))
    assert [p["id"] for p in preds] == images
    assert [p["label"] for p in preds] == [int(Path(i).parent.name[-2:]) for i in images]
    classnames = build_dataset(f"folder:{world.a}").classnames
    for p in preds:
        assert list(p["top5"]) == RESOLUTIONS
        assert p["label_name"] == classnames[p["label"]]
        for v in p["top5"].values():
            assert len(v["classes"]) == 5 and len(set(v["classes"])) == 5 and all(0 <= c < 7 for c in v["classes"])
            assert v["names"] == [classnames[c] for c in v["classes"]]
            assert v["scores"] == sorted(v["scores"], reverse=True) and all(-1 <= x <= 1 for x in v["scores"])
    # the top-1 column of the table is the accuracy of the first prediction
    for res in RESOLUTIONS:
        acc = sum(p["top5"][res]["classes"][0] == p["label"] for p in preds) / len(preds)
        row = next(r for r in rows if r["dataset"] == f"folder:{world.a}" and r["resolution"] == res)
        assert float(row["top1"]) == pytest.approx(acc)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((reference / "tensorboard").iterdir()))).Reload()
    for r in rows:
        (scalar,) = events.Scalars(f"top1/{r['dataset']}/{r['resolution']}")
        assert scalar.value == pytest.approx(float(r["top1"]))

    assert world.model in (reference / "summary.md").read_text()
    with Image.open(reference / "accuracy_vs_resolution.png") as png:
        assert png.format == "PNG" and png.width > 100


def test_each_protocol_is_its_own_cell_and_rows_record_it(world, reference, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(reference, out)  # the default (paper) run of both folders
    rows = read_csv(out / "results.csv")
    assert {(r["protocol"], r["chain"]) for r in rows} == {("paper", "paper-text")}  # not one of the 66
    assert cli_main(bench_args(world, [world.a, world.b], out)) == 0
    assert "already in" in capsys.readouterr().out  # same protocol: skipped
    assert cli_main(bench_args(world, [world.a], out, "--protocol", "shorter-side")) == 0
    printed = capsys.readouterr().out
    assert "LR protocol 'shorter-side' -> chain 'shorter-side'" in printed
    rows = read_csv(out / "results.csv")
    assert len(rows) == 3 * len(RESOLUTIONS) and {r["protocol"] for r in rows} == {"paper", "shorter-side"}
    assert sorted(p.relative_to(out / "predictions").parts[0] for p in (out / "predictions").rglob("*.jsonl")) == [
        "paper", "paper", "shorter-side"]  # fmt: skip
    with (out / "metrics" / "summary.csv").open() as fh:  # this run's summary ranks this run's protocol only
        assert {r["model"] for r in csv.DictReader(fh)} == {world.model}
    assert cli_main(["metrics", "report", str(out / "results.csv"), "--output", str(tmp_path / "m")]) == 2
    assert "different LR protocols: paper (6 rows), shorter-side (3 rows)" in capsys.readouterr().err
    assert cli_main(bench_args(world, [world.a], out, "--protocol", "squash")) == 2
    assert "unknown LR protocol 'squash'" in capsys.readouterr().err


def test_list_models_and_protocols_show_the_authors_chains(capsys):
    assert cli_main(["benchmark", "--list_models", "OpenCLIP-ViT-B/16"]) == 0
    assert capsys.readouterr().out.strip() == (
        "OpenCLIP-ViT-B/16  ->  ViT-B-16:datacomp_xl_s13b_b90k  [paper protocol: clip-benchmark-openclip]"
    )
    assert cli_main(["benchmark", "--list_models", "ALBEF (4M)"]) == 0
    assert "ALBEF (4M)  ->  albef:ALBEF_4M.pth  [paper protocol: albef]" in capsys.readouterr().out
    assert cli_main(["benchmark", "--list_protocols"]) == 0
    listing = capsys.readouterr().out
    assert "shorter-side" in listing and "source: BLIP/zero_shot_classification.py" in listing


# --- shipped configs ---------------------------------------------------------------------------------------


def load_config(name: str):
    return make_config(build_parser().parse_args(["--config", str(REPO / "configs" / "benchmark" / name)]))


def test_every_command_prints_its_resolved_config(capsys, tmp_path):
    for argv, key in (
        (["benchmark", "--config", "toy"], "models:"),
        (["metrics", "report", "lr0fm66", "--print_config"], "results: lr0fm66"),
        (["metrics", "optimize-weights", "lr0fm66", "--output", "w.yaml", "--print_config"], "trials: 60"),
        (["synth", "--config", "paper_7k", "--output", "o"], "captions: paper"),
        (["toy", "pretrain", "--config", "pretrain"], "max_steps: 900"),
        (["toy", "eval", "--print_config"], "num_per_class: 100"),
        (["export-tokens", "x.ckpt", "--print_config"], "checkpoint: x.ckpt"),
    ):
        capsys.readouterr()
        full = argv if "--print_config" in argv else [*argv, "--print_config"]
        assert cli_main(full) == 0, full
        assert key in capsys.readouterr().out, full
    assert cli_main(["fit", "--config", "toy", "--print_config"]) == 0
    assert "backbone: toyclip" in capsys.readouterr().out


def test_lr0fm66_config_is_the_papers_sweep():
    config, weights = load_config("lr0fm66.yaml")
    table = yaml.safe_load((REPO / "lr0fm" / "resources" / "backbones" / "lr0fm66.yaml").read_text())["backbones"]
    assert config.models == [b["spec"] for b in table if not b.get("needs_adapter")]
    assert len(config.models) == 66
    assert config.datasets == list(DATASETS)
    assert config.resolutions == [16, 32, 64, 128, "hr"] and config.protocol == "paper"
    assert (config.precision, config.batch_size, config.workers) == ("auto", 256, 8)
    assert config.data_root == "/path/to/datasets" and weights is None


def test_toy_config_names_registered_toy_tasks(tmp_path, monkeypatch):
    from lr0fm.toy import datasets as toy

    monkeypatch.chdir(tmp_path)  # the config's WAR weights file is found next to it from any working directory
    config, weights = load_config("toy.yaml")
    assert config.models == ["toyclip"]
    assert config.datasets == ["toy-color", "toy-texture", "toy-size"]
    from lr0fm.metrics import load_weights

    assert set(load_weights(weights)) == set(config.datasets)
    assert all(name in toy.TOY_TASKS for name in config.datasets)
    assert config.resolutions == [8, 16, 32, "hr"]
    assert config.output == "lightning_logs/benchmark/toy"


def test_example_config_runs_ddp_on_two_gpus():
    config, _ = load_config("example.yaml")
    assert len(config.models) == 1 and config.models[0].startswith("ViT-B-16:")
    assert (config.accelerator, config.devices, config.strategy) == ("gpu", 2, "ddp")


def test_classifiers_are_built_inside_validate_on_the_backbones_device(world, tmp_path, monkeypatch):
    """One validate per model; each dataset's classifier is built inside it, where the Trainer placed the model."""
    from lr0fm.benchmark.classifier import ClassifierCache

    events = []
    original_build, original_validate = ClassifierCache.for_dataset, L.Trainer.validate

    def build(self, backbone, dataset, *, device="cpu"):
        events.append(("build", str(device), str(next(backbone.parameters()).device)))
        return original_build(self, backbone, dataset, device=device)

    def validate(self, *args, **kwargs):
        events.append(("validate",))
        return original_validate(self, *args, **kwargs)

    monkeypatch.setattr(ClassifierCache, "for_dataset", build)
    monkeypatch.setattr(L.Trainer, "validate", validate)
    assert cli_main(bench_args(world, [world.a, world.b], tmp_path / "out")) == 0
    assert events[0] == ("validate",) and len(events) == 3  # one validate serves both datasets
    assert all(device == model_device for _, device, model_device in events[1:])


def test_missing_weights_file_fails_before_any_work(tmp_path):
    args = ["--config", str(REPO / "configs/benchmark/toy.yaml"), "--weights", str(tmp_path / "war.yaml")]
    with pytest.raises(FileNotFoundError, match="WAR weights file not found: .*war.yaml"):
        make_config(build_parser().parse_args(args))


def test_command_line_flags_override_the_config():
    args = build_parser().parse_args(
        ["--config", str(REPO / "configs/benchmark/lr0fm66.yaml"), "--data_root", "/data", "--devices", "4"]
    )
    config, _ = make_config(args)
    assert (config.data_root, config.devices) == ("/data", 4)


def test_single_resolution_single_image(world, tmp_path):
    """torchmetrics squeezes one-element results: one resolution and a one-image, one-class set still work."""
    single = make_image_folder(tmp_path / "one", num_classes=1, per_class=1)
    args = bench_args(world, [single], tmp_path / "out")
    args[args.index("--resolutions") + 1 : args.index("--output")] = ["hr"]
    assert cli_main(args) == 0
    (row,) = read_csv(tmp_path / "out" / "results.csv")
    assert (row["resolution"], row["top1"], row["num_samples"]) == ("hr", "1.0", "1")
    (line,) = next((tmp_path / "out" / "predictions").rglob("*.jsonl")).read_text().splitlines()
    assert json.loads(line)["top5"]["hr"]["classes"] == [0]


# --- sweeps: one Trainer, shards, content-keyed resume, metadata, progress ------------------------------------


def test_datasets_of_one_validate_equal_separate_runs(world, reference, tmp_path):
    """The reference measures both folders in one validate; one folder per run gives the same counts."""
    for name, folder in (("a", world.a), ("b", world.b)):
        assert cli_main(bench_args(world, [folder], tmp_path / name)) == 0
    separate = read_csv(tmp_path / "a" / "results.csv") + read_csv(tmp_path / "b" / "results.csv")
    assert cells(separate) == cells(read_csv(reference / "results.csv"))


def test_two_concurrent_shards_into_one_folder_equal_one_run(world, reference, tmp_path):
    """Shard 0/2 (2-process DDP inside) and shard 1/2 run at the same time into one folder."""
    out = tmp_path / "shared"
    base = [sys.executable, "-m", "lr0fm.cli", *bench_args(world, [world.a, world.b], out)]
    jobs = [
        subprocess.Popen([*base, "--shard", "0/2", "--devices", "2", "--strategy", "ddp"], cwd=tmp_path,
                         env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        subprocess.Popen([*base, "--shard", "1/2"], cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True),
    ]  # fmt: skip
    for job in jobs:
        stdout, stderr = job.communicate(timeout=300)
        assert job.returncode == 0, stderr[-3000:]
        assert "shard" in stdout and "1 of 2 cells" in stdout
    assert cells(read_csv(out / "results.csv")) == cells(read_csv(reference / "results.csv"))
    assert cells(ResultsStore(out).records()) == cells(read_csv(out / "results.csv"))


def test_shard_argument_errors_name_the_expected_form(world, tmp_path, capsys):
    assert cli_main(bench_args(world, [world.a], tmp_path / "x", "--shard", "2/2")) == 2
    assert "i/N with 0 <= i < N" in capsys.readouterr().err
    assert cli_main(bench_args(world, [world.a], tmp_path / "x", "--shard", "slurm-array")) == 2
    assert "sbatch --array" in capsys.readouterr().err


def test_token_files_sharing_a_name_are_both_measured(world, tmp_path, capsys):
    from lr0fm.lrtk0 import LRTokens, save_lr_tokens
    from lr0fm.models import load_backbone

    files, sizes = [], set()
    for seed in (1, 2):
        torch.manual_seed(seed)
        backbone = load_backbone(world.model, seed=0)
        tokens = LRTokens(backbone)
        sizes.add(str(sum(p.numel() for p in tokens.parameters())))
        files.append(save_lr_tokens(tmp_path / f"run{seed}" / "lr_tokens.safetensors", tokens, world.model))
    out = tmp_path / "out"
    for path in files:
        assert cli_main(bench_args(world, [world.b], out, "--lr_tokens", str(path))) == 0
    assert "already in" not in capsys.readouterr().out
    rows = read_csv(out / "results.csv")
    labels = {r["model"] for r in rows}
    assert len(labels) == 2 and all("+lrtk0:lr_tokens@" in label for label in labels)
    assert len({r["lr_tokens_sha256"] for r in rows}) == 2 and len(rows) == 2 * len(RESOLUTIONS)
    assert {r["lr_tokens_params"] for r in rows} == sizes  # what the tokens add (the report's sr_tradeoff)
    assert {r["lr_tokens_method"] for r in rows} == {"lr_tokens"}


def test_rerun_without_skip_existing_keeps_one_row_per_cell(world, reference, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    before = read_csv(out / "results.csv")
    assert cli_main(bench_args(world, [world.a, world.b], out, "--no_skip_existing")) == 0
    after = read_csv(out / "results.csv")
    assert cells(after) == cells(before) and len(after) == len(before)
    assert {r["run_id"] for r in after} != {r["run_id"] for r in before}  # measured again, rows replaced
    capsys.readouterr()
    assert cli_main(["metrics", "report", str(out / "results.csv"), "--output", str(tmp_path / "m")]) == 0


def test_a_table_with_duplicate_rows_is_repaired_and_metrics_explain_it(world, reference, tmp_path, capsys):
    out = tmp_path / "old"
    shutil.copytree(reference, out)
    jsonl = out / "results.jsonl"
    lines = jsonl.read_text().splitlines(keepends=True)
    jsonl.write_text("".join(lines + lines[:2]))  # what `--no-skip-existing` of older versions left
    # the CSV written by older versions had the duplicates too: the metrics say what to do
    shutil.copy(jsonl, tmp_path / "dup.jsonl")
    assert cli_main(["metrics", "report", str(tmp_path / "dup.jsonl"), "--output", str(tmp_path / "m")]) == 2
    assert "lr0fm benchmark" in capsys.readouterr().err
    assert cli_main(bench_args(world, [world.a, world.b], out)) == 0
    assert "held duplicate rows" in capsys.readouterr().out
    assert len(jsonl.read_text().splitlines()) == len(lines)
    assert cli_main(["metrics", "report", str(jsonl), "--output", str(tmp_path / "m2")]) == 0


def test_a_changed_seed_is_measured_again_and_replaces_its_rows(world, reference, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    args = bench_args(world, [world.b], out)
    args[args.index("--seed") + 1] = "5"
    assert cli_main(args) == 0
    assert "already in" not in capsys.readouterr().out
    rows = [r for r in read_csv(out / "results.csv") if r["dataset"] == f"folder:{world.b}"]
    assert len(rows) == len(RESOLUTIONS) and {r["seed"] for r in rows} == {"5"}


def test_rows_describe_how_they_were_made(reference):
    import lightning
    import open_clip

    rows = read_csv(reference / "results.csv")
    for row in rows:
        assert (row["precision"], row["device"], row["batch_size"], row["protocol"]) == ("32", "cpu", "4", "paper")
        assert row["torch_version"] == torch.__version__ and row["lightning_version"] == lightning.__version__
        assert row["open_clip_torch_version"] == open_clip.__version__ and row["lr0fm_version"]
        assert len(row["run_id"]) == 12 and row["timestamp"][:2] == "20" and len(row["model_key"]) == 16
        assert row["seed"] == "0" and row["dataset_size"] == row["num_samples"]
        assert 0 <= float(row["mean_per_class_recall"]) <= 1
    assert len({r["run_id"] for r in rows}) == 1
    assert "models:" in (reference / "config.yaml").read_text()


def test_mean_per_class_recall_is_the_mean_of_per_class_accuracies(world, reference):
    preds_file = next((reference / "predictions").rglob("folder_*_a-*.jsonl"))
    preds = [json.loads(line) for line in preds_file.read_text().splitlines()]
    for res in RESOLUTIONS:
        per_class = {}
        for p in preds:
            per_class.setdefault(p["label"], []).append(p["top5"][res]["classes"][0] == p["label"])
        expected = sum(sum(v) / len(v) for v in per_class.values()) / len(per_class)
        rows = read_csv(reference / "results.csv")
        row = next(r for r in rows if r["dataset"] == f"folder:{world.a}" and r["resolution"] == res)
        assert float(row["mean_per_class_recall"]) == pytest.approx(expected)


def test_progress_lines_in_a_log_file(world, tmp_path):
    """With stdout redirected to a file (a SLURM job), each cell is named and progress lines appear."""
    log = tmp_path / "job.log"
    cmd = [sys.executable, "-m", "lr0fm.cli", *bench_args(world, [world.a, world.b], tmp_path / "out")]
    with log.open("w") as fh:
        done = subprocess.run([*cmd, "--log_every", "0"], cwd=tmp_path, env=subprocess_env(), stdout=fh,
                              stderr=subprocess.PIPE, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    text = log.read_text()
    assert f"[1/2] {world.model} · folder:{world.a} · 8/16/hr" in text
    assert f"[2/2] {world.model} · folder:{world.b} · 8/16/hr" in text
    assert re.search(r"folder:\S+: \d+/21 images, [\d.]+ img/s, cell ETA \S+, sweep ETA \S+", text)
    assert "\r" not in text  # no progress bar redraws in a log file


def test_clip_benchmark_export_reads_back_as_clip_benchmark_build_does(world, reference, tmp_path):
    out, export = tmp_path / "out", tmp_path / "cb"
    shutil.copytree(reference, out)
    assert cli_main(bench_args(world, [world.a, world.b], out, "--export_clip_benchmark", str(export))) == 0
    files = sorted((export / "paper").glob("*_en_zeroshot_classification.json"))
    rows = read_csv(out / "results.csv")
    assert len(files) == len(rows)
    built = {}
    for path in files:  # what `clip_benchmark build` does with each file: metrics and keys into one CSV row
        data = json.loads(path.read_text())
        row = {**data["metrics"], **{k: v for k, v in data.items() if k != "metrics"}}
        row["model_fullname"] = row["model"] + " " + row["pretrained"]
        assert row["task"] == "zeroshot_classification" and row["language"] == "en"
        built[(row["dataset"], str(row["resolution"]))] = row
    for r in rows:
        name = r["dataset"] if r["resolution"] == "hr" else f"{r['dataset']}@{r['resolution']}px"
        row = built[(name, r["resolution"])]
        assert row["model_fullname"].replace(" ", ":", 1).rstrip(":") == r["model"]
        assert (row["acc1"], row["acc5"]) == (pytest.approx(float(r["top1"])), pytest.approx(float(r["top5"])))
        assert row["mean_per_class_recall"] == pytest.approx(float(r["mean_per_class_recall"]))


def test_views_on_device_run_is_recorded_and_not_mistaken_for_the_exact_one(world, reference, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    assert cli_main(bench_args(world, [world.a, world.b], out, "--views_on_device")) == 0
    assert "already in" not in capsys.readouterr().out  # the exact rows do not count as done
    rows = read_csv(out / "results.csv")
    assert {r["views"] for r in rows} == {"device"} and len(rows) == len(read_csv(reference / "results.csv"))
    exact = {(r["dataset"], r["resolution"]): float(r["top1"]) for r in read_csv(reference / "results.csv")}
    for r in rows:  # 30 images: a view that flips moves top-1 by a few points at most
        assert abs(float(r["top1"]) - exact[(r["dataset"], r["resolution"])]) <= 0.1
