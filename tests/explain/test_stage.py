"""``explain_study`` / ``qua2 explain``: every figure with its data, a summary, resuming."""

from __future__ import annotations

import argparse
import json

import pytest

from qua2.errors import Qua2Error
from qua2.explain.stage import ExplainOptions, explain_study

FIGURES = ("beeswarm", "importance_by_group", "option_preference", "importance_vs_sweep",
           "sensitivity_boxes", "best_variants")


def test_explain_writes_every_figure_with_its_csv(fitted, capsys):
    study, _ = fitted
    options = ExplainOptions(surrogates=("xgb",), max_configs=120, background=12,
                             max_variants=216)
    explanations = explain_study(study, options)
    assert set(explanations) == {"xgb"}
    out = study.path("explain")
    for name in ("predicted_vs_measured", "learning_curve", "pareto"):
        assert (out / f"{name}.png").stat().st_size > 5000
        assert (out / f"{name}.csv").exists()
    for name in FIGURES:
        assert (out / "xgb" / f"{name}.png").stat().st_size > 5000, name
        assert (out / "xgb" / f"{name}.csv").exists(), name
    for name in ("shap_values.csv", "layer_importance.csv", "subgraph_scores.csv"):
        assert (out / "xgb" / name).exists()
    summary = json.loads((out / "explain.json").read_text())["surrogates"]["xgb"]
    assert summary["method"] == "tree" and summary["configs"] == 120
    assert summary["importance_vs_sweep"]["spearman"] > 0.7
    assert "self_attn.out" in summary["top_op_types"]
    capsys.readouterr()
    assert explain_study(study, options) == {}
    assert "up to date" in capsys.readouterr().err
    # another surrogate is added to the summary; the up-to-date one is not recomputed
    options.surrogates = ("xgb", "ridge")
    assert set(explain_study(study, options)) == {"ridge"}
    summary = json.loads((out / "explain.json").read_text())["surrogates"]
    assert set(summary) == {"xgb", "ridge"} and summary["ridge"]["method"] == "linear"


def test_explain_cli_maps_flags_to_options(fitted, monkeypatch, capsys):
    from qua2.cli import explain as cli_explain

    seen = {}
    monkeypatch.setattr("qua2.explain.stage.explain_study",
                        lambda study, options: seen.update(options=options))
    parser = argparse.ArgumentParser()
    cli_explain.add_parser(parser.add_subparsers())
    args = parser.parse_args(["explain", str(fitted[0].directory), "--surrogate", "ridge",
                              "--surrogate", "xgb", "--configs", "40", "--max-variants", "36"])
    assert cli_explain.run(args) == 0
    options = seen["options"]
    assert options.surrogates == ("ridge", "xgb") and options.max_variants == 36
    assert options.max_configs == options.max_configs_permutation == 40
    assert "explanations →" in capsys.readouterr().out


def test_explain_errors(fitted, tmp_path):
    from qua2.study.config import study_config_from_dict
    from qua2.study.study import Study

    with pytest.raises(Qua2Error, match="not fitted"):
        explain_study(fitted[0], ExplainOptions(surrogates=("gnn",)))
    empty = Study.create(study_config_from_dict({"name": "empty"}), tmp_path / "e")
    with pytest.raises(Qua2Error, match="run `qua2 fit"):
        explain_study(empty)


@pytest.mark.slow
def test_explain_the_gnn_end_to_end(tmp_path):
    from qua2.surrogates.fit import FitOptions, fit_study
    from tests.fixtures.synthetic_study import make_synthetic_study

    study, _ = make_synthetic_study(tmp_path / "g", n_random=60, n_blocks=1)
    fit_study(study, FitOptions(surrogates=("gnn",), folds=3, gnn_epochs=10))
    explanations = explain_study(study, ExplainOptions(surrogates=("gnn",),
                                                       max_configs_permutation=8,
                                                       background=6, max_variants=64))
    assert explanations["gnn"].method == "permutation"
    for name in FIGURES:
        assert (study.path("explain", "gnn") / f"{name}.png").exists(), name
