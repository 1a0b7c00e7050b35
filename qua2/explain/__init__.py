"""Explanations of surrogate predictions: SHAP per layer choice, grouped by op type and block.

* :func:`~qua2.explain.attributions.explain` — a ``shap.Explanation`` per layer (exact
  TreeSHAP / linear SHAP, or permutation SHAP for the GNN);
* :mod:`~qua2.explain.grouping` — views by op type (role), component, block, stage and
  method × bits, by summing (never recomputing) layer values;
* :mod:`~qua2.explain.sensitivity` — the check against measured one-at-a-time sensitivity;
* :mod:`~qua2.explain.subgraphs` — Qua²SeDiMo's quantifiable sensitivity of sub-graph variants;
* :mod:`~qua2.explain.plots` — figure builders; :func:`~qua2.explain.stage.explain_study`
  writes them (``qua2 explain``).

Importing this package imports none of torch, xgboost or shap.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "explain": "qua2.explain.attributions", "LayerExplanation": "qua2.explain.attributions",
    "layer_table": "qua2.explain.grouping", "group_explanation": "qua2.explain.grouping",
    "views": "qua2.explain.grouping", "option_preference": "qua2.explain.grouping",
    "sweep_sensitivity": "qua2.explain.sensitivity",
    "importance_vs_sweep": "qua2.explain.sensitivity",
    "quantifiable_sensitivity": "qua2.explain.subgraphs",
    "explain_study": "qua2.explain.stage", "ExplainOptions": "qua2.explain.stage",
    "stage_explain": "qua2.explain.stage",
    "StudyExplanation": "qua2.explain.summaries", "study_explanation": "qua2.explain.summaries",
    "group_importance": "qua2.explain.summaries",
    "option_preference_intervals": "qua2.explain.summaries",
    "method_preference": "qua2.explain.summaries",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'qua2.explain' has no attribute {name!r}")
