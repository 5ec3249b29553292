"""`lr0fm metrics` and `lr0fm metrics optimize-weights` end to end, and the optimiser's guarantees."""

import csv
import subprocess
import sys
import time

import numpy as np
import pytest
from test_metrics import HAND, write_csv

from lr0fm.catalog import DATASETS
from lr0fm.cli import main as lr0fm_main
from lr0fm.metrics import load_weights
from lr0fm.metrics.optimize import PAPER_OBJECTIVE, WeightScorer, optimize_weights, parse_objective


def test_metrics_cli_writes_the_three_tables(tmp_path, capsys):
    results = write_csv(tmp_path / "r.csv", HAND)
    out = tmp_path / "out"
    assert lr0fm_main(["metrics", "report", str(results), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| model | ACC-HR (%) | ACC-16 (%) | SAR-16 (%) | WAR-16 (%) |" in printed
    with open(out / "summary.csv") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["model", "resolution", "acc", "sar", "war", "rank_war"]
    assert [r[0] for r in rows[1:]] == ["m1", "m2"]
    assert float(rows[1][3]) == pytest.approx((0.5 + 0.75) / 2)  # files hold fractions
    with open(out / "per_dataset.csv") as fh:
        assert next(csv.reader(fh)) == ["model", "dataset", "resolution", "top1", "gamma", "Gamma"]
    with open(out / "correlations.csv") as fh:
        assert next(csv.reader(fh)) == ["resolution", "dataset", "spearman_sar", "spearman_war"]
    assert (out / "summary.md").read_text().startswith("## LR0.FM robustness")


def test_metrics_cli_bad_input_exits_2_with_message(tmp_path, capsys):
    results = write_csv(tmp_path / "r.csv", [dict(r, top1=r["top1"] * 100) for r in HAND])
    assert lr0fm_main(["metrics", "report", str(results), "--output", str(tmp_path / "o")]) == 2
    assert "looks like percentages" in capsys.readouterr().err
    assert lr0fm_main(["metrics", "report", str(results), "--num_classes", "dtd"]) == 2
    assert "--num_classes 'dtd': expected DATASET=N or paper" in capsys.readouterr().err
    assert lr0fm_main(["metrics", str(results)]) == 2  # the subcommand is required
    assert "choose from 'report', 'optimize-weights'" in capsys.readouterr().err


def test_metrics_refuses_mixed_protocols_unless_told(tmp_path, capsys):
    columns = ("model", "dataset", "resolution", "protocol", "top1", "num_classes")
    paper = [dict(r, protocol="paper") for r in HAND]
    mixed = paper + [dict(r, protocol="shorter-side") for r in HAND if r["model"] == "m1"]
    results = write_csv(tmp_path / "r.csv", mixed, columns)
    out = tmp_path / "out"
    assert lr0fm_main(["metrics", "report", str(results), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "different LR protocols: paper (8 rows), shorter-side (4 rows)" in err
    assert "--protocol NAME" in err and "--allow_mixed_protocols" in err
    assert lr0fm_main(["metrics", "report", str(results), "--output", str(out), "--protocol", "paper", "--quiet"]) == 0
    with open(out / "summary.csv") as fh:
        assert [r["model"] for r in csv.DictReader(fh)] == ["m1", "m2"]
    assert lr0fm_main(["metrics", "report", str(results), "--output", str(out), "--protocol", "square"]) == 2
    assert "no row was measured with LR protocol 'square'" in capsys.readouterr().err
    assert (
        lr0fm_main(["metrics", "report", str(results), "--output", str(out), "--allow_mixed_protocols", "--quiet"]) == 0
    )
    with open(out / "summary.csv") as fh:
        assert [r["model"] for r in csv.DictReader(fh)] == ["m1 [paper]", "m2", "m1 [shorter-side]"]
    # rows without a protocol (older tables) and rows with one are mixed too
    unrecorded = write_csv(tmp_path / "u.csv", paper[:4] + [dict(r, protocol="") for r in HAND[4:]], columns)
    assert lr0fm_main(["metrics", "report", str(unrecorded), "--output", str(out)]) == 2
    assert "unrecorded (4 rows)" in capsys.readouterr().err


def test_num_classes_paper_is_the_authors_counts():
    from lr0fm.catalog import AUTHORS_NUM_CLASSES, NUM_CLASSES
    from lr0fm.metrics.cli import _class_counts

    differ = {d: n for d, n in AUTHORS_NUM_CLASSES.items() if NUM_CLASSES[d] != n}
    assert differ == {"food101": 102, "fgvc-aircraft": 102}
    assert AUTHORS_NUM_CLASSES["caltech101"] == NUM_CLASSES["caltech101"] == 102
    assert _class_counts(["paper", "food101=101"]) == {**AUTHORS_NUM_CLASSES, "food101": 101}


def synthetic_gammas(num_models=30, seed=0):
    rng = np.random.default_rng(seed)
    skill = rng.normal(size=(num_models, 1))
    share = np.linspace(0.95, 0.1, len(DATASETS))
    return share * skill + (1 - share) * rng.normal(size=(num_models, len(DATASETS)))


def test_objective_parsing():
    obj = parse_objective(PAPER_OBJECTIVE, DATASETS)
    assert obj.terms == {"imagenet": 0.95, "imagenet-v2": 0.95, "dtd": 0.95, "imagenet-a": 1.0, "eurosat": 1.0}
    assert parse_objective("mean", ["a", "b"]).terms == {"a": 0.5, "b": 0.5}
    with pytest.raises(ValueError, match="Did you mean 'eurosat'"):
        parse_objective("eurosatt + dtd", DATASETS)
    with pytest.raises(ValueError, match="coefficient 'x'"):
        parse_objective("x*dtd", DATASETS)


def test_optimizer_is_seeded_and_never_worse_than_start():
    g = synthetic_gammas()
    obj = parse_objective(PAPER_OBJECTIVE, DATASETS)
    start = {d: 1.0 for d in DATASETS}
    kwargs = dict(trials=4, batch_size=4, refine_steps=300, seed=3, start=start)  # Sobol phase + refinement
    a = optimize_weights(g, DATASETS, obj, **kwargs)
    b = optimize_weights(g, DATASETS, obj, **kwargs)
    assert a.weights == b.weights and a.objective_value == b.objective_value
    assert a.objective_value >= a.start_objective
    assert a.objective_value > a.start_objective  # uniform weights are far from optimal on this table
    assert all(0.01 <= w <= 1.0 for w in a.weights.values())
    assert WeightScorer(g, DATASETS, obj)(np.array(list(a.weights.values()))) == pytest.approx(a.objective_value)
    c = optimize_weights(g, DATASETS, obj, **dict(kwargs, seed=4))
    assert c.weights != a.weights


@pytest.mark.slow
def test_optimizer_bayesian_phase_is_reproducible():
    g = synthetic_gammas()
    obj = parse_objective(PAPER_OBJECTIVE, DATASETS)
    kwargs = dict(trials=14, batch_size=7, refine_steps=0, seed=0)
    a = optimize_weights(g, DATASETS, obj, **kwargs)
    b = optimize_weights(g, DATASETS, obj, **kwargs)
    assert a.history == b.history and a.weights == b.weights


def test_optimize_weights_cli_yaml_feeds_metrics(tmp_path, capsys):
    rng = np.random.default_rng(1)
    g = synthetic_gammas(num_models=8)
    records = []
    for i in range(g.shape[0]):
        for j, d in enumerate(DATASETS[:5]):
            hr = 0.8
            records += [
                {"model": f"m{i}", "dataset": d, "resolution": "hr", "top1": hr},
                {
                    "model": f"m{i}",
                    "dataset": d,
                    "resolution": 16,
                    "top1": hr / (1 + np.exp(-g[i, j] + rng.normal(0, 0.01))),
                },
            ]
    results = write_csv(tmp_path / "r.csv", records)
    weights = tmp_path / "w.yaml"
    argv = ["metrics", "optimize-weights", str(results), "--resolution", "16", "--trials", "3"]
    argv += ["--objective", "imagenet + imagenet-a", "--refine_steps", "200", "--output", str(weights)]
    assert lr0fm_main(argv) == 0
    printed = capsys.readouterr().out
    assert "start (published)" in printed and "optimised" in printed
    loaded = load_weights(weights)
    assert set(loaded) == set(DATASETS[:5])
    assert (
        lr0fm_main(
            ["metrics", "report", str(results), "--weights", str(weights), "--output", str(tmp_path / "o"), "--quiet"]
        )
        == 0
    )


def test_top_level_help_does_not_import_torch():
    code = (
        "import sys; from lr0fm.cli import main; main(['--help']); "
        "print('torch' in sys.modules, 'lightning' in sys.modules)"
    )
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False False")
    assert "metrics" in out
    assert time.perf_counter() - t0 < 10


@pytest.mark.parametrize(
    "command",
    [
        ["benchmark"],
        ["metrics", "report"],
        ["metrics", "optimize-weights"],
        ["synth"],
        ["toy", "pretrain"],
        ["toy", "eval"],
        ["export-tokens"],
    ],
    ids=" ".join,
)
def test_subcommand_help_imports_no_heavy_library(command):
    """``lr0fm <command> --help`` is fast: no torch, Lightning or SciPy (LightningCLI fit/validate/test excepted)."""
    code = (
        "import sys; from lr0fm.cli import main; "
        f"rc = main({[*command, '--help']!r}); "
        "print(rc, [m for m in ('torch', 'lightning', 'scipy', 'open_clip') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "usage: lr0fm " + " ".join(command) in out
    assert out.strip().splitlines()[-1] == "0 []"


def test_a_closed_pipe_ends_a_listing_quietly():
    """``lr0fm benchmark --list_models '*' | head -1`` when the reader has gone: no BrokenPipeError traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "lr0fm.cli", "benchmark", "--list_models", "*"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    proc.stdout.close()  # the reader leaves before anything is written
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 0
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr[-2000:]
