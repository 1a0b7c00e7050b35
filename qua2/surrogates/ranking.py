"""Rank metrics of predictions: Spearman ρ, Kendall τ, NDCG@k and MAE.

A surrogate is used to *rank* configurations (search keeps the best ones), so rank
correlations on held-out configs are the headline numbers, as in Qua²SeDiMo (Mills et al.,
AAAI 2025), which reports Spearman ρ and Kendall τ per fold. NDCG@k (Järvelin & Kekäläinen,
2002) asks whether the truly best configs are predicted near the top; relevance is the target
rescaled to [0, 1] with 1 the best config, so it works for metrics of either direction;
it is computed by scikit-learn (:func:`sklearn.metrics.ndcg_score`).
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.metrics import ndcg_score

METRICS = ("spearman", "kendall", "ndcg@10", "mae")


def relevance(y: np.ndarray, higher_is_better: bool = True) -> np.ndarray:
    """``y`` rescaled to [0, 1], 1 for the best value (NDCG gains must be non-negative)."""
    y = np.asarray(y, dtype=np.float64)
    oriented = y if higher_is_better else -y
    span = oriented.max() - oriented.min()
    return (oriented - oriented.min()) / span if span > 0 else np.ones_like(oriented)


def ndcg_at_k(y_true: np.ndarray, y_pred: np.ndarray, k: int = 10,
              higher_is_better: bool = True) -> float:
    """NDCG@k of ranking by ``y_pred`` (best first), gains = :func:`relevance` of ``y_true``.

    scikit-learn's :func:`~sklearn.metrics.ndcg_score` with linear gains and ``1/log2(rank+1)``
    discounts; configs with *tied* predictions share their gains (McSherry & Najork, 2008), so
    the value does not depend on the order of the rows.
    """
    gains = relevance(y_true, higher_is_better)
    if len(gains) < 2:  # one config is trivially ranked right (sklearn refuses to score it)
        return 1.0
    scores = np.asarray(y_pred, dtype=np.float64)
    scores = scores if higher_is_better else -scores
    return float(ndcg_score(gains[None, :], scores[None, :], k=min(k, len(gains))))


def _correlation(fn, a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(fn(a, b).statistic)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return _correlation(stats.spearmanr, np.asarray(a), np.asarray(b))


def kendall(a: np.ndarray, b: np.ndarray) -> float:
    return _correlation(stats.kendalltau, np.asarray(a), np.asarray(b))


def rank_metrics(y_true: np.ndarray, y_pred: np.ndarray, higher_is_better: bool = True,
                 k: int = 10) -> dict[str, float]:
    """Spearman ρ, Kendall τ, NDCG@k and MAE of ``y_pred`` against ``y_true``."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    return {"spearman": spearman(y_true, y_pred), "kendall": kendall(y_true, y_pred),
            f"ndcg@{k}": ndcg_at_k(y_true, y_pred, k, higher_is_better),
            "mae": float(np.mean(np.abs(y_true - y_pred)))}
