"""Surrogates: predict a configuration's quality from its per-layer choices.

All surrogates are scikit-learn regressors on *choice matrices* (option index per layer, see
:mod:`qua2.surrogates.encoding`) and save without pickle:

* :class:`~qua2.surrogates.ridge.RidgeSurrogate` — linear baseline on per-layer features;
* :class:`~qua2.surrogates.xgb.XGBSurrogate` — XGBoost (from a ridge base margin);
* :class:`~qua2.surrogates.gnn.GNNSurrogate` — GATv2/GIN on the operation graph (Qua²SeDiMo).

:func:`~qua2.surrogates.fit.fit_study` cross-validates and fits them for a study
(``qua2 fit``); see ``docs/surrogates.md``. Importing this package imports none of torch,
xgboost or shap.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "ConfigEncoder": "qua2.surrogates.encoding", "OptionStats": "qua2.surrogates.encoding",
    "RidgeSurrogate": "qua2.surrogates.ridge", "XGBSurrogate": "qua2.surrogates.xgb",
    "GNNSurrogate": "qua2.surrogates.gnn", "load_surrogate": "qua2.surrogates.base",
    "cross_validate": "qua2.surrogates.cv", "rank_metrics": "qua2.surrogates.ranking",
    "load_study_data": "qua2.surrogates.data", "fit_study": "qua2.surrogates.fit",
    "FitOptions": "qua2.surrogates.fit", "stage_fit": "qua2.surrogates.fit",
    "load_fitted": "qua2.surrogates.fit",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'qua2.surrogates' has no attribute {name!r}")
