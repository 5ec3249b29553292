"""The LR0.FM metrics against hand-computed values, on hand-made tables, and every bad input."""

import csv
import math

import numpy as np
import pytest
from scipy import stats

from lr0fm.metrics import (
    DEFAULT_WAR_WEIGHTS,
    ResultsTable,
    ResultsTableError,
    accuracy_gap,
    compute_report,
    improved_relative_robustness,
    load_results,
    load_weights,
    relative_robustness,
    simple_aggregated_robustness,
    weighted_aggregated_robustness,
)
from lr0fm.metrics.correlation import dataset_correlations, fast_war_correlations, standardised_ranks
from lr0fm.metrics.weights import WeightsError, save_weights


def rows(*entries):
    """(model, dataset, resolution, top1[, num_classes]) tuples -> records."""
    out = []
    for e in entries:
        rec = {"model": e[0], "dataset": e[1], "resolution": e[2], "top1": e[3]}
        if len(e) > 4:
            rec["num_classes"] = e[4]
        out.append(rec)
    return out


def write_csv(path, records, columns=("model", "dataset", "resolution", "top1", "num_classes")):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        for r in records:
            w.writerow(r)
    return path


# --- formulas ------------------------------------------------------------------------------------------------


def test_worked_example_albef_aircraft():
    # paper: ALBEF (4M) on FGVC Aircraft, A_HR = 2.67 %, A_16 = 0.99 %, C = 102
    assert relative_robustness(0.0267, 0.0099) == pytest.approx(0.370786, abs=1e-6)
    assert improved_relative_robustness(0.0267, 0.0099, 102) == pytest.approx(0.020577, abs=1e-6)
    # hand computation of eq. 1
    eps = 0.0267 - 1 / 102
    assert accuracy_gap(0.0267, 102) == pytest.approx(eps)
    assert improved_relative_robustness(0.0267, 0.0099, 102) == pytest.approx(
        (0.0099 / 0.0267) * (1 - math.exp(-200 * eps**2))
    )


def test_gamma_not_clipped_and_alpha_configurable():
    assert relative_robustness(0.5, 0.6) == pytest.approx(1.2)
    eps = 0.5 - 0.1
    assert improved_relative_robustness(0.5, 0.6, 10, alpha=3.0) == pytest.approx(1.2 * (1 - math.exp(-3.0 * eps**2)))
    # far from chance the factor is ~1, at chance it is 0
    assert improved_relative_robustness(0.9, 0.45, 1000) == pytest.approx(0.5, abs=1e-6)
    assert improved_relative_robustness(0.1, 0.1, 10) == 0.0


def test_sar_war_formulas():
    assert simple_aggregated_robustness([0.2, 0.4, 0.9]) == pytest.approx(0.5)
    # WAR = sum |w G| / sum |w|
    assert weighted_aggregated_robustness([0.2, 0.4, 0.9], [1.0, 0.5, 0.0]) == pytest.approx((0.2 + 0.2) / 1.5)
    assert weighted_aggregated_robustness([0.2, -0.4], [1.0, -1.0]) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="all zero"):
        weighted_aggregated_robustness([0.2], [0.0])
    with pytest.raises(ValueError, match="undefined"):
        relative_robustness(0.0, 0.1)


# --- report on a hand-made table -----------------------------------------------------------------------------

HAND = rows(
    ("m1", "dtd", "hr", 0.50),
    ("m1", "dtd", 16, 0.25),
    ("m1", "eurosat", "hr", 0.80),
    ("m1", "eurosat", 16, 0.60),
    ("m2", "dtd", "hr", 0.40),
    ("m2", "dtd", 16, 0.30),
    ("m2", "eurosat", "hr", 0.50),
    ("m2", "eurosat", 16, 0.10),
)


def _G(a_hr, a_n, c, alpha=200.0):  # noqa: N802
    return (a_n / a_hr) * (1 - math.exp(-alpha * (a_hr - 1 / c) ** 2))


