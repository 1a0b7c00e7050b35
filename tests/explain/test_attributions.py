"""SHAP per layer: exactness, additivity, and recovery of the known sensitive layers."""

from __future__ import annotations

import numpy as np
import pytest
import shap

from qua2.errors import Qua2Error
from qua2.explain.attributions import explain
from qua2.explain.sensitivity import importance_vs_sweep, sweep_sensitivity
from qua2.surrogates.fit import load_fitted
from qua2.surrogates.ranking import spearman


def test_layer_explanation_is_a_shap_explanation_that_adds_up(fitted, data, xgb_explanation):
    lexp = xgb_explanation
    assert isinstance(lexp.explanation, shap.Explanation)
    assert lexp.layers == data.encoder.layers and lexp.method == "tree"
    assert set(np.unique(lexp.explanation.data)) <= {3.0, 4.0}  # colour: the layer's bits
    model = load_fitted(fitted[0], "xgb")
    total = lexp.values.sum(axis=1) + lexp.explanation.base_values
    np.testing.assert_allclose(total, model.predict(lexp.choices), atol=1e-3)


def test_permutation_shap_matches_exact_linear_shap(fitted, data):
    """For a linear model the interventional Shapley values are known exactly."""
    ridge = load_fitted(fitted[0], "ridge")
    rows = data.cv_rows(data.target())
    x, background = data.choices[rows[:6]], data.choices[rows[-10:]]
    exact = explain(ridge, x, background, method="linear")
    permuted = explain(ridge, x, background, method="permutation")
    np.testing.assert_allclose(permuted.values, exact.values, atol=1e-8)
    np.testing.assert_allclose(permuted.explanation.base_values, exact.explanation.base_values)


def test_shap_importance_recovers_the_truly_sensitive_layers(xgb_explanation,
                                                             true_sensitivity):
    importance = xgb_explanation.importance()
    assert spearman(importance[true_sensitivity.index], true_sensitivity) > 0.8
    top_true = set(true_sensitivity.nlargest(5).index)
    assert len(top_true & set(importance.head(8).index)) >= 4


def test_importance_agrees_with_the_measured_sweep(data, xgb_explanation, true_sensitivity):
    sweep = sweep_sensitivity(data)
    assert len(sweep) == data.encoder.n_layers and (sweep["options"] == 6).all()
    # the sweep itself measures the truth (up to noise) …
    measured = sweep.set_index("layer")["loss_mean"]
    assert spearman(measured[true_sensitivity.index], true_sensitivity) > 0.8
    # … and the explanation agrees with it
    check = importance_vs_sweep(xgb_explanation.importance(), sweep)
    assert check["layers"] == data.encoder.n_layers and check["spearman"] > 0.75
    assert check["top10_overlap"] >= 0.6


def test_unknown_method_and_missing_background(fitted, data):
    ridge = load_fitted(fitted[0], "ridge")
    with pytest.raises(Qua2Error, match="unknown SHAP method"):
        explain(ridge, data.choices[:2], method="kernel")
    with pytest.raises(Qua2Error, match="background"):
        explain(ridge, data.choices[:2], method="permutation")
