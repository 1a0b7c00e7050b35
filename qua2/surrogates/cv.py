"""Honest validation of a surrogate: k-fold cross-validation and a learning curve.

Folds are drawn from the study's ``random`` rows only — the i.i.d. sample of the
configuration distribution — and every metric is computed on held-out configs that no model of
that fold saw. Rows of other kinds never appear on the test side: ``uniform`` anchors may be
added to every fold's *training* side (``train_extra``), ``sweep`` and search rows are left out
(out of distribution, or selected by a surrogate). Qua²SeDiMo (Mills et al., AAAI 2025) uses
5 folds and reports held-out Spearman ρ and Kendall τ; NDCG@10 and MAE are added here.

The learning curve refits on random subsets of each fold's training rows and scores the same
held-out fold, so it shows how many evaluated configs a study needs for a given ρ.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import KFold

from qua2.errors import Qua2Error
from qua2.surrogates.base import Surrogate
from qua2.surrogates.data import StudyData, Target
from qua2.surrogates.ranking import rank_metrics, spearman

DEFAULT_CURVE = (25, 50, 100, 150, 200)


@dataclass
class CVResult:
    """Out-of-fold predictions and metrics of one surrogate on one target."""

    name: str
    target: Target
    folds: list[dict[str, float]]
    oof: pd.DataFrame                      # id, kind, fold, y, pred (held-out only)
    seconds: float
    curve: list[dict[str, Any]] = field(default_factory=list)
    hop_spearman: list[float] | None = None  # GNN: held-out ρ(‖e_m‖, y) per hop

    @property
    def summary(self) -> dict[str, float]:
        """Mean and standard deviation over folds, and metrics of the pooled predictions."""
        frame = pd.DataFrame(self.folds)
        out = {f"{k}_mean": float(frame[k].mean()) for k in frame}
        out.update({f"{k}_std": float(frame[k].std(ddof=0)) for k in frame})
        pooled = rank_metrics(self.oof["y"], self.oof["pred"], self.target.higher_is_better)
        out.update({f"pooled_{k}": v for k, v in pooled.items()})
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"surrogate": self.name, "target": self.target.to_dict(),
                "folds": self.folds, "summary": self.summary, "seconds": self.seconds,
                "learning_curve": self.curve, "hop_spearman": self.hop_spearman,
                "n_test": len(self.oof)}


def fold_indices(n: int, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` shuffled (train, test) position splits of ``n`` rows."""
    if n < 2 * k:
        raise Qua2Error(f"{n} random configurations are too few for {k}-fold cross-validation;"
                        f" evaluate at least {2 * k} (or pass fewer folds).")
    return list(KFold(k, shuffle=True, random_state=seed).split(np.arange(n)))


def cross_validate(estimator: Surrogate, data: StudyData, target: Target, *, k: int = 5,
                   seed: int = 0, train_extra: Sequence[str] = ("uniform",),
                   curve_sizes: Sequence[int] | None = None, name: str | None = None,
                   progress: Any = None) -> CVResult:
    """k-fold CV of (clones of) ``estimator`` on ``data``'s random rows; see module docs."""
    y_all = data.values(target)
    cv_rows = data.cv_rows(target)
    extra = np.flatnonzero(data.mask(tuple(train_extra), target))  # empty without extras
    splits = fold_indices(len(cv_rows), k, seed)
    full = round(float(np.mean([len(train) for train, _ in splits])))  # folds differ by ≤ 1
    folds, parts, hops, curve = [], [], [], []
    started = time.perf_counter()
    for fold, (train_pos, test_pos) in enumerate(splits):
        train = np.concatenate([cv_rows[train_pos], extra])
        test = cv_rows[test_pos]
        model = clone(estimator).fit(data.choices[train], y_all[train])
        pred = model.predict(data.choices[test])
        folds.append(rank_metrics(y_all[test], pred, target.higher_is_better))
        parts.append(pd.DataFrame({"id": [data.ids[i] for i in test], "kind": data.kinds[test],
                                   "fold": fold, "y": y_all[test], "pred": pred}))
        if hasattr(model, "hop_norms"):
            norms = model.hop_norms(data.choices[test])
            hops.append([spearman(norms[:, m], y_all[test]) for m in range(norms.shape[1])])
        if curve_sizes:  # the fold's own fit is the curve's last point
            curve += _curve_points(estimator, data, y_all, cv_rows[train_pos], extra, test,
                                   curve_sizes, target, seed + fold, fold)
            curve.append({"fold": fold, "n_train": full, **folds[-1]})
        if progress is not None:
            progress(fold + 1, len(splits))
    return CVResult(name or estimator.kind, target, folds, pd.concat(parts, ignore_index=True),
                    time.perf_counter() - started, _summarise_curve(curve),
                    np.nanmean(hops, axis=0).tolist() if hops else None)


def _curve_points(estimator: Surrogate, data: StudyData, y_all: np.ndarray,
                  train_random: np.ndarray, extra: np.ndarray, test: np.ndarray,
                  sizes: Sequence[int], target: Target, seed: int, fold: int
                  ) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    points = []
    for size in sorted({s for s in sizes if 5 <= s < len(train_random)}):
        subset = rng.choice(train_random, size=size, replace=False)
        train = np.concatenate([subset, extra])
        model = clone(estimator).fit(data.choices[train], y_all[train])
        metrics = rank_metrics(y_all[test], model.predict(data.choices[test]),
                               target.higher_is_better)
        points.append({"fold": fold, "n_train": int(size), **metrics})
    return points


def _summarise_curve(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not points:
        return []
    frame = pd.DataFrame(points).drop(columns="fold")
    grouped = frame.groupby("n_train")
    mean, std = grouped.mean(), grouped.std(ddof=0)
    return [{"n_train": int(n), **{f"{k}_mean": float(mean.loc[n, k]) for k in mean},
             **{f"{k}_std": float(std.loc[n, k]) for k in std}} for n in mean.index]
