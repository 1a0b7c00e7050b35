"""The analysis scripts on synthetic studies whose true sensitivities and method preferences
are known (``tests.fixtures.synthetic_study``: attention prefers kmeans_c, feed-forwards uaq,
kmeans_a is worst everywhere; the patch layers are the most sensitive)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from analysis import compare_studies, insights, method_stats, surrogate_quality
from analysis.common import StudyDir
from qua2.explain.summaries import group_importance, option_preference_intervals, study_explanation

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sd(synthetic_dir):
    return StudyDir.open(synthetic_dir)


def test_study_dir_reads_rows_labels_and_partial_state(sd):
    assert len(sd.done("random")) == 160 and len(sd.done("uniform")) == 6
    assert not sd.partial and "PARTIAL" not in sd.describe()
    assert set(sd.layer_labels["component"]) >= {"self_attn", "ff", "patch_in", "patch_out"}
    keys = sd.option_keys(sd.done("random"))
    assert keys.shape == (160, len(sd.layers)) and not (keys == "fp").any().any()
    partial = StudyDir(sd.study, sd.frame.iloc[:40])
    assert partial.partial and "(PARTIAL)" in partial.describe()


def test_a_partial_sweep_is_labelled_and_not_plotted(sd):
    assert sd.sweep_complete and insights.sweep_by_block(sd) is not None
    sweep = sd.frame.index[sd.frame["kind"] == "sweep"]
    partial = StudyDir(sd.study, sd.frame.drop(sweep[10:]))
    assert not partial.sweep_complete and insights.sweep_by_block(partial) is None
    assert f"10 of {sd.planned_sweep} sweep" in partial.describe()


def test_attribution_without_fit_uses_an_in_memory_ridge(sd):
    expl = study_explanation(sd.study)
    assert "ridge fitted in memory" in expl.source
    assert expl.values.shape == (160, len(sd.layers))
    assert list(expl.labels.index) == expl.layers
    roles = group_importance(expl, "role", rounds=200)
    assert roles["group"].iloc[0] in ("patch_out", "patch_in")
    assert (roles["lo"] <= roles["mean_abs_shap"]).all()
    assert (roles["mean_abs_shap"] <= roles["hi"]).all()


def test_option_preference_recovers_the_known_method_preferences(sd):
    pref = option_preference_intervals(study_explanation(sd.study), "component", rounds=200)
    best = pref[pref["bits"] == 3].sort_values("mean_shap").groupby("group").last()["method"]
    assert best["self_attn"] == "kmeans_c"
    assert best["ff"] == "uaq"


def test_method_regression_recovers_kmeans_a_as_the_worst_method(sd):
    random = sd.done("random")
    effects = method_stats.effect_table(method_stats.shares(sd, random), sd.quality(random),
                                        rounds=300).set_index("contrast")
    assert effects.loc["kmeans_a vs uaq", "hi"] < 0
    assert effects.loc["kmeans_c vs uaq", "lo"] > effects.loc["kmeans_a vs uaq", "hi"]
    assert effects.loc["kmeans_a vs uaq @ 3 bits", "effect"] < \
        effects.loc["kmeans_a vs uaq @ 4 bits", "effect"]  # 3-bit damage is larger
    assert {"k-means (any) vs uaq", method_stats.EQUAL_BITS} <= set(effects.index)
    assert "kmeans_a worse than uaq" in method_stats.per_method(effects.reset_index())


def test_anchors_fall_back_to_the_sampled_uniform_rows(sd):
    anchors = method_stats.anchors(sd)
    assert len(anchors) == 6 and set(anchors["source"]) == {"sampled"}
    assert anchors["lo"].isna().all()
    assert set(anchors["method"]) == {"uaq", "kmeans_c", "kmeans_a"}


def test_insights_writes_figures_tables_and_summary(sd, synthetic_dir, tmp_path, capsys):
    assert insights.main([str(synthetic_dir), "--out", str(tmp_path), "--rounds", "200"]) == 0
    out = tmp_path / "synthetic"
    for name in ("sensitivity_by_block", "sensitivity_by_op_type", "option_preference",
                 "pareto"):
        assert (out / f"{name}.png").stat().st_size > 10_000, name
        assert (out / f"{name}.csv").exists(), name
    blocks = pd.read_csv(out / "sensitivity_by_block.csv")
    assert "loss" in blocks  # the sweep rows give a measured loss per block
    assert blocks[["mean_abs_shap", "loss"]].corr(method="spearman").iloc[0, 1] > 0.5
    summary = json.loads((out / "insights.json").read_text())
    assert summary["partial"] is False and summary["verified"] is None
    text = (out / "insights.md").read_text()
    assert "Most sensitive op types" in text and "conditional on the fitted surrogate" in text
    assert "wrote 10 files" in capsys.readouterr().out


def test_insights_prefer_the_explain_csv_when_it_exists(fitted_dir):
    study = StudyDir.open(fitted_dir).study
    expl = study_explanation(study)
    assert expl.source.startswith("explain/ridge/shap_values.csv")
    saved = pd.read_csv(fitted_dir / "explain" / "ridge" / "shap_values.csv", index_col="id")
    assert expl.ids == list(saved.index) and expl.layers == list(saved.columns)
    assert (expl.values == saved.to_numpy()).all()  # objective: higher is better, not flipped
    keys = expl.explanation.option_keys()
    assert keys.shape == saved.shape and set(keys.ravel()) <= {o.key for o in
                                                               expl.explanation.options}
    fitted = study_explanation(study, "xgb")  # fitted, not explained
    assert fitted.source.startswith("surrogates/xgb")


def test_compare_studies_reports_each_study_and_cannot_test_with_two_dits(
        synthetic_dir, fitted_dir, tmp_path, capsys):
    assert compare_studies.main([str(synthetic_dir), str(fitted_dir), "--out", str(tmp_path),
                                 "--rounds", "200"]) == 0
    for name in ("method_effect", "method_share_bins", "uniform_anchors", "sensitivity_top"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000, name
    summary = json.loads((tmp_path / "compare.json").read_text())
    assert summary["claim"].startswith("Cannot test the claim")
    names = [k for k in summary if k != "claim"]
    assert len(names) == 2 and len(set(names)) == 2  # two studies named "synthetic"
    assert all(summary[n]["architecture"] == "DiT" for n in names)
    assert "Cannot test the claim" in capsys.readouterr().out


def _result(arch: str, low: float, high: float, partial: bool = False) -> dict:
    effects = pd.DataFrame([{"contrast": "k-means (any) vs uaq", "method": "kmeans",
                             "bits": "all", "effect": (low + high) / 2, "lo": low, "hi": high,
                             "n": 100}])
    return {"arch": arch, "effects": effects, "sd": SimpleNamespace(partial=partial)}


def test_claim_is_stated_honestly_either_way():
    holds = {"a": _result("DiT", 0.5, 2.0), "b": _result("U-Net", -3.0, -1.0)}
    assert compare_studies.claim(holds).startswith("The claim holds")
    reversed_ = {"a": _result("DiT", -3.0, -1.0), "b": _result("U-Net", 0.5, 2.0)}
    assert compare_studies.claim(reversed_).startswith("The claim is not supported")
    unclear = {"a": _result("DiT", -1.0, 2.0), "b": _result("U-Net", -3.0, -1.0, True)}
    text = compare_studies.claim(unclear)
    assert "not supported" in text and "no clear preference" in text and "PARTIAL" in text


def test_architecture_from_the_graph_stages(sd):
    assert compare_studies.architecture(sd) == "DiT"
    nodes = sd.graph.nodes.copy()
    nodes.loc[nodes.index[:3], "stage"] = "down"
    unet = SimpleNamespace(graph=SimpleNamespace(nodes=nodes))
    assert compare_studies.architecture(unet) == "U-Net"


def test_surrogate_quality_from_the_fit_reports(fitted_dir, synthetic_dir, tmp_path, capsys):
    assert surrogate_quality.main([str(fitted_dir), str(fitted_dir), str(synthetic_dir),
                                   "--out", str(tmp_path), "--rounds", "100"]) == 0
    table = pd.read_csv(tmp_path / "surrogate_quality.csv")
    assert list(table["surrogate"]) == ["ridge", "xgb"] * 2
    assert list(table["study"]) == ["synthetic"] * 2 + ["synthetic-2"] * 2  # same name twice
    assert (table["spearman_mean"] > 0.6).all()
    assert (table["pooled_rho_lo"] <= table["pooled_rho"]).all()
    xgb = table[table["surrogate"] == "xgb"].iloc[0]
    assert xgb["delta_vs"] == "ridge" and xgb["delta_rho_lo"] <= xgb["delta_rho"]
    assert table[table["surrogate"] == "ridge"]["delta_rho"].isna().all()
    for name in ("rank_metrics", "learning_curves"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    text = (tmp_path / "surrogate_quality.md").read_text()
    assert "Skipped" in text and str(synthetic_dir) in text
    assert "run `qua2 fit" in capsys.readouterr().err


def test_too_few_configs_or_an_unexplained_surrogate_is_one_clear_error(tmp_path, monkeypatch,
                                                                        capsys, synthetic_dir):
    from analysis.common import run_main
    from tests.fixtures.synthetic_study import make_synthetic_study

    study, _ = make_synthetic_study(tmp_path / "tiny", n_random=5, n_blocks=1, sweep=False)
    monkeypatch.setattr(sys, "argv", ["insights.py", str(study.directory), "--out",
                                      str(tmp_path / "out")])
    assert run_main(insights.main) == 2
    assert "only 5 random configs are done" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", ["insights.py", str(synthetic_dir), "--out",
                                      str(tmp_path / "out"), "--surrogate", "gnn"])
    assert run_main(insights.main) == 2
    assert "qua2 explain" in capsys.readouterr().err


def test_surrogate_quality_runs_as_a_module_and_fails_clearly(synthetic_dir, tmp_path):
    result = subprocess.run([sys.executable, "-m", "analysis.surrogate_quality",
                             str(synthetic_dir), "--out", str(tmp_path)],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 2
    assert "none of the studies has been fitted" in result.stderr


def test_python_m_analysis_lists_and_dispatches_the_scripts(tmp_path, capsys):
    from analysis import SCRIPTS
    from analysis.__main__ import main

    assert main([]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in SCRIPTS)
    assert main(["nope"]) == 2 and "unknown analysis script" in capsys.readouterr().err
    assert main(["surrogate_quality", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2
    assert "error:" in capsys.readouterr().err  # a Qua2Error: one line, exit code 2


def test_across_replicates_is_mean_with_a_t_interval():
    from scipy import stats as sstats

    from analysis.replicated import across

    table = across(pd.DataFrame({"replicate": ["a", "b", "c"], "rho": [1.0, 2.0, 3.0]}))
    row = table.iloc[0]
    half = sstats.t.ppf(0.975, 2) * 1.0 / np.sqrt(3)
    assert row["mean"] == pytest.approx(2.0)
    assert (row["lo"], row["hi"]) == pytest.approx((2.0 - half, 2.0 + half))
    assert (row["min"], row["max"]) == (1.0, 3.0)


def test_replicated_reports_every_replicate(fitted_dir, synthetic_dir, tmp_path):
    from analysis.replicated import main

    study = tmp_path / "study"
    shutil.copytree(fitted_dir, study)
    groups = study / "explain" / "xgb" / "importance_by_group.csv"
    groups.parent.mkdir(parents=True, exist_ok=True)
    groups.write_text("view,group,mean_abs_shap\nrole,adaln,2.5\nblock,blocks.0,9.0\n")
    replicates = tmp_path / "replicates"
    replicates.mkdir()
    for r in (1, 2):  # the same study twice: every quantity identical, zero spread
        (replicates / f"replicate-{r}").symlink_to(study)
    out = tmp_path / "out"
    assert main([str(replicates), "--sweeps", str(synthetic_dir), "--out", str(out),
                 "--rounds", "50", "--interaction-rows", "4"]) == 0
    frame = pd.read_csv(out / "replicates.csv")
    assert len(frame) == 2 and {"ρ xgb", "ρ ridge", "interaction share",
                                "main-effect SHAP vs sweep ρ"} <= set(frame.columns)
    share = frame["interaction share"]
    assert share.between(0.0, 1.0).all() and share.nunique() == 1
    assert frame["SHAP adaln"].tolist() == [2.5, 2.5]  # roles only, not blocks
    assert "SHAP blocks.0" not in frame.columns
    assert "## replicates (2 replicates)" in (out / "replicated.md").read_text()


def test_replicated_refuses_a_directory_without_replicates(tmp_path, monkeypatch, capsys):
    from analysis.common import run_main
    from analysis.replicated import main

    monkeypatch.setattr(sys, "argv", ["analysis.replicated", str(tmp_path), "--out",
                                      str(tmp_path / "out")])
    assert run_main(main) == 2
    assert "holds no replicate-N study directories" in capsys.readouterr().err
