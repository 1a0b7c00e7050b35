"""`qua2 run` through every stage on a tiny digits study: the main job's chain, in minutes.

Train (30 steps) → reference → graph → option cache → anchors → random configs → sweep → fit
(ridge, xgb) → explain → search → verify → export → report, through the CLI, then check what
each stage left behind. Uses the same code path as ``scripts/main``; only the sizes differ.
"""

import json
import math
import textwrap

import pandas as pd
import pytest
from safetensors import safe_open

from qua2.cli import main

TINY_FULL_STUDY = textwrap.dedent("""
    name: tiny-e2e
    model: {family: digits-dit, options: {train_steps: 30}}
    sampler: {steps: 2, batch_size: 64}
    images_per_config: 24
    verification_images: 48
    selection_images: 24
    search_space: {methods: [uaq, kmeans_a], bits: [3, 4]}
    config_sampler: {num_configs: 24}
    pipeline: {sweep: true, surrogates: [ridge, xgb]}
""")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    (root / "study.yaml").write_text(TINY_FULL_STUDY)
    out = root / "out"
    assert main(["run", str(root / "study.yaml"), "--out", str(out), "--threads", "1"]) == 0
    return out


def test_every_budget_has_picks_and_baselines_within_budget(finished):
    candidates = json.loads((finished / "search" / "candidates.json").read_text())
    by_budget: dict[float, set[str]] = {}
    for c in candidates:
        if c["budget"] is not None:
            assert c["avg_bits"] <= c["budget"] + 1e-9, c["name"]
            by_budget.setdefault(c["budget"], set()).add(c["kind"])
    assert by_budget and all(kinds >= {"qua2", "baseline"} for kinds in by_budget.values())
    names = {c["name"] for c in candidates}
    assert {"mixdq-ip", "uniform", "best-sampled"} <= names  # the sweep fed MixDQ's IP


def test_verification_tables_and_paired_comparisons(finished):
    table = pd.read_csv(finished / "verification" / "table.csv")
    assert table["digits_fid"].notna().all()
    fp = table[table["name"] == "fp"].iloc[0]
    assert fp["digits_fid_lo"] < fp["digits_fid"] < fp["digits_fid_hi"]  # bias-shifted
    comparisons = pd.read_csv(finished / "verification" / "comparisons.csv")
    assert set(comparisons["verdict"]) <= {"better", "worse", "tie"}
    assert (comparisons["delta_lo"] <= comparisons["delta_hi"]).all()
    text = (finished / "verification" / "table.md").read_text()
    assert "### Budget ≤ 3.5 average bits" in text and "Paired differences" in text
    progress = (finished / "verification" / "progress.jsonl").read_text().splitlines()
    assert len(progress) == len(set(table["id"]))  # each distinct config verified once


def test_one_pick_per_budget_chosen_on_selection_seeds_and_only_it_verified(finished):
    """Selection is not verification (issue 19): the better of qua2's two picks per budget is
    chosen on the selection seeds; only the chosen one is verified on the held-out seeds."""
    from qua2.study.reference import Reference

    selection = json.loads((finished / "search" / "selection.json").read_text())
    verified = {r["name"] for r in json.loads((finished / "verification" /
                                               "results.json").read_text())}
    others = {c["id"] for c in json.loads((finished / "search" / "candidates.json").read_text())
              if c["kind"] != "qua2"}
    assert selection
    chosen_anywhere = {entry["id"] for entry in selection}  # a loser here may win elsewhere
    for entry in selection:
        assert len(entry["picks"]) == 2 and entry["by"] == "selection images"
        best = min(entry["picks"], key=lambda p: p["selection_score"])  # digits-FID: lower
        assert entry["id"] == best["id"] and entry["id"] in verified
        loser = next(p["id"] for p in entry["picks"] if p["id"] != entry["id"])
        assert loser in others | chosen_anywhere or loser not in verified
    table = pd.read_csv(finished / "verification" / "table.csv")
    qua2_rows = table[table["kind"] == "qua2"]
    assert qua2_rows.groupby("budget").size().eq(1).all()
    chosen = Reference.load(finished / "reference" / "selection.safetensors").seeds
    held_out = Reference.load(finished / "reference" / "verification.safetensors").seeds
    assert len(chosen) == 24 and not set(chosen) & set(held_out)


def test_export_is_smaller_and_report_links_everything(finished):
    export = finished / "export" / "qua2-3.5bits"
    meta = json.loads((export / "qua2_quant.json").read_text())
    assert meta["average_bits"]["quantized_layers"] <= 3.5 + 1e-9
    with safe_open(export / "qua2_quant.safetensors", "pt") as f:
        assert len(list(f.keys())) > 0
    size = (export / "qua2_quant.safetensors").stat().st_size
    fp16_bytes = json.loads((finished / "model.json").read_text())["parameters"] * 2
    assert size < 0.5 * fp16_bytes
    report = (finished / "report.md").read_text()
    for needle in ("verification/pareto.png", "export/qua2-3.5bits", "Spearman",
                   "MB on disk", "### xgb", "explain/xgb/beeswarm.png"):
        assert needle in report, needle
    assert "Not run yet" not in report


def test_rerun_is_a_no_op_that_reuses_every_stage(finished, capsys):
    study_yaml = finished.parent / "study.yaml"
    before = (finished / "verification" / "table.csv").read_text()
    assert main(["run", str(study_yaml), "--out", str(finished), "--threads", "1",
                 "--stages", "fit", "explain", "verify"]) == 0
    err = capsys.readouterr().err
    assert "up to date" in err
    assert (finished / "verification" / "table.csv").read_text() == before
    assert not math.isnan(pd.read_csv(finished / "verification" / "table.csv")["avg_bits"]
                          .dropna().max())
