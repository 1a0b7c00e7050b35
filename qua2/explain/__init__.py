"""Explanations of surrogate predictions: SHAP per layer choice, grouped by op type and block.

* :func:`explain` — a :class:`LayerExplanation` (``shap.Explanation`` per layer: exact
  TreeSHAP / linear SHAP, or permutation SHAP for the GNN);
* :func:`layer_table`, :func:`views`, :func:`option_preference` — views by op type (role),
  component, block, stage and method × bits, by summing (never recomputing) layer values;
* :func:`study_explanation` — a study's attributions from the best source it holds, as a
  :class:`StudyExplanation`; :func:`group_importance` and the other summaries of
  :mod:`~qua2.explain.summaries` add bootstrap intervals;
* :func:`explain_study` with :class:`ExplainOptions` writes the figures (``qua2 explain``).

Also here: :mod:`~qua2.explain.sensitivity` (the check against measured one-at-a-time
sensitivity), :mod:`~qua2.explain.subgraphs` (Qua²SeDiMo's quantifiable sensitivity of
sub-graph variants), :mod:`~qua2.explain.plots` (figure builders).
Importing this package imports none of torch, xgboost or shap.
"""

from __future__ import annotations

from qua2.lazy import lazy_exports

#: The package's public names → their defining modules, each imported on first use.
_EXPORTS = {
    "explain": "qua2.explain.attributions",
    "LayerExplanation": "qua2.explain.attributions",
    "layer_table": "qua2.explain.grouping",
    "views": "qua2.explain.grouping",
    "option_preference": "qua2.explain.grouping",
    "study_explanation": "qua2.explain.summaries",
    "StudyExplanation": "qua2.explain.summaries",
    "group_importance": "qua2.explain.summaries",
    "explain_study": "qua2.explain.stage",
    "ExplainOptions": "qua2.explain.stage",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