def test_report_on_hand_made_table():
    weights = {"dtd": 0.5, "eurosat": 1.0}
    report = compute_report(ResultsTable.from_records(HAND), weights=weights)
    s1 = report.summary_for("m1", 16)
    assert s1.acc == pytest.approx((0.25 + 0.60) / 2)  # fractions, as in the table
    assert s1.sar == pytest.approx((0.5 + 0.75) / 2)
    g_dtd, g_eu = _G(0.5, 0.25, 47), _G(0.8, 0.6, 10)
    assert s1.war == pytest.approx((0.5 * g_dtd + 1.0 * g_eu) / 1.5)
    s2 = report.summary_for("m2", 16)
    assert s2.sar == pytest.approx((0.75 + 0.2) / 2)
    assert s2.war == pytest.approx((0.5 * _G(0.4, 0.3, 47) + _G(0.5, 0.1, 10)) / 1.5)
    assert (s1.rank_war, s2.rank_war) == (1, 2)
    per = {(d.model, d.dataset, d.resolution): d for d in report.per_dataset}
    assert per[("m2", "eurosat", 16)].gamma == pytest.approx(0.2)
    assert per[("m1", "dtd", "hr")].gamma == pytest.approx(1.0)
    assert per[("m1", "dtd", 16)].num_classes == 47


def test_default_weights_are_the_published_ones():
    report = compute_report(ResultsTable.from_records(HAND))
    assert report.weights == {"dtd": DEFAULT_WAR_WEIGHTS["dtd"], "eurosat": 1.0}
    assert DEFAULT_WAR_WEIGHTS["imagenet-a"] == 0.970498446080589 and len(DEFAULT_WAR_WEIGHTS) == 15


def test_num_classes_precedence_column_then_flag_then_true_count():
    recs = rows(("m", "fgvc-aircraft", "hr", 0.05), ("m", "fgvc-aircraft", 16, 0.02))
    true = compute_report(ResultsTable.from_records(recs))
    assert true.num_classes[("m", "fgvc-aircraft")] == 100
    flag = compute_report(ResultsTable.from_records(recs), num_classes={"fgvc-aircraft": 102})
    assert flag.num_classes[("m", "fgvc-aircraft")] == 102
    col = compute_report(
        ResultsTable.from_records([dict(r, num_classes=90) for r in recs]), num_classes={"fgvc-aircraft": 102}
    )
    assert col.num_classes[("m", "fgvc-aircraft")] == 90
    assert col.per_dataset[0].Gamma != flag.per_dataset[0].Gamma


def test_reference_model_uses_baseline_hr_accuracy():
    recs = HAND + rows(
        ("m1+tokens", "dtd", "hr", 0.45),
        ("m1+tokens", "dtd", 16, 0.35),
        ("m1+tokens", "eurosat", "hr", 0.80),
        ("m1+tokens", "eurosat", 16, 0.70),
    )
    report = compute_report(ResultsTable.from_records(recs), references={"m1+tokens": "m1"})
    per = {(d.model, d.dataset, d.resolution): d for d in report.per_dataset}
    assert per[("m1+tokens", "dtd", 16)].gamma == pytest.approx(0.35 / 0.50)
    assert per[("m1+tokens", "dtd", "hr")].gamma == pytest.approx(0.45 / 0.50)
    assert report.summary_for("m1+tokens", "hr").sar == pytest.approx((0.9 + 1.0) / 2)


# --- dataset representation (Spearman) ---------------------------------------------------------------------


