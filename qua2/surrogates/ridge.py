"""A linear (ridge) baseline on the per-layer features.

If quality were an additive function of per-layer damage, a linear model on per-layer bits,
method and error would be all one needs; the gap between this baseline and the XGBoost and GNN
surrogates shows what the non-linear models add (interactions, saturation of FID). The ridge
penalty is chosen by exact leave-one-out cross-validation over a log grid — scikit-learn's
:class:`~sklearn.linear_model.RidgeCV`, which computes the LOO error of every penalty at once
from one decomposition of the standardised features (Golub, Heath & Wahba, 1979: the LOO
residual of a linear smoother is ``r_i / (1 − H_ii)``), with an unpenalised intercept; the
fitted coefficients are folded back to the raw feature scale and saved as JSON.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import RidgeCV

from qua2.surrogates.base import Surrogate
from qua2.surrogates.encoding import ConfigEncoder


class RidgeSurrogate(Surrogate):
    """Ridge regression on per-layer features; ``alphas`` is the grid the penalty comes from."""

    kind = "ridge"

    def __init__(self, encoder: ConfigEncoder | None = None,
                 alphas: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0),
                 random_state: int | None = None) -> None:
        self.encoder = encoder
        self.alphas = alphas
        self.random_state = random_state  # unused (deterministic); kept for a uniform API

    def _fit_scaled(self, x: np.ndarray, y: np.ndarray) -> None:
        features = self.checked_encoder().features(x)
        mean, std = features.mean(axis=0), features.std(axis=0)
        std[std == 0] = 1.0
        # Mean squared LOO error (scoring=None), the first of equally good penalties.
        ridge = RidgeCV(alphas=self.alphas).fit((features - mean) / std, y - y.mean())
        self.alpha_ = float(ridge.alpha_)
        self.coef_ = ridge.coef_ / std
        self.intercept_ = float(y.mean() - (self.coef_ * mean).sum())

    def _predict_scaled(self, x: np.ndarray) -> np.ndarray:
        return self.checked_encoder().features(x) @ self.coef_ + self.intercept_

    def feature_contributions(self, x: np.ndarray, background: np.ndarray) -> np.ndarray:
        """Exact SHAP values of the linear model with independent features, in target units:
        ``coef_j · (x_j − E[x_j])`` (Lundberg & Lee, 2017, linear case)."""
        encoder = self.checked_encoder()
        mean = encoder.features(background).mean(axis=0)
        return (encoder.features(x) - mean) * self.coef_ * self.y_scale_

    def _state(self) -> dict[str, Any]:
        return {"alpha_": self.alpha_, "coef_": self.coef_.tolist(),
                "intercept_": self.intercept_}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.alpha_ = state["alpha_"]
        self.coef_ = np.asarray(state["coef_"], dtype=np.float64)
        self.intercept_ = state["intercept_"]

