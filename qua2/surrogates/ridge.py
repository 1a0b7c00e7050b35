"""A linear (ridge) baseline on the per-layer features.

If quality were an additive function of per-layer damage, a linear model on per-layer bits,
method and error would be all one needs; the gap between this baseline and the XGBoost and GNN
surrogates shows what the non-linear models add (interactions, saturation of FID). The ridge
penalty is chosen by exact leave-one-out cross-validation over a log grid, computed for every
penalty at once from one SVD of the standardised features (Golub, Heath & Wahba, 1979: the
LOO residual of a linear smoother is ``r_i / (1 − H_ii)``); the fitted coefficients are folded
back to the raw feature scale and saved as JSON.
"""

from __future__ import annotations

from typing import Any

import numpy as np

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
        features = self._encoder().features(x)
        mean, std = features.mean(axis=0), features.std(axis=0)
        std[std == 0] = 1.0
        alpha, coef = ridge_loo((features - mean) / std, y - y.mean(), self.alphas)
        self.alpha_ = alpha
        self.coef_ = coef / std
        self.intercept_ = float(y.mean() - (self.coef_ * mean).sum())

    def _predict_scaled(self, x: np.ndarray) -> np.ndarray:
        return self._encoder().features(x) @ self.coef_ + self.intercept_

    def feature_contributions(self, x: np.ndarray, background: np.ndarray) -> np.ndarray:
        """Exact SHAP values of the linear model with independent features, in target units:
        ``coef_j · (x_j − E[x_j])`` (Lundberg & Lee, 2017, linear case)."""
        encoder = self._encoder()
        mean = encoder.features(background).mean(axis=0)
        return (encoder.features(x) - mean) * self.coef_ * self.y_scale_

    def _state(self) -> dict[str, Any]:
        return {"alpha_": self.alpha_, "coef_": self.coef_.tolist(),
                "intercept_": self.intercept_}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.alpha_ = state["alpha_"]
        self.coef_ = np.asarray(state["coef_"], dtype=np.float64)
        self.intercept_ = state["intercept_"]


def ridge_loo(x: np.ndarray, y: np.ndarray, alphas: tuple[float, ...]
              ) -> tuple[float, np.ndarray]:
    """The penalty with the lowest exact leave-one-out error, and its coefficients.

    ``x`` and ``y`` are centred, so the intercept is unpenalised; the LOO residuals of every
    penalty follow from one thin SVD ``x = U S Vᵀ``: ``H = U diag(s²/(s²+α)) Uᵀ``, plus
    ``1/n`` for the intercept.
    """
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    uty = u.T @ y
    n = len(y)
    best: tuple[float, float] | None = None
    for alpha in alphas:
        shrink = s**2 / (s**2 + alpha)
        residual = y - u @ (shrink * uty)
        leverage = (u**2 @ shrink) + 1.0 / n
        error = float(np.mean((residual / np.maximum(1.0 - leverage, 1e-12)) ** 2))
        if best is None or error < best[0]:
            best = (error, float(alpha))
    assert best is not None
    alpha = best[1]
    return alpha, vt.T @ (s / (s**2 + alpha) * uty)
