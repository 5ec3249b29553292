"""Predictions and results of ``lr0fm benchmark`` survive reruns, kills and look-alike names."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from benchmark_fixtures import make_image_folder, tiny_clip_json

from lr0fm.benchmark.outputs import predictions_path, unique_slug
from lr0fm.cli import main as cli_main

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("outputs_faults")
    return SimpleNamespace(
        model=str(tiny_clip_json(base)),
        a=make_image_folder(base / "a b", num_classes=3, per_class=2, seed=0),  # slugs like "a_b"
        b=make_image_folder(base / "a_b", num_classes=3, per_class=2, seed=1),
    )


def run(world, output, datasets, resolutions, *extra) -> int:
    return cli_main([
        "benchmark", "--model", world.model, "--dataset", *[f"folder:{d}" for d in datasets],
        "--resolutions", *resolutions, "--output", str(output), "--accelerator", "cpu", "--workers", "0",
        "--batch_size", "4", "--seed", "0", *extra,
    ])  # fmt: skip


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def rows(output: Path) -> list[dict]:
    with (output / "results.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_names_that_slug_alike_get_their_own_files(world, tmp_path):
    assert run(world, tmp_path, [world.a, world.b], ["8", "hr"]) == 0
    files = sorted((tmp_path / "predictions").rglob("*.jsonl"))
    assert len(files) == 2
    for folder in (world.a, world.b):
        path = predictions_path(tmp_path, "paper", world.model, f"folder:{folder}")
        assert {line["id"] for line in lines(path)} == {str(p) for p in Path(folder).rglob("*.jpg")}
    assert unique_slug("imagenet") == "imagenet" and unique_slug("a b") != unique_slug("a_b")


def test_adding_a_resolution_merges_the_predictions(world, tmp_path):
    out = tmp_path / "out"
    assert run(world, out, [world.a], ["8", "hr"]) == 0
    path = predictions_path(out, "paper", world.model, f"folder:{world.a}")
    before = lines(path)
    assert run(world, out, [world.a], ["8", "16", "hr"]) == 0  # only 16 is measured now
    after = lines(path)
    assert [list(line["top5"]) for line in after] == [["8", "hr", "16"]] * len(before)
    for old, new in zip(before, after):
        assert {r: new["top5"][r] for r in ("8", "hr")} == old["top5"]
    fresh = tmp_path / "fresh"
    assert run(world, fresh, [world.a], ["8", "16", "hr"]) == 0
    reference = lines(predictions_path(fresh, "paper", world.model, f"folder:{world.a}"))
    assert [line["top5"]["16"] for line in after] == [line["top5"]["16"] for line in reference]


def test_rows_without_predictions_are_measured_again(world, tmp_path, capsys):
    """A kill after the row and before the predictions (an older lr0fm wrote rows first) is repaired."""
    out = tmp_path / "out"
    assert run(world, out, [world.a], ["8", "hr"]) == 0
    path = predictions_path(out, "paper", world.model, f"folder:{world.a}")
    kept = path.read_text()
    table = rows(out)
    path.unlink()
    capsys.readouterr()
    assert run(world, out, [world.a], ["8", "hr"]) == 0
    assert "already in" not in capsys.readouterr().out
    assert path.read_text() == kept
    assert [(r["resolution"], r["top1"]) for r in rows(out)] == [(r["resolution"], r["top1"]) for r in table]
    shutil.rmtree(out / "predictions")
    assert run(world, out, [world.a], ["8", "hr"], "--no_predictions") == 0  # not asked for: nothing redone
    assert not (out / "predictions").exists()


def _upsert_many(folder: str, writer: int, cells: int) -> None:
    from lr0fm.benchmark.outputs import ResultsStore

    store = ResultsStore(folder)
    for i in range(cells):
        store.upsert([{"model": f"m{writer}", "dataset": f"d{i}", "resolution": 16, "protocol": "paper", "top1": i}])


def test_concurrent_writers_of_one_results_table_keep_every_row_once(tmp_path):
    """Three processes upserting into one folder at once (the shards of a sweep): no error, no lost or torn row."""
    import multiprocessing

    from lr0fm.benchmark.outputs import ResultsStore

    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_upsert_many, args=(str(tmp_path), w, 40)) for w in range(3)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(120)
    assert [p.exitcode for p in writers] == [0, 0, 0]
    records = ResultsStore(tmp_path).records()
    assert sorted((r["model"], r["dataset"]) for r in records) == sorted(
        (f"m{w}", f"d{i}") for w in range(3) for i in range(40)
    )
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 120
    assert len(rows(tmp_path)) == 120 and not list(tmp_path.glob("*.tmp*"))