def test_spearman_report_matches_scipy_and_known_orders():
    # 5 models; dtd follows the aggregate, eurosat is reversed
    recs = []
    for i in range(5):
        m = f"m{i}"
        recs += rows(
            (m, "dtd", "hr", 0.8),
            (m, "dtd", 16, 0.1 + 0.1 * i),
            (m, "eurosat", "hr", 0.9),
            (m, "eurosat", 16, 0.5 - 0.02 * i),
            (m, "imagenet", "hr", 0.7),
            (m, "imagenet", 16, 0.2 + 0.05 * i),
        )
    report = compute_report(ResultsTable.from_records(recs), weights={"dtd": 1, "eurosat": 1, "imagenet": 1})
    corr = {(c.resolution, c.dataset): c for c in report.correlations}
    assert corr[(16, "dtd")].spearman_sar == pytest.approx(1.0)
    assert corr[(16, "eurosat")].spearman_sar == pytest.approx(-1.0)
    # independent: scipy on the Gamma matrix
    g = np.array([[d.Gamma for d in report.per_dataset if d.model == f"m{i}" and d.resolution == 16] for i in range(5)])
    for j, name in enumerate(["imagenet", "dtd", "eurosat"]):
        assert corr[(16, name)].spearman_sar == pytest.approx(stats.spearmanr(g.mean(1), g[:, j]).statistic)
    mean = corr[(16, "mean")]
    assert mean.spearman_sar == pytest.approx(
        np.mean([corr[(16, d)].spearman_sar for d in ["imagenet", "dtd", "eurosat"]])
    )


def test_fast_correlations_equal_scipy_with_ties():
    rng = np.random.default_rng(0)
    g = rng.integers(0, 5, size=(30, 6)).astype(float) / 5  # many ties
    w = rng.uniform(0.01, 1, size=6)
    fast = fast_war_correlations(standardised_ranks(g), g, w)
    np.testing.assert_allclose(fast, dataset_correlations(g, w), atol=1e-12)


# --- bad input -----------------------------------------------------------------------------------------------


def test_missing_hr_row_names_model_and_dataset():
    recs = [r for r in HAND if not (r["model"] == "m2" and r["dataset"] == "eurosat" and r["resolution"] == "hr")]
    with pytest.raises(ResultsTableError, match=r"missing HR row for model 'm2' on dataset 'eurosat'"):
        compute_report(ResultsTable.from_records(recs))


def test_duplicate_rows_are_named(tmp_path):
    path = write_csv(tmp_path / "r.csv", HAND + rows(("m1", "dtd", 16, 0.3)))
    with pytest.raises(
        ResultsTableError,
        match=r"duplicate rows for model .m1., dataset .dtd., resolution 16: \S*r.csv:3 and \S*r.csv:10",
    ):
        load_results(path)


def test_accuracy_out_of_range_and_percent_hint(tmp_path):
    pct = [dict(r, top1=r["top1"] * 100) for r in HAND]
    with pytest.raises(ResultsTableError, match="looks like percentages"):
        load_results(write_csv(tmp_path / "p.csv", pct))
    neg = HAND[:-1] + rows(("m2", "eurosat", 16, -0.1))
    with pytest.raises(ResultsTableError, match=r"outside \[0, 1\].*'m2'.*'eurosat'") as err:
        ResultsTable.from_records(neg)
    assert "percentages" not in str(err.value)


def test_zero_hr_accuracy_is_undefined_not_an_error():
    recs = [
        dict(r, top1=0.0) if (r["model"], r["dataset"], r["resolution"]) == ("m1", "dtd", "hr") else r for r in HAND
    ]
    report = compute_report(ResultsTable.from_records(recs))  # gamma = A_n / A_HR is undefined: NaN, never a crash
    per = {(d.model, d.dataset, d.resolution): d for d in report.per_dataset}
    assert math.isnan(per[("m1", "dtd", 16)].gamma) and math.isnan(per[("m1", "dtd", 16)].Gamma)
    s1 = report.summary_for("m1", 16)
    assert math.isnan(s1.sar) and math.isnan(s1.war) and s1.rank_war is None
    assert s1.acc == pytest.approx((0.25 + 0.60) / 2)  # accuracy is still defined
    assert report.summary_for("m2", 16).rank_war == 1
    assert any("HR top-1 is 0 for m1 / dtd" in n for n in report.notes)


