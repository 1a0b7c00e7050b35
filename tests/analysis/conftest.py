"""Synthetic studies (known ground truth, no model) for the analysis scripts."""

from __future__ import annotations

import pytest
import torch

# ``analysis`` is a package at the repository root (``python -m analysis.SCRIPT``); pytest
# finds it through ``pythonpath = ["."]`` in pyproject.toml.

torch.set_num_threads(1)  # the CPU is shared; everything here is tiny


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory):
    """A synthetic DiT-like study (2 blocks, 160 random configs, anchors, sweep); not fitted."""
    from tests.fixtures.synthetic_study import make_synthetic_study

    study, _ = make_synthetic_study(tmp_path_factory.mktemp("analysis-a"), n_random=160,
                                    n_blocks=2, seed=3)
    return study.directory


@pytest.fixture(scope="session")
def fitted_dir(tmp_path_factory):
    """A second synthetic study with ridge + XGBoost fitted and the ridge explained."""
    from qua2.explain import ExplainOptions, explain_study
    from qua2.surrogates import FitOptions, fit_study
    from tests.fixtures.synthetic_study import make_synthetic_study

    study, _ = make_synthetic_study(tmp_path_factory.mktemp("analysis-b"), n_random=90,
                                    n_blocks=1, sweep=False, seed=5)
    fit_study(study, FitOptions(surrogates=("ridge", "xgb"), folds=3, curve_sizes=(30,),
                                params={"xgb": {"n_estimators": 60}}))
    explain_study(study, ExplainOptions(surrogates=("ridge",), max_variants=8, background=6))
    return study.directory
