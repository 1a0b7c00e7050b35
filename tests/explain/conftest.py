"""A synthetic study with a known ground truth, fitted once (ridge + XGBoost)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

torch.set_num_threads(1)  # the CPU is shared; every model here is tiny


@pytest.fixture(scope="session")
def fitted(tmp_path_factory):
    """``(study, truth)`` after ``fit_study`` (3 folds, no learning curve)."""
    from qua2.surrogates.fit import FitOptions, fit_study
    from tests.fixtures.synthetic_study import make_synthetic_study

    study, truth = make_synthetic_study(tmp_path_factory.mktemp("explain"), n_random=240,
                                        n_blocks=3, seed=4)
    fit_study(study, FitOptions(surrogates=("ridge", "xgb"), folds=3, curve_sizes=(60,),
                                params={"xgb": {"n_estimators": 600, "learning_rate": 0.05}}))
    return study, truth


@pytest.fixture(scope="session")
def data(fitted):
    from qua2.surrogates.data import load_study_data

    return load_study_data(fitted[0])


@pytest.fixture(scope="session")
def graph(fitted):
    from qua2.study.graph import study_graph

    return study_graph(fitted[0])


@pytest.fixture(scope="session")
def xgb_explanation(fitted, data):
    from qua2.explain.attributions import explain
    from qua2.surrogates.fit import load_fitted

    rows = data.cv_rows(data.target())
    return explain(load_fitted(fitted[0], "xgb"), data.choices[rows])


@pytest.fixture(scope="session")
def true_sensitivity(fitted):
    import pandas as pd

    truth = json.loads(fitted[0].path("synthetic_truth.json").read_text())
    return pd.Series(np.asarray(truth["sensitivity"]), index=truth["layers"])
