"""`lr0fm report`: figures whose data match the metrics code, the index page, its inputs and errors.

The report is made once per module from a small benchmark-like folder cut from the published 66-model table
(nine backbones of six families, five datasets, plus one model with LR-TK0 tokens derived from its base);
the page is also opened in headless Chromium (tests/browser.py).
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from browser import open_in_chromium

from lr0fm.analysis.figures import FigureRecord, add_to_manifest, read_manifest
from lr0fm.cli import main as lr0fm_main
from lr0fm.metrics import compute_report, load_results
from lr0fm.metrics.robustness import relative_robustness

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "examples" / "lr0fm66_results.csv"
MODELS = (
    "CLIP-ViT-B/32", "CLIP-ViT-L/14", "CLIP-ViT-L/14@336px", "CLIP-RN50", "EVA-02-CLIP-B/16", "SigLIP-ViT-B/16",
    "SigLIP-ViT-B/16@384px", "OpenCLIP-ViT-B/16", "ALBEF (4M)",
)  # fmt: skip
DATASETS = ("imagenet", "imagenet-a", "dtd", "fgvc-aircraft", "eurosat")
TOKENS = "EVA-02-CLIP-B/16+lrtk0:toy@0123abcd"


def published_rows() -> list[dict]:
    with PUBLISHED.open(newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["model"] in MODELS and r["dataset"] in DATASETS]


def write_results_folder(folder: Path) -> Path:
    """A benchmark-like folder: results.csv (+ one model 'with tokens': 2 points better at LR, 1 worse at HR)."""
    rows = published_rows()
    for r in [r for r in rows if r["model"] == "EVA-02-CLIP-B/16"]:
        delta = -0.01 if r["resolution"] == "hr" else 0.02
        rows.append(dict(r, model=TOKENS, top1=f"{min(1.0, float(r['top1']) + delta):.4f}"))
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "results.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*rows[0], "lr0fm_version"])
        writer.writeheader()
        writer.writerows(dict(r, lr0fm_version="0.1.0") for r in rows)
    (folder / "config.yaml").write_text(yaml.safe_dump({"models": list(MODELS), "protocol": "paper"}))
    return folder


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The report of the small folder: (results folder, report folder)."""
    folder = write_results_folder(tmp_path_factory.mktemp("bench") / "run")
    assert lr0fm_main(["report", str(folder)]) == 0  # default output: FOLDER/report
    return folder, folder / "report"


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def metrics(folder: Path):
    return compute_report(load_results(folder / "results.csv"))


def test_report_makes_every_table_figure_with_png_svg_csv(made):
    _, out = made
    names = {r.name for r in read_manifest(out)}
    assert names == {
        "accuracy_per_dataset", "accuracy_per_family", "robustness_ranking_16", "robustness_ranking_32",
        "robustness_ranking_64", "robustness_ranking_128", "gamma_comparison_16", "gamma_heatmap_16",
        "dataset_spearman_16", "dataset_embedding_16", "robustness_vs_size_16", "robustness_size_buckets_16",
        "robustness_vs_pretraining_16", "robustness_vs_input_resolution_16",
        "lrtk0_gains_EVA-02-CLIP-B_16_lrtk0_toy_0123abcd",
    }  # fmt: skip
    for record in read_manifest(out):
        assert sorted(record.files) == sorted(f"{record.name}.{x}" for x in ("png", "svg", "csv"))
        assert (out / f"{record.name}.png").read_bytes()[:4] == b"\x89PNG"
        assert (out / f"{record.name}.svg").read_text().lstrip().startswith("<?xml")
        assert record.caption and record.command.startswith("lr0fm report ") and "--analyses" in record.command
    for name in ("summary.csv", "per_dataset.csv", "correlations.csv", "summary.md", "config.yaml", "index.html"):
        assert (out / name).is_file(), name


