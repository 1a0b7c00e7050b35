"""Views of layer attributions by op type, role, block, stage and method × bits.

Views are *groupings* of already computed SHAP values, never recomputations: a group's value
in a config is the sum of its layers' values (SHAP values are additive, so the grouped values
still add up to the prediction). This is the per-layer → op-type/block aggregation
Qua²SeDiMo (Mills et al., AAAI 2025) draws its insights from.

Labels per layer come from the operation graph (:class:`~qua2.graph.OpGraph`):

==============  ==========================================================================
``role``        the operation in Qua²SeDiMo's sense — ``self_attn.q``, ``ff.out``, ``adaln``,
                ``time_embed`` … (what the figures call *op type*)
``component``   the role's component — ``self_attn``, ``ff``, ``adaln``, ``resnet`` …
``op_type``     the graph's op type of the weight layer (``linear`` or ``conv``)
``block``       structural unit (``transformer_blocks.3``, ``down_blocks.1.resnets.0`` …)
``block_index`` order of the block in execution
``stage``       ``embed``, ``down``, ``mid``, ``up``, ``trunk`` or ``head``
==============  ==========================================================================

The ``option`` view groups each (config, layer) cell by the option the layer took in that
config (method × bits), so it shows which choices raise or lower the prediction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qua2.explain.attributions import LayerExplanation
from qua2.explain.attributions import mean_abs as mean_abs  # re-exported: one definition

if TYPE_CHECKING:
    from qua2.graph.opgraph import OpGraph

LABELS = ("role", "component", "op_type", "block", "block_index", "stage")


def layer_table(layers: Sequence[str], graph: OpGraph | None = None) -> pd.DataFrame:
    """One row per layer (index = layer name) with the label columns of :data:`LABELS`.

    Layers the graph does not know get ``other`` labels, so views never drop a layer.
    """
    index = pd.Index(list(layers), name="layer")
    columns = ["role", "op_type", "block", "block_index", "stage"]
    if graph is None:
        frame = pd.DataFrame(np.nan, index=index, columns=columns)
    else:
        nodes = graph.nodes[graph.nodes["quantizable"]].set_index("name")
        frame = nodes.reindex(index=index, columns=columns)
    for column in ("role", "op_type", "block", "stage"):
        frame[column] = frame[column].fillna("other").astype(str)
    frame["block_index"] = frame["block_index"].fillna(-1).astype(int)
    frame["component"] = frame["role"].str.split(".").str[0]
    return frame[list(LABELS)]


def group_explanation(explanation: Any, groups: Mapping[str, Any] | pd.Series,
                      order: Sequence[Any] | None = None) -> Any:
    """Sum the columns of ``explanation`` (one per layer) into one column per group label.

    ``groups`` maps every feature name to a label; ``data`` of a group is the mean of its
    layers' data (mean bit-width). Labels are ordered by ``order`` or by first appearance.
    """
    import shap

    labels = [groups[name] for name in explanation.feature_names]
    order = list(order) if order is not None else list(dict.fromkeys(labels))
    member = membership(labels, order)
    values = np.asarray(explanation.values) @ member.T
    data = explanation.data
    if data is not None:  # a group's data: the mean of its layers' data
        data = (np.asarray(data, dtype=float) @ member.T) / member.sum(axis=1)
    return shap.Explanation(values=values, base_values=explanation.base_values,
                            data=data, feature_names=[str(g) for g in order])


def membership(labels: Sequence[Any], groups: Sequence[Any]) -> np.ndarray:
    """``[G, L]`` 0/1 matrix: row ``g`` marks the layers whose label is ``groups[g]``."""
    return np.array([[label == g for label in labels] for g in groups], dtype=float)


def view(lexp: LayerExplanation, table: pd.DataFrame, by: str) -> Any:
    """The explanation grouped by a label column of ``table`` (or ``option``)."""
    if by == "option":
        return option_view(lexp)
    labels = table.reindex(lexp.layers)[by]
    order = sorted(dict.fromkeys(labels)) if by == "block_index" else None
    return group_explanation(lexp.explanation, labels, order)


def views(lexp: LayerExplanation, table: pd.DataFrame) -> dict[str, Any]:
    """Every view: :data:`LABELS` plus ``option``."""
    return {by: view(lexp, table, by) for by in (*LABELS, "option")}


def option_view(lexp: LayerExplanation) -> Any:
    """Per config, the summed SHAP of the layers that took each option (method × bits)."""
    import shap

    keys = lexp.option_keys()
    order = [o.key for o in lexp.options] + (["fp"] if (keys == "fp").any() else [])
    values = np.stack([(lexp.values * (keys == k)).sum(axis=1) for k in order], axis=1)
    counts = np.stack([(keys == k).sum(axis=1) for k in order], axis=1)
    return shap.Explanation(values=values, base_values=lexp.explanation.base_values,
                            data=counts, feature_names=order)


def option_preference(lexp: LayerExplanation, table: pd.DataFrame,
                      by: str = "role") -> pd.DataFrame:
    """Mean SHAP of a layer cell per (group, option): which method and bit-width the
    explanation favours for each op type. Long format: group, option, method, bits,
    mean_shap, cells."""
    labels = table.reindex(lexp.layers)[by].to_numpy()
    cells = pd.DataFrame({"group": np.broadcast_to(labels, lexp.values.shape).ravel(),
                          "option": lexp.option_keys().ravel(),
                          "shap": lexp.values.ravel()})
    cells = cells[cells["option"] != "fp"]
    out = cells.groupby(["group", "option"], sort=True)["shap"].agg(["mean", "size"])
    out = out.rename(columns={"mean": "mean_shap", "size": "cells"}).reset_index()
    parsed = {o.key: o for o in lexp.options}
    out["method"] = [parsed[k].method for k in out["option"]]
    out["bits"] = [parsed[k].bits for k in out["option"]]
    return out[["group", "option", "method", "bits", "mean_shap", "cells"]]
