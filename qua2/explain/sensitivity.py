"""Check an explanation against measurement: SHAP layer importance vs one-at-a-time sweeps.

The sweep (``qua2 sweep``; MixDQ, Zhao et al., ECCV 2024) quantizes one layer at a time, all
others in full precision, and measures the quality loss directly. It is an independent,
model-free estimate of each layer's sensitivity, so the rank correlation between a layer's
mean |SHAP| (from random mixed configs) and its measured sweep loss tells whether the
explanation is telling the truth. They need not agree perfectly — the sweep measures a
layer's effect next to an FP network, SHAP its average effect among quantized neighbours —
but a low correlation is a warning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qua2.io import read_json_object, rerun_stage
from qua2.surrogates.data import StudyData, Target
from qua2.surrogates.ranking import kendall, spearman

if TYPE_CHECKING:
    from qua2.study.study import Study


def sweep_sensitivity(data: StudyData, target: Target | None = None,
                      fp_value: float | None = None) -> pd.DataFrame:
    """Measured quality loss per layer from the ``sweep`` rows (empty without any).

    ``loss`` is ``oriented(FP) − oriented(sweep)`` where ``oriented`` flips lower-is-better
    metrics, so a larger loss is a more sensitive layer. Default target: the study's primary
    metric (the quality part of the objective; the bits penalty would only add a constant per
    option). Columns: layer, loss_mean (over options), loss_low (at the lowest bit-width),
    options.
    """
    target = target or data.target(data.primary)
    rows = np.flatnonzero(data.mask(("sweep",), target))
    if len(rows) == 0:
        return pd.DataFrame(columns=["layer", "loss_mean", "loss_low", "options"])
    values = data.values(target)[rows]
    oriented = values if target.higher_is_better else -values
    reference = oriented.max() if fp_value is None else \
        (fp_value if target.higher_is_better else -fp_value)
    indices = [int(i) for i in rows]
    layers = [data.tags[i].get("layer") or _only_layer(data, i) for i in indices]
    bits = [_bits_of(data, i) for i in indices]
    frame = pd.DataFrame({"layer": layers, "loss": reference - oriented, "bits": bits})
    low = frame["bits"] == frame["bits"].min()
    out = frame.groupby("layer", sort=False).agg(loss_mean=("loss", "mean"),
                                                 options=("loss", "size"))
    out["loss_low"] = frame[low].groupby("layer", sort=False)["loss"].mean()
    return out.reset_index()[["layer", "loss_mean", "loss_low", "options"]]


def _only_layer(data: StudyData, row: int) -> str | None:
    quantized = np.flatnonzero(data.choices[row] >= 0)
    return data.encoder.layers[quantized[0]] if len(quantized) == 1 else None


def _bits_of(data: StudyData, row: int) -> int:
    chosen = data.choices[row][data.choices[row] >= 0]
    return min(data.encoder.options[c].bits for c in chosen) if len(chosen) else 16


def fp_metric(study: Study, name: str) -> float | None:
    """The FP reference's value of metric ``name`` (``reference/fp_metrics.json``), if any."""
    path = study.path("reference", "fp_metrics.json")
    if not path.exists():
        return None
    value = read_json_object(path, rerun_stage(study.directory, "reference")).get(name)
    return float(value) if value is not None and np.isfinite(value) else None


def importance_vs_sweep(importance: pd.Series, sweep: pd.DataFrame,
                        column: str = "loss_mean", top: int = 10) -> dict[str, Any]:
    """Spearman ρ and Kendall τ between mean |SHAP| per layer and the measured sweep loss,
    and the overlap of their top-``top`` layers."""
    joined = sweep.set_index("layer")[column].to_frame("measured").join(
        importance.rename("shap"), how="inner").dropna()
    if len(joined) < 3:
        return {"layers": len(joined), "spearman": None, "kendall": None,
                f"top{top}_overlap": None}
    k = min(top, len(joined))
    top_shap = set(joined["shap"].nlargest(k).index)
    top_sweep = set(joined["measured"].nlargest(k).index)
    return {"layers": len(joined), "spearman": spearman(joined["shap"], joined["measured"]),
            "kendall": kendall(joined["shap"], joined["measured"]),
            f"top{top}_overlap": len(top_shap & top_sweep) / k}
