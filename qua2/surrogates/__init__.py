"""Surrogates: predict a configuration's quality from its per-layer choices.

All surrogates are scikit-learn regressors on *choice matrices* (option index per layer, see
:class:`ConfigEncoder`) and save without pickle (:func:`load_surrogate`):

* :class:`RidgeSurrogate` — linear baseline on per-layer features;
* :class:`XGBSurrogate` — XGBoost (from a ridge base margin);
* :class:`GNNSurrogate` — GATv2/GIN on the operation graph (Qua²SeDiMo).

:func:`fit_study` with :class:`FitOptions` cross-validates (:func:`cross_validate`) and fits
them for a study (``qua2 fit``), on :func:`load_study_data`; :func:`load_fitted` reads one
back. See ``docs/surrogates.md``. Importing this package imports none of torch, xgboost or
shap.
"""

from __future__ import annotations

from qua2.lazy import lazy_exports

#: The package's public names → their defining modules, each imported on first use.
_EXPORTS = {
    "ConfigEncoder": "qua2.surrogates.encoding",
    "RidgeSurrogate": "qua2.surrogates.ridge",
    "XGBSurrogate": "qua2.surrogates.xgb",
    "GNNSurrogate": "qua2.surrogates.gnn",
    "load_surrogate": "qua2.surrogates.base",
    "cross_validate": "qua2.surrogates.cv",
    "load_study_data": "qua2.surrogates.data",
    "FitOptions": "qua2.surrogates.fit",
    "fit_study": "qua2.surrogates.fit",
    "load_fitted": "qua2.surrogates.fit",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
