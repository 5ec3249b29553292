"""`lr0fm metrics report | optimize-weights` under bad values, bad files and degenerate tables.

Every case asserts the exit status, that the one-line message names the value or file and what is expected,
and that the outputs of an earlier good run are left as they were.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from lr0fm import cli
from lr0fm.metrics import ResultsTable, compute_report, load_weights
from lr0fm.metrics.markdown import report_markdown
from lr0fm.metrics.optimize import WeightScorer, parse_objective, refine_weights
from lr0fm.metrics.weights import WeightsError

COLUMNS = ["model", "dataset", "resolution", "top1"]
#: three models on three datasets at 16 px and HR (enough for rankings, correlations and the optimiser)
GOOD = {
    ("m1", "dtd"): (0.50, 0.25),
    ("m1", "eurosat"): (0.80, 0.60),
    ("m1", "oxford-pets"): (0.70, 0.30),
    ("m2", "dtd"): (0.40, 0.30),
    ("m2", "eurosat"): (0.50, 0.10),
    ("m2", "oxford-pets"): (0.60, 0.40),
    ("m3", "dtd"): (0.60, 0.20),
    ("m3", "eurosat"): (0.70, 0.35),
    ("m3", "oxford-pets"): (0.80, 0.50),
}


def records(cells=GOOD) -> list[dict]:
    out = []
    for (model, dataset), (hr, lr16) in cells.items():
        out.append({"model": model, "dataset": dataset, "resolution": "hr", "top1": hr})
        out.append({"model": model, "dataset": dataset, "resolution": 16, "top1": lr16})
    return out


def write_table(path: Path, rows: list[dict], columns=COLUMNS) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch):
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)


@pytest.fixture
def earlier(tmp_path, capsys):
    """A results table and the output folder of a good report on it (to check it survives bad runs)."""
    table = write_table(tmp_path / "results.csv", records())
    out = tmp_path / "report"
    assert run(["metrics", "report", str(table), "--output", str(out), "--quiet"], capsys)[0] == 0
    return table, out, snapshot(out)


def one_error_line(err: str, command: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"lr0fm metrics {command}: error: "), err
    return lines[0]


# --- alpha ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [".nan", ".inf", "-200", "0"])
def test_alpha_must_be_finite_and_positive(earlier, value, capsys):
    table, out, before = earlier
    code, _, err = run(["metrics", "report", str(table), "--output", str(out), f"--alpha={value}"], capsys)
    line = one_error_line(err, "report")
    assert code == 2
    assert "--alpha" in line and "finite number > 0" in line and "paper uses 200" in line
    assert snapshot(out) == before


def test_alpha_from_a_config_file_and_the_api_is_checked_too(earlier, tmp_path, capsys):
    table, out, before = earlier
    config = tmp_path / "c.yaml"
    config.write_text("alpha: .nan\n")
    code, _, err = run(["metrics", "report", str(table), "--config", str(config), "--output", str(out)], capsys)
    assert code == 2 and "--alpha nan" in one_error_line(err, "report")
    assert snapshot(out) == before
    with pytest.raises(ValueError, match=r"alpha -200.0: .*finite number > 0"):
        compute_report(ResultsTable.from_records(records()), alpha=-200.0)
    code, _, err = run(["metrics", "optimize-weights", str(table), "--alpha=-1", "--output", str(tmp_path / "w.yaml")],
                       capsys)  # fmt: skip
    assert code == 2 and "--alpha -1.0" in one_error_line(err, "optimize-weights")
    assert not (tmp_path / "w.yaml").exists()


def test_alpha_below_one_is_allowed_with_a_warning():
    report = compute_report(ResultsTable.from_records(records()), alpha=0.5)
    assert any("alpha = 0.5 < 1" in n and "alpha >> 1" in n for n in report.notes)
    assert all(0 < s.war < s.sar for s in report.summary)  # Gamma far below gamma, as the warning says


# --- optimize-weights values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("objective", "expected"),
    [
        ("nan*dtd + eurosat", "coefficient 'nan' of term 'nan*dtd' is not finite"),
        ("inf*dtd", "coefficient 'inf' of term 'inf*dtd' is not finite"),
        ("0*dtd + 0*eurosat", "every coefficient is 0"),
    ],
)
def test_objective_must_be_finite_and_non_trivial(earlier, tmp_path, objective, expected, capsys):
    table, _, _ = earlier
    target = tmp_path / "w.yaml"
    target.write_text("weights: {dtd: 1.0}\n")  # an earlier weights file stays as it was
    argv = ["metrics", "optimize-weights", str(table), "--objective", objective, "--output", str(target)]
    code, _, err = run(argv + ["--trials", "1", "--batch_size", "1", "--refine_steps", "1"], capsys)
    line = one_error_line(err, "optimize-weights")
    assert code == 2 and expected in line and repr(objective) in line
    assert target.read_text() == "weights: {dtd: 1.0}\n"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--bounds", "0.5", "0.1"], "--bounds 0.5 0.1: expected finite LO HI with 0 <= LO < HI"),
        (["--trials", "0"], "--trials 0: must be >= 1"),
        (["--refine_steps", "-1"], "--refine_steps -1: must be >= 0"),
        (["--seed", "-1"], "--seed -1: must be an integer in [0, 2**32)"),
    ],
)
def test_optimizer_flags_are_named(earlier, tmp_path, flags, expected, capsys):
    table, _, _ = earlier
    code, _, err = run(["metrics", "optimize-weights", str(table), "--output", str(tmp_path / "w.yaml"), *flags],
                       capsys)  # fmt: skip
    assert code == 2 and expected in one_error_line(err, "optimize-weights")
    assert not (tmp_path / "w.yaml").exists()


def test_refinement_works_with_fewer_than_three_datasets():
    gammas = np.array([[0.9, 0.2], [0.5, 0.6], [0.1, 0.3], [0.4, 0.8]])
    scorer = WeightScorer(gammas, ["dtd", "eurosat"], parse_objective("dtd + eurosat", ["dtd", "eurosat"]))
    weights, value = refine_weights(scorer, np.array([1.0, 1.0]), (0.01, 1.0), steps=50, seed=0)
    assert weights.shape == (2,) and value >= scorer(np.array([1.0, 1.0]))


# --- WAR weights ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("weights:\n  dtd: -0.5\n  eurosat: 1\n", "weight of 'dtd' is negative (-0.5); WAR weights must be >= 0"),
        ("dtd: true\n", "weight of 'dtd' is not a number: True"),
        ("weights:\n  dtd: .nan\n", "weight of 'dtd' is not finite"),
        ("weights:\n  dtd: [1\n", "is not valid YAML: expected ',' or ']', but got '<stream end>' (line 3, column 1)"),
        ("[1, 2]\n", "must map dataset names to numbers"),
    ],
)
def test_weights_file_errors_name_file_and_dataset(earlier, tmp_path, text, expected, capsys):
    table, out, before = earlier
    weights = tmp_path / "w.yaml"
    weights.write_text(text)
    code, _, err = run(["metrics", "report", str(table), "--weights", str(weights), "--output", str(out)], capsys)
    line = " ".join(err.split())  # the 'must map' message carries an example on further lines
    assert code == 2 and "Traceback" not in err
    assert str(weights) in line and expected in line
    assert snapshot(out) == before


def test_negative_weights_are_refused_from_the_api_and_as_start(earlier, tmp_path, capsys):
    with pytest.raises(WeightsError, match=r"finite numbers >= 0.*dtd=-1.0"):
        compute_report(ResultsTable.from_records(records()), weights={"dtd": -1.0, "eurosat": 1.0})
    table, _, _ = earlier
    start = tmp_path / "start.yaml"
    start.write_text("weights:\n  dtd: 1\n  eurosat: -0.2\n")
    code, _, err = run(["metrics", "optimize-weights", str(table), "--objective", "dtd + eurosat", "--start",
                        str(start), "--output", str(tmp_path / "w.yaml")], capsys)  # fmt: skip
    line = one_error_line(err, "optimize-weights")
    assert code == 2 and str(start) in line and "'eurosat' is negative" in line
    assert load_weights(write_yaml(tmp_path / "ok.yaml", "dtd: 0\neurosat: 2\n")) == {"dtd": 0.0, "eurosat": 2.0}


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- a legitimate 0 % HR accuracy ----------------------------------------------------------------------------


def zero_hr_cells() -> dict:
    cells = dict(GOOD)
    cells[("m1", "dtd")] = (0.0, 0.0)  # e.g. a broken prompt set: 0 of N right at HR, and at 16 px
    return cells


def read_rows(path: Path) -> list[dict]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_zero_hr_accuracy_reports_n_a_and_reruns_into_the_same_folder(tmp_path, capsys):
    table = write_table(tmp_path / "results.csv", records(zero_hr_cells()))
    out = tmp_path / "report"
    for _ in range(2):  # a later run into the same folder works the same way
        code, printed, err = run(["metrics", "report", str(table), "--output", str(out)], capsys)
        assert code == 0 and "Traceback" not in err
    summary = {r["model"]: r for r in read_rows(out / "summary.csv")}
    assert summary["m1"]["sar"] == summary["m1"]["war"] == summary["m1"]["rank_war"] == ""  # undefined, unranked
    assert float(summary["m1"]["acc"]) == pytest.approx((0.0 + 0.60 + 0.30) / 3)
    assert sorted(summary[m]["rank_war"] for m in ("m2", "m3")) == ["1", "2"]  # NaN never ranks first
    per = {(r["model"], r["dataset"], r["resolution"]): r for r in read_rows(out / "per_dataset.csv")}
    assert per[("m1", "dtd", "16")]["gamma"] == per[("m1", "dtd", "16")]["Gamma"] == ""
    assert "| m1 | 50.0 | 30.0 | n/a | n/a |" in printed  # ACC is defined; SAR/WAR are not
    assert "HR top-1 is 0 for m1 / dtd" in printed and f"{table}:2" in printed and "--allow_missing" in printed
    assert "correlations at 16 px need >= 3 models" in printed  # m1 leaves two complete models


def test_zero_hr_accuracy_with_allow_missing_aggregates_the_defined_datasets():
    report = compute_report(ResultsTable.from_records(records(zero_hr_cells())), allow_missing=True)
    s1 = report.summary_for("m1", 16)
    assert s1.sar == pytest.approx((0.60 / 0.80 + 0.30 / 0.70) / 2) and s1.num_datasets == 3
    assert s1.rank_war is not None and not math.isnan(s1.war)
    assert any("their SAR/WAR aggregate the other datasets" in n for n in report.notes)


def test_benchmark_finalize_path_survives_a_zero_hr_row(tmp_path):
    # what lr0fm.benchmark.runner.finalize does with a results folder's records (allow_missing=True)
    rows = [dict(r, protocol="paper") for r in records(zero_hr_cells())]
    report = compute_report(ResultsTable.from_records(rows, source=str(tmp_path / "results.jsonl")), allow_missing=True)
    paths = report.write(tmp_path / "metrics")
    assert "| m1 | 50.0 | 30.0 | 58.9 |" in report_markdown(report)  # SAR (0.75 + 0.43) / 2 where it is defined
    assert all(p.is_file() for p in paths.values())


def test_zero_hr_of_a_reference_model_makes_the_student_n_a():
    rows = records() + [
        {"model": "m1+tokens", "dataset": d, "resolution": r, "top1": 0.3}
        for d in ("dtd", "eurosat", "oxford-pets")
        for r in ("hr", 16)
    ]
    rows = [
        dict(r, top1=0.0) if (r["model"], r["dataset"], r["resolution"]) == ("m1", "dtd", "hr") else r for r in rows
    ]
    report = compute_report(ResultsTable.from_records(rows), references={"m1+tokens": "m1"})
    assert math.isnan(report.summary_for("m1+tokens", 16).war)
    assert any("m1+tokens / dtd (reference m1)" in n for n in report.notes)


# --- output paths --------------------------------------------------------------------------------------------


def test_report_output_that_is_a_file(earlier, tmp_path, capsys):
    table, _, _ = earlier
    target = tmp_path / "out.txt"
    target.write_text("keep me")
    for output in (target, target / "sub"):
        code, _, err = run(["metrics", "report", str(table), "--output", str(output)], capsys)
        line = one_error_line(err, "report")
        where = "is a file" if output == target else f"lies below {str(target)!r}, which is a file"
        assert code == 2 and f"--output {str(output)!r} {where}; expected a folder" in line
    assert target.read_text() == "keep me"


def test_optimize_output_that_is_a_folder_fails_before_the_search(earlier, tmp_path, capsys):
    table, out, before = earlier
    code, _, err = run(["metrics", "optimize-weights", str(table), "--output", str(out)], capsys)
    line = one_error_line(err, "optimize-weights")
    assert code == 2 and f"--output {str(out)!r} is a folder; expected the weights YAML file to write" in line
    assert "trial" not in err and snapshot(out) == before


# --- results tables ------------------------------------------------------------------------------------------


def test_results_table_that_is_a_folder_points_inside(earlier, capsys):
    table, out, before = earlier
    code, _, err = run(["metrics", "report", str(table.parent), "--output", str(out)], capsys)
    line = one_error_line(err, "report")
    assert code == 2 and f"results table {str(table.parent)!r} is a folder" in line
    assert f"did you mean {str(table)!r}" in line
    assert snapshot(out) == before


BAD_TABLES = {
    "missing.csv": (None, "does not exist; expected a CSV or JSON Lines file, or the name of a shipped table"),
    "columns.csv": ("a,b\n1,2\n", "missing column(s) model, dataset, resolution, top1"),
    "empty.csv": ("", "is empty; expected a CSV header model,dataset,resolution,top1"),
    "binary.csv": (b"\x89PNG\r\n\x1a\n\xff\xfe", "is not UTF-8 text"),
    "hr_only.csv": ("model,dataset,resolution,top1\nm,dtd,hr,0.5\n", "every row is at resolution hr"),
    "percent.csv": ("model,dataset,resolution,top1\nm,dtd,hr,50\nm,dtd,16,20\n", "looks like percentages"),
    "nan.csv": ("model,dataset,resolution,top1\nm,dtd,hr,nan\n", ":2: column 'top1' is not finite"),
    "text.csv": ("model,dataset,resolution,top1\nm,dtd,hr,high\n", ":2: column 'top1' is not a number: 'high'"),
    "classes.csv": ("model,dataset,resolution,top1,num_classes\nm,dtd,hr,0.5,0\n", ":2: column 'num_classes' must"),
    "dup.csv": ("model,dataset,resolution,top1\nm,dtd,hr,0.5\nm,dtd,hr,0.6\n", "duplicate rows for model 'm'"),
    "bool.jsonl": ('{"model": "m", "dataset": "dtd", "resolution": "hr", "top1": true}\n', "'top1' is not a number"),
    "list.jsonl": ('{"model": ["m"], "dataset": "dtd", "resolution": "hr", "top1": 0.5}\n', "'model' must be a name"),
    "huge.jsonl": ('{"model": "m", "dataset": "dtd", "resolution": 1e400, "top1": 0.5}\n', "resolution 'inf' must be"),
    "nanres.jsonl": ('{"model": "m", "dataset": "dtd", "resolution": "nan", "top1": 0.5}\n', "resolution 'nan' must"),
    "nohr.csv": ("model,dataset,resolution,top1\nm,dtd,16,0.5\n", "missing HR row for model 'm' on dataset 'dtd'"),
}


@pytest.mark.parametrize("name", sorted(BAD_TABLES))
def test_bad_results_tables_are_one_line_naming_the_file(earlier, tmp_path, name, capsys):
    _, out, before = earlier
    content, expected = BAD_TABLES[name]
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    code, _, err = run(["metrics", "report", str(path), "--output", str(out)], capsys)
    line = one_error_line(err, "report")
    assert code == 2 and expected in line
    if name not in ("hr_only.csv", "nohr.csv"):  # (those name the table's models and datasets instead)
        assert str(path) in line  # the full path, not only the file's name
    assert snapshot(out) == before


def test_degenerate_but_valid_tables_report(tmp_path, capsys):
    one_model = write_table(tmp_path / "one_model.csv", [r for r in records() if r["model"] == "m1"])
    one_dataset = write_table(tmp_path / "one_dataset.csv", [r for r in records() if r["dataset"] == "dtd"])
    for table in (one_model, one_dataset):
        out = tmp_path / table.stem
        code, printed, err = run(["metrics", "report", str(table), "--output", str(out)], capsys)
        assert code == 0 and "Traceback" not in err
        assert (out / "summary.csv").is_file() and "SAR-16 (%)" in printed


def test_unknown_reference_models_are_named(earlier, capsys):
    table, out, before = earlier
    for pair, absent in (("m9=m1", "m9"), ("m1=base", "base")):
        code, _, err = run(["metrics", "report", str(table), "--output", str(out), "--reference", pair], capsys)
        line = one_error_line(err, "report")
        assert code == 2 and f"reference pair {pair}: model {absent!r} is not in the table" in line
    assert snapshot(out) == before


def test_jsonl_with_blank_lines_and_extra_keys_is_read(tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(json.dumps({**r, "views": "pil"}) + "\n" for r in records()))
    assert run(["metrics", "report", str(path), "--output", str(tmp_path / "o"), "--quiet"], capsys)[0] == 0


# --- units ---------------------------------------------------------------------------------------------------


def test_files_hold_fractions_and_printed_tables_say_percent(tmp_path, capsys):
    cells = dict(GOOD)
    cells[("m2", "dtd")] = (0.40, 0.44)  # LR beats HR: gamma 1.1
    table = write_table(tmp_path / "results.csv", records(cells))
    out = tmp_path / "report"
    code, printed, _ = run(["metrics", "report", str(table), "--output", str(out)], capsys)
    assert code == 0
    summary = {r["model"]: r for r in read_rows(out / "summary.csv")}
    assert float(summary["m1"]["acc"]) == pytest.approx((0.25 + 0.60 + 0.30) / 3)  # fractions, like results.csv
    per = {(r["model"], r["dataset"], r["resolution"]): r for r in read_rows(out / "per_dataset.csv")}
    assert float(per[("m2", "dtd", "16")]["gamma"]) == pytest.approx(1.1)
    header = next(line for line in printed.splitlines() if line.startswith("| model |"))
    cells_ = [c.strip() for c in header.strip("|").split("|")][1:]
    assert cells_ and all(c.endswith("(%)") for c in cells_), header
    dataset_header = next(line for line in printed.splitlines() if line.startswith("| dataset |"))
    assert dataset_header == "| dataset | 16 (%) | HR (%) |"
    assert "above 100 % when a model is more accurate at low resolution than at HR" in printed
    assert (out / "summary.md").read_text() in printed