def test_unknown_dataset_needs_class_count():
    recs = rows(("m", "my-birds", "hr", 0.5), ("m", "my-birds", 16, 0.2))
    with pytest.raises(
        ResultsTableError, match=r"unknown dataset 'my-birds' has no class count.*--num_classes my-birds=N"
    ):
        compute_report(ResultsTable.from_records(recs))
    ok = compute_report(ResultsTable.from_records(recs), num_classes={"my-birds": 20})
    assert ok.num_classes[("m", "my-birds")] == 20
    assert any("no WAR weight for my-birds" in n for n in ok.notes)
    typo = rows(("m", "eurosatt", "hr", 0.5), ("m", "eurosatt", 16, 0.2))
    with pytest.raises(ResultsTableError, match="Did you mean 'eurosat'"):
        compute_report(ResultsTable.from_records(typo))


def test_weights_absent_datasets_warn_and_all_zero_errors(tmp_path):
    report = compute_report(ResultsTable.from_records(HAND), weights={"dtd": 1.0, "eurosat": 0.5, "imagenet": 0.3})
    assert any("absent from the table" in n and "imagenet" in n for n in report.notes)
    with pytest.raises(WeightsError, match="all zero"):
        compute_report(ResultsTable.from_records(HAND), weights={"dtd": 0.0, "eurosat": 0.0})
    bad = tmp_path / "w.yaml"
    bad.write_text("weights:\n  dtd: lots\n")
    with pytest.raises(WeightsError, match="'dtd' is not a number"):
        load_weights(bad)


def test_model_missing_a_dataset_errors_unless_allowed():
    recs = HAND + rows(("m3", "dtd", "hr", 0.6), ("m3", "dtd", 16, 0.3))
    with pytest.raises(ResultsTableError, match=r"missing: m3 / eurosat / 16; m3 / eurosat / hr.*--allow_missing"):
        compute_report(ResultsTable.from_records(recs))
    report = compute_report(ResultsTable.from_records(recs), allow_missing=True)
    s3 = report.summary_for("m3", 16)
    assert s3.num_datasets == 1 and s3.sar == pytest.approx(0.5)
    assert any("aggregated over the datasets present" in n for n in report.notes)


def test_malformed_files(tmp_path):
    missing_col = tmp_path / "a.csv"
    missing_col.write_text("model,dataset,top1\nm,dtd,0.5\n")
    with pytest.raises(ResultsTableError, match="missing column.*resolution"):
        load_results(missing_col)
    bad_res = tmp_path / "b.csv"
    bad_res.write_text("model,dataset,resolution,top1\nm,dtd,sixteen,0.5\n")
    with pytest.raises(ResultsTableError, match=r"b.csv:2: resolution 'sixteen'"):
        load_results(bad_res)
    with pytest.raises(ResultsTableError, match="does not exist"):
        load_results(tmp_path / "nope.csv")


def test_jsonl_equals_csv(tmp_path):
    import json

    jl = tmp_path / "r.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in HAND) + "\n")
    a = compute_report(load_results(jl), weights={"dtd": 1, "eurosat": 1})
    b = compute_report(load_results(write_csv(tmp_path / "r.csv", HAND)), weights={"dtd": 1, "eurosat": 1})
    assert a.summary == b.summary


def test_weights_yaml_round_trip(tmp_path):
    path = save_weights(tmp_path / "w.yaml", {"dtd": 0.25, "eurosat": 1.0}, resolution=16, objective="x")
    assert load_weights(path) == {"dtd": 0.25, "eurosat": 1.0}
    flat = tmp_path / "flat.yaml"
    flat.write_text("dtd: 0.5\neurosat: 2\n")
    assert load_weights(flat) == {"dtd": 0.5, "eurosat": 2.0}
