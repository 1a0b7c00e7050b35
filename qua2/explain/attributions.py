"""SHAP attributions of a surrogate's predictions to the per-layer choices of a config.

SHAP values (Lundberg & Lee, NeurIPS 2017) split a prediction ``f(x)`` into a base value
(the expected prediction) plus one additive share per feature. Here the *players* are the
quantizable layers, so the result is a ``shap.Explanation`` of shape ``[configs, layers]``
with layer names as feature names and, as ``data``, each layer's bit-width in that config
(16 in full precision), which colours beeswarm plots.

* XGBoost: exact TreeSHAP (Lundberg et al., Nat. Mach. Intell. 2020) per feature — plus exact
  linear SHAP of its ridge base margin — summed over each layer's features (bits, method,
  error). Summing is exact for the per-feature values' additivity; it is the usual way to
  report a group of features.
* Ridge: exact linear SHAP, summed per layer.
* Any other surrogate (the GNN): model-agnostic permutation SHAP
  (:mod:`qua2.explain.permutation`, antithetic permutations) directly over the per-layer
  *choice* features, with an interventional background of evaluated configs: a layer not yet
  switched takes its choice from each background config in turn.

Positive values mean the layer's choice raised the predicted target above the base value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from qua2.errors import Qua2Error
from qua2.specs import QuantOption
from qua2.surrogates.encoding import FP_BITS, FP_CHOICE
from qua2.surrogates.registry import get_surrogate

if TYPE_CHECKING:
    from qua2.surrogates.base import Surrogate


@dataclass
class LayerExplanation:
    """Layer attributions with the choices they explain."""

    explanation: Any            # shap.Explanation [N, L]; feature_names = layers
    choices: np.ndarray         # [N, L] option index (-1: full precision)
    options: list[QuantOption]
    surrogate: str
    method: str                 # "tree", "linear" or "permutation"

    @property
    def layers(self) -> list[str]:
        return list(self.explanation.feature_names)

    @property
    def values(self) -> np.ndarray:
        return np.asarray(self.explanation.values)

    def importance(self) -> Any:
        """Mean |SHAP| per layer (a pandas Series, descending)."""
        return mean_abs(self.explanation)

    def option_keys(self) -> np.ndarray:
        """``[N, L]`` option key of every cell (``fp`` in full precision)."""
        return _per_cell([o.key for o in self.options] + ["fp"], self.choices, object)


def mean_abs(explanation: Any) -> Any:
    """Mean |SHAP| per feature of an explanation (a pandas Series, descending)."""
    import pandas as pd

    values = np.abs(np.asarray(explanation.values)).mean(axis=0)
    return pd.Series(values, index=list(explanation.feature_names),
                     name="mean_abs_shap").sort_values(ascending=False)


def _per_cell(table: list[Any], choices: np.ndarray, dtype: Any) -> np.ndarray:
    """``table`` (one entry per option, then the full-precision one) of every choice cell."""
    return np.array(table, dtype=dtype)[np.where(choices == FP_CHOICE, len(table) - 1, choices)]


def _bits(choices: np.ndarray, options: list[QuantOption]) -> np.ndarray:
    return _per_cell([o.bits for o in options] + [FP_BITS], choices, np.float64)


def _per_layer(values: np.ndarray, feature_layer: np.ndarray, n_layers: int) -> np.ndarray:
    out = np.zeros((len(values), n_layers))
    np.add.at(out.T, feature_layer, values.T)
    return out


def explain(model: Surrogate, choices: np.ndarray, background: np.ndarray | None = None, *,
            method: str = "auto", max_evals: int | None = None, seed: int = 0
            ) -> LayerExplanation:
    """SHAP values of ``model`` for the configs ``choices`` ``[N, L]``, one per layer.

    ``background`` (a choice matrix of evaluated configs) is required by the permutation
    explainer; ``method`` is ``auto`` (exact when the model allows it), ``tree``, ``linear``
    or ``permutation``. ``max_evals`` sets how many permutation paths (of ``L + 1`` steps)
    the permutation explainer walks per explained config (default: one antithetic pair).
    """
    import shap

    encoder = model.checked_encoder()
    choices = encoder.check(choices)
    if method == "auto":
        method = get_surrogate(model.kind).shap
    if method == "tree":
        values, base = model.shap_values(choices)
        values = _per_layer(values, encoder.feature_layer, encoder.n_layers)
    elif method == "linear":
        background = choices if background is None else background
        values = _per_layer(model.feature_contributions(choices, background),
                            encoder.feature_layer, encoder.n_layers)
        base = np.full(len(choices), float(model.predict(background).mean()))
    elif method == "permutation":
        values, base = _permutation(model, choices, background, max_evals, seed)
    else:
        raise Qua2Error(f"unknown SHAP method {method!r}; use auto, tree, linear or "
                        "permutation.")
    explanation = shap.Explanation(values=values, base_values=base,
                                   data=_bits(choices, encoder.options),
                                   feature_names=list(encoder.layers))
    return LayerExplanation(explanation, choices, list(encoder.options), model.kind, method)


def _permutation(model: Surrogate, choices: np.ndarray, background: np.ndarray | None,
                 max_evals: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from qua2.explain.permutation import permutation_shap

    if background is None or len(background) == 0:
        raise Qua2Error("the permutation explainer needs a background set of evaluated "
                        "configurations (a choice matrix).")
    pairs = max(1, (max_evals or 0) // (2 * (choices.shape[1] + 1)))
    return permutation_shap(model.predict, choices, np.asarray(background),
                            permutations=pairs, seed=seed)