def test_figure_data_match_the_metrics_code(made):
    folder, out = made
    report = metrics(folder)
    table = load_results(folder / "results.csv")
    summary = {(s.model, s.resolution): s for s in report.summary}
    cells = {(s.model, s.dataset, s.resolution): s for s in report.per_dataset}
    for r in (16, 32, 64, 128):
        rows = read_csv(out / f"robustness_ranking_{r}.csv")
        assert len(rows) == len(table.models)
        for row in rows:
            s = summary[(row["model"], r)]
            assert float(row["sar"]) == pytest.approx(s.sar, abs=1e-5)
            assert float(row["war"]) == pytest.approx(s.war, abs=1e-5)
    heat = read_csv(out / "gamma_heatmap_16.csv")
    assert len(heat) == len(table.models) * len(DATASETS)
    for row in heat:
        assert float(row["Gamma"]) == pytest.approx(cells[(row["model"], row["dataset"], 16)].Gamma)
    spearman = read_csv(out / "dataset_spearman_16.csv")
    expected = [c for c in report.correlations if c.resolution == 16]
    assert [r["dataset"] for r in spearman] == [c.dataset for c in expected]
    for row, c in zip(spearman, expected):
        assert (float(row["spearman_sar"]), float(row["spearman_war"])) == pytest.approx(
            (c.spearman_sar, c.spearman_war)
        )
    for row in read_csv(out / "accuracy_per_dataset.csv"):
        res = row["resolution"] if row["resolution"] == "hr" else int(row["resolution"])
        assert float(row["top1_percent"]) == pytest.approx(100 * table.get(row["model"], row["dataset"], res).top1)
    for row in read_csv(out / "accuracy_per_family.csv"):
        if row["resolution"] != "hr":
            assert float(row["acc_percent"]) == pytest.approx(100 * summary[(row["model"], int(row["resolution"]))].acc)


def test_gamma_comparison_shows_the_near_chance_problem(made):
    folder, out = made
    cells = {(s.model, s.dataset): s for s in metrics(folder).per_dataset if s.resolution == 16}
    rows = read_csv(out / "gamma_comparison_16.csv")
    for row in rows:
        cell = cells[(row["model"], row["dataset"])]
        assert (float(row["gamma"]), float(row["Gamma"])) == pytest.approx((cell.gamma, cell.Gamma))
        # +1 accuracy point moves gamma by 1/A_HR points
        step = relative_robustness(float(row["top1_hr"]), cell.top1 + 0.01) - cell.gamma
        assert float(row["gamma_per_point"]) == pytest.approx(step)
    albef = next(r for r in rows if r["model"] == "ALBEF (4M)" and r["dataset"] == "fgvc-aircraft")
    assert albef["near_chance"] == "True"  # the paper's example: gamma 37 %, Gamma near 0
    assert float(albef["gamma"]) == pytest.approx(0.0099 / 0.0267) and float(albef["Gamma"]) < 0.05
    assert float(albef["gamma_per_point"]) > 0.3  # one accuracy point moves gamma by > 30 points


def test_model_property_figures_use_the_backbone_table(made):
    from lr0fm.models.paper_backbones import read_paper_backbones

    _, out = made
    backbones = read_paper_backbones()
    size = {r["model"]: r for r in read_csv(out / "robustness_vs_size_16.csv")}
    assert "ALBEF (4M)" not in size  # no parameter count in the table
    assert float(size["CLIP-ViT-B/32"]["params_m"]) == backbones["CLIP-ViT-B/32"]["params"]
    assert size["CLIP-RN50"]["architecture"] == "ResNet" and size["CLIP-ViT-B/32"]["architecture"] == "transformer"
    assert float(size["CLIP-ViT-B/32"]["image_gflops"]) > 0
    assert size[TOKENS]["family"] == "EVA-CLIP"  # a model with tokens has its base's properties
    groups: dict[str, list[str]] = {}
    for row in read_csv(out / "robustness_vs_input_resolution_16.csv"):
        groups.setdefault(row["group"], []).append(row["model"])
    assert sorted(groups.values()) == [
        ["CLIP-ViT-L/14", "CLIP-ViT-L/14@336px"],
        ["SigLIP-ViT-B/16", "SigLIP-ViT-B/16@384px"],
    ]
    buckets = read_csv(out / "robustness_size_buckets_16.csv")
    by_bucket: dict[str, set[str]] = {}
    for row in buckets:
        by_bucket.setdefault(row["bucket_m"], set()).add(row["family"])
    assert all(len(families) >= 2 for families in by_bucket.values())


def test_lrtk0_gains_are_the_accuracy_differences(made):
    folder, out = made
    table = load_results(folder / "results.csv")
    rows = read_csv(out / "lrtk0_gains_EVA-02-CLIP-B_16_lrtk0_toy_0123abcd.csv")
    assert len(rows) == len(DATASETS) * 5
    for row in rows:
        res = row["resolution"] if row["resolution"] == "hr" else int(row["resolution"])
        a, b = table.get(TOKENS, row["dataset"], res).top1, table.get("EVA-02-CLIP-B/16", row["dataset"], res).top1
        assert float(row["gain_points"]) == pytest.approx(100 * (a - b))


