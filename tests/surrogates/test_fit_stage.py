"""``fit_study`` / ``qua2 fit``: report files, fitted models, resuming."""

from __future__ import annotations

import argparse
import json

import pytest

from qua2.errors import Qua2Error
from qua2.surrogates.fit import FitOptions, fit_study, load_fitted

FAST = {"xgb": {"n_estimators": 120, "learning_rate": 0.08}}


def _options(**kw):
    base = {"surrogates": ("ridge", "xgb"), "folds": 3, "curve_sizes": (30,), "params": FAST}
    return FitOptions(**{**base, **kw})


def test_fit_writes_the_report_and_models_and_resumes(synthetic, capsys):
    study, _ = synthetic
    report = fit_study(study, _options())
    folder = study.path("surrogates")
    for name in ("cv_report.json", "cv_report.md", "oof_predictions.csv",
                 "learning_curve.csv", "ridge/surrogate.json", "xgb/xgb_model.json"):
        assert (folder / name).exists(), name
    saved = json.loads((folder / "cv_report.json").read_text())
    assert saved["best"] in ("ridge", "xgb") and saved["n_random"] == 200
    assert saved["surrogates"]["xgb"]["summary"]["spearman_mean"] > 0.95
    assert report["best"] == saved["best"]
    markdown = (folder / "cv_report.md").read_text()
    assert "| xgb" in markdown and "Spearman ρ" in markdown and "Learning curves" in markdown
    model = load_fitted(study)
    assert model.kind == saved["best"]
    capsys.readouterr()
    fit_study(study, _options())
    assert capsys.readouterr().err.count("up to date") == 2
    fit_study(study, _options(surrogates=("ridge",), force=True))
    again = json.loads((folder / "cv_report.json").read_text())
    assert set(again["surrogates"]) == {"ridge", "xgb"}  # entries merge


def test_fit_cli(synthetic, capsys):
    from qua2.cli import fit as cli_fit

    parser = argparse.ArgumentParser()
    cli_fit.add_parser(parser.add_subparsers())
    args = parser.parse_args(["fit", str(synthetic[0].directory), "--surrogate", "ridge",
                              "--folds", "3", "--curve", "--target", "psnr"])
    assert cli_fit.run(args) == 0
    out = capsys.readouterr().out
    assert "`psnr` (higher is better)" in out and "best: ridge" in out


def test_fit_errors(synthetic, tmp_path):
    with pytest.raises(Qua2Error, match="unknown surrogate"):
        fit_study(synthetic[0], FitOptions(surrogates=("forest",)))
    from qua2.study.config import study_config_from_dict
    from qua2.study.study import Study
    from qua2.surrogates.data import load_study_data

    empty = Study.create(study_config_from_dict({"name": "empty"}), tmp_path / "empty")
    with pytest.raises(Qua2Error, match="no evaluated configurations"):
        load_study_data(empty)


@pytest.mark.slow
def test_stage_fit_runs_every_surrogate(tmp_path):
    from qua2.surrogates.fit import stage_fit
    from tests.fixtures.synthetic_study import make_synthetic_study

    study, _ = make_synthetic_study(tmp_path / "s", n_random=60, n_blocks=1, sweep=False)
    stage_fit(study, argparse.Namespace(threads=1))
    report = json.loads(study.path("surrogates", "cv_report.json").read_text())
    assert set(report["surrogates"]) == {"ridge", "xgb", "gnn"}


def test_importing_the_stages_is_light():
    import subprocess
    import sys

    code = ("import sys, qua2.surrogates.fit, qua2.explain.stage, qua2.cli.fit, "
            "qua2.cli.explain; print(sorted({'torch', 'xgboost', 'shap', 'torch_geometric'}"
            " & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
