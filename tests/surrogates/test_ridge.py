"""The ridge baseline: its penalty is the one with the lowest exact leave-one-out error."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from qua2.surrogates.ridge import RidgeSurrogate


def test_penalty_and_coefficients_are_the_brute_force_leave_one_out_choice(data):
    rows = data.cv_rows(data.target())[:60]
    x, y = data.choices[rows], data.values(data.target())[rows]
    model = RidgeSurrogate(data.encoder).fit(x, y)
    # The same standardisation as the surrogate, then n refits per penalty.
    features = data.encoder.features(x)
    mean, std = features.mean(axis=0), features.std(axis=0)
    std[std == 0] = 1.0
    z, target = (features - mean) / std, (y - y.mean()) / y.std()
    errors = []
    for alpha in model.alphas:
        residuals = [target[i] - Ridge(alpha=alpha).fit(np.delete(z, i, 0), np.delete(target, i))
                     .predict(z[i:i + 1])[0] for i in range(len(target))]
        errors.append(np.mean(np.square(residuals)))
    assert model.alpha_ == model.alphas[int(np.argmin(errors))]
    full = Ridge(alpha=model.alpha_).fit(z, target)
    # RidgeCV's closed form and a direct solve round differently: equal to ~1e-12
    assert model.coef_ * std == pytest.approx(full.coef_, abs=1e-9)
    assert model.predict(x) == pytest.approx((z @ full.coef_ + full.intercept_) * y.std()
                                             + y.mean(), rel=1e-9)
