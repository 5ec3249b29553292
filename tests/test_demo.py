"""The README's `make demo`, as a user runs it: the toy benchmark with and without the shipped toy LR tokens,
the model analyses and the toy report, which must open in headless Chromium with every section (slow: ~70 s;
`.ci/run` runs it after the default suite)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from browser import open_in_chromium

from lr0fm.analysis.figures import read_manifest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_make_demo_writes_the_toy_report_with_the_model_analyses(tmp_path):
    out = tmp_path / "toy"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    bin_dir = Path(sys.executable).parent
    # this interpreter's lr0fm, and no install step (`-o`: the install stamp counts as done)
    done = subprocess.run(["make", "-s", "-o", ".venv/.lr0fm-installed", "demo", f"DEMO_OUT={out}", f"BIN={bin_dir}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = out / "report"
    assert f"toy report: file://{report / 'index.html'}" in done.stdout

    # with and without tokens in one results table, and the tokens help toy-texture at 32 px as documented
    rows = (out / "results.csv").read_text().splitlines()
    header = rows[0].split(",")
    cells = [dict(zip(header, r.split(","))) for r in rows[1:]]
    models = {c["model"] for c in cells}
    assert len(models) == 2 and "toyclip" in models
    (tokens_model,) = models - {"toyclip"}
    assert re.fullmatch(r"toyclip\+lrtk0:toyclip_lr_tokens@[0-9a-f]{8}", tokens_model)
    top1 = {(c["model"], c["dataset"], c["resolution"]): float(c["top1"]) for c in cells}
    assert top1[tokens_model, "toy-texture", "32"] > top1["toyclip", "toy-texture", "32"] + 0.1

    names = {r.name for r in read_manifest(report)}
    for analysis in ("layer_similarity", "tsne", "gradcam", "mispredictions", "sr_samples", "lrtk0_gains"):
        assert any(n.startswith(analysis) for n in names), f"no {analysis} figure in the toy report"
    facts, console = open_in_chromium(report / "index.html", tmp_path / "demo.png", tmp_path / "profile")
    assert console == [] and facts.body["data-errors"] == "" and facts.body["data-broken-images"] == ""
    assert sorted(facts.figures) == sorted(names)
    assert {"LR-TK0", "Inside the model", "Semantic mispredictions"} <= set(facts.sections)
