"""The estimator contract, persistence without pickle, and exact SHAP additivity."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from qua2.errors import Qua2Error
from qua2.surrogates.base import load_surrogate
from qua2.surrogates.ridge import RidgeSurrogate
from qua2.surrogates.xgb import XGBSurrogate

FAST_XGB = {"n_estimators": 150, "learning_rate": 0.08}


def _split(data):
    rows = data.cv_rows(data.target())
    y = data.values(data.target())
    return data.choices[rows[:150]], y[rows[:150]], data.choices[rows[150:]], y[rows[150:]]


@pytest.mark.parametrize("make", [
    lambda enc: RidgeSurrogate(enc),
    lambda enc: XGBSurrogate(enc, **FAST_XGB),
    lambda enc: XGBSurrogate(enc, linear_base=False, **FAST_XGB),
], ids=["ridge", "xgb", "xgb-plain"])
def test_contract_and_round_trip(data, tmp_path, make):
    x, y, x_test, y_test = _split(data)
    model = make(data.encoder)
    params = model.get_params()
    assert model.fit(x, y) is model
    assert model.get_params() == params  # fit never changes hyper-parameters
    assert clone(model).get_params().keys() == params.keys()
    assert not hasattr(clone(model), "y_mean_")
    pred = model.predict(x_test)
    assert np.corrcoef(pred, y_test)[0, 1] > 0.9
    model.save(tmp_path / "m", target={"name": "objective", "higher_is_better": True})
    files = {p.suffix for p in (tmp_path / "m").iterdir()}
    assert files <= {".json", ".safetensors"}  # never a pickle
    loaded = load_surrogate(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.target_["name"] == "objective"
    np.testing.assert_allclose(loaded.predict(x_test), pred, rtol=1e-6, atol=1e-6)
    configs = data.encoder.configs(x_test[:3])
    np.testing.assert_allclose(model.predict_configs(configs), pred[:3])


@pytest.mark.parametrize("linear_base", [True, False])
def test_xgb_shap_values_add_up_to_the_prediction(data, linear_base):
    x, y, x_test, _ = _split(data)
    model = XGBSurrogate(data.encoder, linear_base=linear_base, **FAST_XGB).fit(x, y)
    values, base = model.shap_values(x_test)
    assert values.shape == (len(x_test), len(data.encoder.feature_names))
    np.testing.assert_allclose(values.sum(axis=1) + base, model.predict(x_test), atol=1e-3)


def test_unfitted_and_misconfigured_surrogates_say_what_to_do(data, tmp_path):
    with pytest.raises(Qua2Error, match="not fitted"):
        RidgeSurrogate(data.encoder).predict(data.choices[:2])
    with pytest.raises(Qua2Error, match="needs encoder="):
        RidgeSurrogate().fit(data.choices[:5], np.arange(5.0))
    with pytest.raises(Qua2Error, match="target values"):
        RidgeSurrogate(data.encoder).fit(data.choices[:5], np.arange(4.0))
    with pytest.raises(Qua2Error, match="only a fitted"):
        RidgeSurrogate(data.encoder).save(tmp_path)
    with pytest.raises(Qua2Error, match="run `qua2 fit` first"):
        load_surrogate(tmp_path / "nothing")