def test_sr_tradeoff_puts_sr_front_ends_and_lr_tokens_against_what_they_add(tmp_path):
    """A folder as `lr0fm benchmark` leaves it after plain, `--sr` and `--lr_tokens` runs (mixed protocols)."""
    base = [r for r in published_rows() if r["model"] == "EVA-02-CLIP-B/16"]
    sr = [
        dict(
            r,
            protocol="sr:BSRGAN@1pass",
            sr_params="16697987",
            sr_ms_per_image="" if r["resolution"] == "hr" else f"{3.5 * int(r['resolution']) / 16:.3f}",
            top1=f"{float(r['top1']) * 0.9:.4f}",
        )
        for r in base
    ]
    tokens = [dict(r, model=TOKENS, lr_tokens_params="221184", lr_tokens_method="lr_tokens",
                   top1=f"{min(1.0, float(r['top1']) + 0.03):.4f}") for r in base]  # fmt: skip
    vpt = [dict(r, model="EVA-02-CLIP-B/16+lrtk0:lr_tokens@fedcba98", lr_tokens_params="38400",
                lr_tokens_method="vpt", top1=f"{float(r['top1']) * 0.95:.4f}") for r in base]  # fmt: skip
    folder = tmp_path / "run"
    folder.mkdir()
    columns = [*base[0], "lr_tokens_params", "lr_tokens_method", "sr_params", "sr_ms_per_image"]
    with (folder / "results.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows([*base, *sr, *tokens, *vpt])
    assert lr0fm_main(["report", str(folder), "--analyses", "sr_tradeoff", "lrtk0_gains"]) == 2  # mixed protocols
    args = ["report", str(folder), "--allow_mixed_protocols", "--analyses", "sr_tradeoff", "lrtk0_gains"]
    assert lr0fm_main(args) == 0
    out = folder / "report"
    plain = "EVA-02-CLIP-B/16 [paper]"
    rows = read_csv(out / "sr_tradeoff_EVA-02-CLIP-B_16_paper.csv")
    rows_in = [*base, *sr, *tokens, *vpt]
    top1 = {(r["model"], r["protocol"], r["dataset"], r["resolution"]): float(r["top1"]) for r in rows_in}
    by = {(r["kind"], r["resolution"]): r for r in rows}
    assert {r["base"] for r in rows} == {plain} and len(rows) == 3 * 5  # 3 front-ends x (16..128 px, hr)
    for (kind, res), row in by.items():
        model, protocol = {
            "sr": ("EVA-02-CLIP-B/16", "sr:BSRGAN@1pass"),
            "lr_tokens": (TOKENS, "paper"),
            "vpt": ("EVA-02-CLIP-B/16+lrtk0:lr_tokens@fedcba98", "paper"),  # a VPT export: its header's method
        }[kind]
        expected = [top1[(model, protocol, d, res)] - top1[("EVA-02-CLIP-B/16", "paper", d, res)] for d in DATASETS]
        assert float(row["gain_points"]) == pytest.approx(100 * sum(expected) / len(expected))
        assert int(row["datasets"]) == len(DATASETS)
        assert row["params_added"] == {"sr": "16697987", "lr_tokens": "221184", "vpt": "38400"}[kind]
        sr_ms = "" if kind != "sr" or res == "hr" else str(3.5 * int(res) / 16)
        assert (float(row["ms_per_image"]) if row["ms_per_image"] else "") == (float(sr_ms) if sr_ms else "")
    assert (
        by[("sr", "16")]["front_end"] == "BSRGAN@1pass"
        and by[("sr", "16")]["model"] == "EVA-02-CLIP-B/16 [sr:BSRGAN@1pass]"
    )
    # the LR-TK0 pair is found though its base is named after its protocol in a mixed table
    gains = read_csv(out / "lrtk0_gains_EVA-02-CLIP-B_16_lrtk0_toy_0123abcd.csv")
    assert {r["base"] for r in gains} == {plain} and len(gains) == len(DATASETS) * 5
    assert any(r.analysis == "sr_tradeoff" for r in read_manifest(out))


def test_index_lists_every_figure_table_and_the_run_metadata(made):
    _, out = made
    page = (out / "index.html").read_text()
    for record in read_manifest(out):
        assert f'data-figure="{record.name}"' in page and f'src="{record.name}.png"' in page
        assert f'href="{record.name}.svg"' in page and f'href="{record.name}.csv"' in page
    for table in ("models", "datasets", "backbones"):
        assert f'data-table="{table}"' in page
    assert "config: models" in page and "rows: lr0fm_version" in page  # config.yaml and row columns
    assert "http://" not in page and "https://" not in page  # nothing from the network
    data = json.loads((out / "report.json").read_text())
    models = next(t for t in data["tables"] if t["id"] == "models")
    assert len(models["rows"]) == len(MODELS) + 1


def test_model_analysis_figures_in_the_folder_appear_and_survive_a_rerun(made, tmp_path):
    import shutil

    _, out = made
    copy = tmp_path / "report"
    shutil.copytree(out, copy)
    (copy / "layers.png").write_bytes((copy / "gamma_heatmap_16.png").read_bytes())
    record = FigureRecord("layers", "Layer similarity", "Per block, LR vs HR.", "lr0fm analyze ...",
                          "Inside the model", "layer_similarity", ["layers.png"])  # fmt: skip
    add_to_manifest(copy, record)
    folder = out.parent
    assert lr0fm_main(["report", str(folder), "--output", str(copy), "--analyses", "gamma_heatmap"]) == 0
    names = [r.name for r in read_manifest(copy)]
    assert "layers" in names and "accuracy_per_dataset" in names and names.count("gamma_heatmap_16") == 1
    page = (copy / "index.html").read_text()
    assert 'data-section="Inside the model"' in page and 'data-figure="layers"' in page


def test_report_reproduces_the_eurosat_spearman_of_the_published_table(tmp_path):
    out = tmp_path / "r66"
    assert lr0fm_main(["report", "lr0fm66", "--output", str(out), "--analyses", "dataset_correlation"]) == 0
    rows = {r["dataset"]: r for r in read_csv(out / "dataset_spearman_16.csv")}
    assert round(float(rows["eurosat"]["spearman_sar"]), 2) == 0.26
    assert round(float(rows["eurosat"]["spearman_war"]), 2) == 0.49
    assert round(float(rows["imagenet-a"]["spearman_sar"]), 2) == 0.56
    assert round(float(rows["imagenet-a"]["spearman_war"]), 2) == 0.68


def test_report_bad_input_exits_2_naming_the_problem(tmp_path, capsys):
    assert lr0fm_main(["report", str(tmp_path / "nope.csv"), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "lr0fm report: error:" in err and "nope.csv" in err and "lr0fm66" in err
    (tmp_path / "empty").mkdir()
    assert lr0fm_main(["report", str(tmp_path / "empty")]) == 2
    assert "has no results.jsonl or results.csv" in capsys.readouterr().err
    assert lr0fm_main(["report", "lr0fm66", "--output", str(tmp_path / "o"), "--analyses", "gama_heatmap"]) == 2
    assert "did you mean 'gamma_heatmap'" in capsys.readouterr().err.lower()
    assert lr0fm_main(["report", "lr0fm66", "--output", str(tmp_path / "o"), "--reference", "X=Y"]) == 2
    assert "model 'X' is not in the table" in capsys.readouterr().err


def test_report_help_is_light_and_prints_its_config(capsys):
    code = (
        "import sys; from lr0fm.cli import main; rc = main(['report', '--help']); "
        "print(rc, [m for m in ('torch', 'lightning', 'scipy', 'matplotlib') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "usage: lr0fm report" in out and out.strip().splitlines()[-1] == "0 []"
    assert lr0fm_main(["report", "lr0fm66", "--print_config"]) == 0
    assert "results: lr0fm66" in capsys.readouterr().out


def test_gflops_cache_covers_the_backbone_table_and_matches_a_fresh_measurement():
    from lr0fm.analysis.gflops import measure_open_clip
    from lr0fm.analysis.properties import DEFAULT_GFLOPS
    from lr0fm.models.paper_backbones import read_paper_backbones

    backbones = read_paper_backbones()
    cache = {r["name"]: r for r in read_csv(DEFAULT_GFLOPS)}
    assert set(cache) == set(backbones)
    for name, row in cache.items():
        if row["status"] == "measured":  # the instantiated config is the table's model: same size and input
            assert float(row["params_m"]) == pytest.approx(backbones[name]["params"], rel=0.01), name
            assert int(row["image_size"]) == backbones[name]["resolution"], name
        else:
            assert row["status"].startswith("not measured: "), name
    fresh = measure_open_clip("ViT-B-32")
    assert fresh["image_gflops"] == pytest.approx(float(cache["CLIP-ViT-B/32"]["image_gflops"]))
    # open_clip's docs/model_profile.csv gives ViT-B-32 4.41 image GFLOPs counting one per multiply-add
    assert fresh["image_gflops"] / 2 == pytest.approx(4.41, rel=0.02)


def test_properties_parse_the_backbone_table_fields():
    from lr0fm.analysis.properties import base_model, format_count, parse_count, variant_of

    assert parse_count("400M") == 4e8 and parse_count("2.5B") == 2.5e9 and parse_count(None) is None
    assert format_count(1.4e9) == "1.4B" and format_count(4e6) == "4M"
    assert base_model("ViT-B-16:openai+lrtk0:lr_tokens@ab12cd34") == "ViT-B-16:openai"
    assert variant_of({"spec": "ViT-H-14-378-quickgelu:dfn5b"}, "x") == "ViT-H-14"
    assert variant_of({"spec": "ViT-B-16-SigLIP-384:webli"}, "x") == "ViT-B-16-SigLIP"
    assert variant_of({}, "ALBEF@384px (4M)") == "ALBEF (4M)"


# --- in a browser -------------------------------------------------------------------------------------


def test_index_opens_in_chromium_without_errors_or_broken_images(made):
    _, report = made
    t0 = time.perf_counter()
    facts, console = open_in_chromium(
        report / "index.html", report / "screenshot.png", report.parent / "chromium-profile"
    )
    assert facts.body.get("data-checked") == "yes", "the page's load check did not run"
    assert console == []
    assert facts.body["data-errors"] == ""
    assert facts.body["data-broken-images"] == ""
    records = read_manifest(report)
    assert int(facts.body["data-images"]) == len(records) == len(facts.images)
    assert sorted(facts.figures) == sorted(r.name for r in records)
    assert sorted(facts.images) == sorted(f"{r.name}.png" for r in records)
    assert facts.tables == ["models", "datasets", "backbones"]
    assert facts.sections == ["Accuracy vs resolution", "Robustness", "Dataset representation", "Model properties",
                              "LR-TK0"]  # fmt: skip
    shot = report / "screenshot.png"
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 50_000  # a rendered page, not blank
    assert time.perf_counter() - t0 < 60


def test_the_browser_check_catches_broken_images_and_script_errors(made, tmp_path):
    """The checks above are not vacuous: a page with a missing image and a failing script is caught."""
    _, report = made
    page = tmp_path / "index.html"
    html = (report / "index.html").read_text()
    html = html.replace("</main>", '<img src="missing.png"><script>console.log("hi"); undefinedCall();</script></main>')
    page.write_text(html)
    for record in read_manifest(report):
        shutil.copy(report / f"{record.name}.png", tmp_path)
    facts, console = open_in_chromium(page, tmp_path / "shot.png", tmp_path / "profile")
    assert facts.body["data-broken-images"] == "missing.png"
    assert "undefinedCall is not defined" in facts.body["data-errors"]
    assert any('"hi"' in line for line in console) and any("undefinedCall" in line for line in console)


@pytest.mark.slow
def test_the_published_66_model_report_is_made_in_under_a_minute_and_opens_cleanly(tmp_path):
    out = tmp_path / "r66"
    t0 = time.process_time()  # CPU time of this process: the report's own work, whatever else the machine runs
    assert lr0fm_main(["report", "lr0fm66", "--output", str(out)]) == 0
    seconds = time.process_time() - t0
    records = read_manifest(out)
    assert len(records) == 14  # no LR-TK0 pair in the published table
    facts, console = open_in_chromium(out / "index.html", out / "screenshot.png", tmp_path / "profile")
    assert console == [] and facts.body["data-errors"] == "" and facts.body["data-broken-images"] == ""
    assert sorted(facts.figures) == sorted(r.name for r in records)
    assert seconds < 60, f"the 66 x 15 report took {seconds:.0f} CPU s"
