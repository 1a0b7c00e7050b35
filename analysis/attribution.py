"""Per-layer attributions (SHAP values) of a study, from the files ``qua2 explain`` wrote
when they exist, otherwise computed in memory from the study's store.

Sources, in order of preference (the chosen one is recorded in :attr:`Attribution.source`):

1. ``explain/<kind>/shap_values.csv`` — what ``qua2 explain`` computed (nothing recomputed);
2. a surrogate fitted by ``qua2 fit`` (``surrogates/<kind>/``) explained exactly in memory
   (TreeSHAP for XGBoost, linear SHAP for ridge);
3. a ridge surrogate fitted here, in memory, on the random configs (+ uniform anchors), and
   explained exactly — enough for a partial study that has not reached the fit stage.

Values are in the units of the explained target; :attr:`Attribution.values` is flipped where
needed so that **positive always means better** (higher objective / lower FID).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.common import StudyDir, bootstrap, interval, weighted_means
from qua2.errors import Qua2Error

EXACT = ("xgb", "ridge")


@dataclass
class Attribution:
    """SHAP values ``[configs × layers]`` with the options those configs took."""

    values: pd.DataFrame     # index: config id; columns: layers; positive = better
    options: pd.DataFrame    # same shape: option key per cell (``fp`` in full precision)
    labels: pd.DataFrame     # per layer: role, component, op_type, block, block_index, stage
    source: str              # where the values come from (for captions)
    target: str              # the explained metric

    @property
    def layers(self) -> list[str]:
        return list(self.values.columns)


def load_attribution(sd: StudyDir, surrogate: str | None = None) -> Attribution:
    """The study's layer attributions (see the module docstring for the sources)."""
    summary = sd.read_json("explain", "explain.json") or {}
    explained = list(summary.get("surrogates", {}))
    report = sd.read_json("surrogates", "cv_report.json") or {}
    fitted = list(report.get("surrogates", {}))
    for kind in _preference(surrogate, explained, report.get("best")):
        frame = sd.read_csv("explain", kind, "shap_values.csv", index_col="id")
        if frame is not None:
            target = summary.get("target", {"name": "objective", "higher_is_better": True})
            return _from_values(sd, frame, f"explain/{kind}/shap_values.csv "
                                f"({summary['surrogates'][kind].get('method', '?')} SHAP)",
                                target)
    for kind in _preference(surrogate, [k for k in fitted if k in EXACT], report.get("best")):
        return _in_memory(sd, kind)
    if surrogate is not None:
        raise Qua2Error(f"{sd.directory} has no SHAP values of {surrogate!r}: run `qua2 explain "
                        f"{sd.directory} --surrogate {surrogate}` (after `qua2 fit`) first.")
    return _in_memory(sd, None)


def _preference(requested: str | None, available: list[str], best: str | None) -> list[str]:
    if requested:
        return [requested] if requested in available else []
    order = [best, "xgb", "ridge", "gnn", *available]
    return [k for k in dict.fromkeys(order) if k in available]


def _from_values(sd: StudyDir, frame: pd.DataFrame, source: str,
                 target: dict[str, Any]) -> Attribution:
    sign = 1.0 if target.get("higher_is_better", True) else -1.0
    rows = sd.frame.set_index("id").reindex(frame.index).reset_index()
    options = sd.option_keys(rows).reindex(columns=frame.columns)
    labels = sd.layer_labels.reindex(frame.columns)
    return Attribution(frame * sign, options, labels, source, target["name"])


def _in_memory(sd: StudyDir, kind: str | None) -> Attribution:
    """Explain a fitted surrogate, or a ridge fitted here, on the study's random configs."""
    from qua2.explain import explain
    from qua2.surrogates import RidgeSurrogate, load_fitted, load_study_data

    has_stats = (sd.directory / "surrogates" / "option_stats.json").is_file() or \
        (sd.directory / "cache" / "index.json").is_file()
    # Without option statistics the error feature is left out; the cache is never built.
    data = load_study_data(sd.study, use_error=has_stats)
    target = data.target()
    rows = data.cv_rows(target)
    if len(rows) < 10:
        raise Qua2Error(f"{sd.directory}: only {len(rows)} random configs are done; an "
                        "attribution needs at least 10 (run `qua2 sample DIR -n N`).")
    if kind is not None:
        model = load_fitted(sd.study, kind)
        source = f"surrogates/{kind} (fitted by qua2 fit), explained in memory"
    else:
        train = data.mask(("random", "uniform"), target)
        model = RidgeSurrogate(encoder=data.encoder).fit(data.choices[train],
                                                         data.values(target)[train])
        source = "ridge fitted in memory on the random configs (no qua2 fit/explain output)"
    lexp = explain(model, data.choices[rows])
    ids = [data.ids[i] for i in rows]
    frame = pd.DataFrame(lexp.values, index=pd.Index(ids, name="id"), columns=lexp.layers)
    return _from_values(sd, frame, source, target.to_dict())


# --------------------------------------------------------------------------- groupings
def group_importance(att: Attribution, by: str, rounds: int = 2000, seed: int = 0
                     ) -> pd.DataFrame:
    """Mean |Σ SHAP of the group's layers| per config, with a bootstrap 95% interval over
    configs, and the mean per layer of the group. One row per group, most important first."""
    labels = att.labels[by].to_numpy()
    groups = list(dict.fromkeys(labels))
    member = np.array([[label == g for label in labels] for g in groups], dtype=float)
    summed = np.abs(att.values.to_numpy() @ member.T)  # [configs, groups]
    samples = bootstrap(len(summed), lambda i: summed[i].mean(axis=0), rounds, seed)
    low, high = interval(samples)
    per_layer = np.abs(att.values.to_numpy()).mean(axis=0) @ member.T / member.sum(axis=1)
    frame = pd.DataFrame({"group": groups, "mean_abs_shap": summed.mean(axis=0), "lo": low,
                          "hi": high, "layers": member.sum(axis=1).astype(int),
                          "per_layer": per_layer})
    extra = att.labels.groupby(by).first()
    for column in {"block": ("block_index", "stage"), "role": ("component",)}.get(by, ()):
        frame[column] = frame["group"].map(extra[column])
    return frame.sort_values("mean_abs_shap", ascending=False).reset_index(drop=True)


def option_preference(att: Attribution, by: str = "role", rounds: int = 2000,
                      seed: int = 0) -> pd.DataFrame:
    """Mean SHAP of a layer cell per (group, option) with bootstrap intervals over configs:
    positive = that option, on that op type, makes the config better than average."""
    labels = att.labels[by].to_numpy()
    values = att.values.to_numpy()
    keys = att.options.to_numpy()
    groups = list(dict.fromkeys(labels))
    options = sorted({k for k in np.unique(keys) if k != "fp"})
    cells = [(g, o) for g in groups for o in options]
    sums = np.zeros((len(values), len(cells)))
    counts = np.zeros_like(sums)
    for j, (group, option) in enumerate(cells):
        mask = (labels == group)[None, :] & (keys == option)
        sums[:, j] = (values * mask).sum(axis=1)
        counts[:, j] = mask.sum(axis=1)
    mean, low, high = weighted_means(sums, counts, rounds, seed)
    frame = pd.DataFrame(cells, columns=["group", "option"])
    frame["method"] = frame["option"].str.rsplit("-w", n=1).str[0]
    frame["bits"] = frame["option"].str.extract(r"-w(\d+)")[0].astype(int)
    frame["mean_shap"], frame["lo"], frame["hi"] = mean, low, high
    frame["cells"] = counts.sum(axis=0).astype(int)
    return frame[frame["cells"] > 0].reset_index(drop=True)


def method_preference(att: Attribution, rounds: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Mean SHAP of a layer cell per option over *all* layers (``by`` everything)."""
    labels = att.labels.assign(everything="all")
    whole = Attribution(att.values, att.options, labels, att.source, att.target)
    return option_preference(whole, "everything", rounds, seed).drop(columns="group")
