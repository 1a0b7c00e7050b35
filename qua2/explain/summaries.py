"""A study's layer attributions, and their grouped summaries with bootstrap intervals.

:func:`study_explanation` returns the SHAP values a study holds, from the best source there is
(the chosen one is recorded in :attr:`StudyExplanation.source`):

1. ``explain/<kind>/shap_values.csv`` — what ``qua2 explain`` computed (nothing recomputed);
2. a surrogate fitted by ``qua2 fit`` (``surrogates/<kind>/``) explained exactly in memory
   (TreeSHAP for XGBoost, linear SHAP for ridge);
3. a ridge surrogate fitted here, in memory, on the random configs (+ uniform anchors), and
   explained exactly — enough for a partial study that has not reached the fit stage.

The summaries group layers by a label of :func:`~qua2.explain.grouping.layer_table` (op type,
block …) like :mod:`~qua2.explain.grouping`, and add percentile bootstrap intervals over the
explained configurations (:mod:`qua2.stats`). Those intervals are *conditional on the fitted
surrogate*: they do not include the surrogate's own fitting error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qua2.errors import Qua2Error
from qua2.explain.attributions import LayerExplanation, _bits, explain
from qua2.explain.grouping import layer_table, membership
from qua2.io import read_json
from qua2.specs import QuantOption
from qua2.stats import bootstrap, percentile_interval, ratio_means
from qua2.surrogates.registry import SURROGATES

if TYPE_CHECKING:
    from qua2.study.study import Study

#: Which explained or fitted surrogate is used when none is asked for (after the best one).
PREFERENCE = ("xgb", "ridge", "gnn")
#: Fewest random configurations a surrogate is fitted on here.
MIN_CONFIGS = 10


@dataclass
class StudyExplanation:
    """Layer attributions of a study's configs, with layer labels and where they came from."""

    explanation: LayerExplanation  # SHAP values in target units (positive = raises it)
    labels: pd.DataFrame           # per layer, in explanation order: layer_table's columns
    ids: list[str]                 # the explained configs
    target: str                    # the explained metric
    higher_is_better: bool
    source: str                    # where the values come from (for captions)

    @property
    def layers(self) -> list[str]:
        return self.explanation.layers

    @property
    def values(self) -> np.ndarray:
        """``[configs, layers]`` SHAP values oriented so that **positive means better**."""
        return self.explanation.values * (1.0 if self.higher_is_better else -1.0)


# --------------------------------------------------------------------------- sources
def study_explanation(study: Study, surrogate: str | None = None) -> StudyExplanation:
    """The study's layer attributions (see the module docstring for the sources)."""
    summary = _read_json(_file(study, "explain", "explain.json")) or {}
    explained = list(summary.get("surrogates", {}))
    report = _read_json(_file(study, "surrogates", "cv_report.json")) or {}
    fitted = list(report.get("surrogates", {}))
    for kind in _preference(surrogate, explained, report.get("best")):
        path = _file(study, "explain", kind, "shap_values.csv")
        if path.is_file() and path.stat().st_size > 0:
            target = summary.get("target", {"name": "objective", "higher_is_better": True})
            method = summary["surrogates"][kind].get("method", "?")
            return _from_csv(study, pd.read_csv(path, index_col="id"), kind, method, target,
                             f"explain/{kind}/shap_values.csv ({method} SHAP)")
    exact = [k for k in fitted if k in SURROGATES and SURROGATES[k].exact_shap]
    for kind in _preference(surrogate, exact, report.get("best")):
        return _in_memory(study, kind)
    if surrogate is not None:
        raise Qua2Error(f"{study.directory} has no SHAP values of {surrogate!r}: run `qua2 "
                        f"explain {study.directory} --surrogate {surrogate}` (after `qua2 fit`) "
                        "first.")
    return _in_memory(study, None)


def _file(study: Study, *parts: str) -> Path:
    """A path in the study directory; unlike ``Study.path``, no folder is created."""
    return Path(study.directory).joinpath(*parts)


def _read_json(path: Path) -> Any:
    return read_json(path, "re-run the stage that wrote it") if path.is_file() else None


def _preference(requested: str | None, available: list[str], best: str | None) -> list[str]:
    if requested:
        return [requested] if requested in available else []
    order = [best, *PREFERENCE, *available]
    return [k for k in dict.fromkeys(order) if k in available]


def _graph(study: Study) -> Any:
    if not _file(study, "graph.json").exists():
        return None
    from qua2.study.graph import study_graph

    return study_graph(study)


def _from_csv(study: Study, frame: pd.DataFrame, kind: str, method: str,
              target: dict[str, Any], source: str) -> StudyExplanation:
    """SHAP values ``qua2 explain`` saved, with the choices of those configs from the store."""
    import shap

    from qua2.surrogates.data import load_study_data

    data = load_study_data(study, use_error=False)  # choices only: no option statistics
    rows = {config: i for i, config in enumerate(data.ids)}
    columns = {layer: j for j, layer in enumerate(data.encoder.layers)}
    unknown = [c for c in frame.index if c not in rows] + \
        [layer for layer in frame.columns if layer not in columns]
    if unknown:
        path = _file(study, "explain", kind, "shap_values.csv")
        raise Qua2Error(f"{path} names {unknown[0]}, which the study's store does not hold; "
                        "run `qua2 explain "
                        f"{study.directory} --surrogate {kind} --force`.")
    choices = data.choices[np.ix_([rows[c] for c in frame.index],
                                  [columns[layer] for layer in frame.columns])]
    options = list(data.encoder.options)
    values = shap.Explanation(values=frame.to_numpy(dtype=float), data=_bits(choices, options),
                              feature_names=list(frame.columns))
    lexp = LayerExplanation(values, choices, options, kind, method)
    return StudyExplanation(lexp, layer_table(lexp.layers, _graph(study)), list(frame.index),
                            target["name"], target.get("higher_is_better", True), source)


def _in_memory(study: Study, kind: str | None) -> StudyExplanation:
    """Explain a fitted surrogate, or a ridge fitted here, on the study's random configs."""
    from qua2.surrogates.data import load_study_data
    from qua2.surrogates.fit import load_fitted
    from qua2.surrogates.ridge import RidgeSurrogate

    has_stats = _file(study, "surrogates", "option_stats.json").is_file() or \
        _file(study, "cache", "index.json").is_file()
    # Without option statistics the error feature is left out; the cache is never built.
    data = load_study_data(study, use_error=has_stats)
    target = data.target()
    rows = data.cv_rows(target)
    if len(rows) < MIN_CONFIGS:
        raise Qua2Error(f"{study.directory}: only {len(rows)} random configs are done; an "
                        f"attribution needs at least {MIN_CONFIGS} (run `qua2 sample DIR -n N`).")
    if kind is not None:
        model = load_fitted(study, kind)
        source = f"surrogates/{kind} (fitted by qua2 fit), explained in memory"
    else:
        train = data.mask(("random", "uniform"), target)
        model = RidgeSurrogate(encoder=data.encoder).fit(data.choices[train],
                                                         data.values(target)[train])
        source = "ridge fitted in memory on the random configs (no qua2 fit/explain output)"
    lexp = explain(model, data.choices[rows])
    return StudyExplanation(lexp, layer_table(lexp.layers, _graph(study)),
                            [data.ids[i] for i in rows], target.name, target.higher_is_better,
                            source)


# --------------------------------------------------------------------------- summaries
def group_importance(expl: StudyExplanation, by: str, rounds: int = 2000, seed: int = 0
                     ) -> pd.DataFrame:
    """Mean |Σ SHAP of the group's layers| per config, with a bootstrap 95% interval over
    configs, and the mean per layer of the group. One row per group, most important first."""
    labels = expl.labels[by].to_numpy()
    groups = list(dict.fromkeys(labels))
    member = membership(labels, groups)
    summed = np.abs(expl.values @ member.T)  # [configs, groups]
    low, high = percentile_interval(bootstrap(len(summed), lambda i: summed[i].mean(axis=0),
                                              rounds, seed))
    per_layer = np.abs(expl.values).mean(axis=0) @ member.T / member.sum(axis=1)
    frame = pd.DataFrame({"group": groups, "mean_abs_shap": summed.mean(axis=0), "lo": low,
                          "hi": high, "layers": member.sum(axis=1).astype(int),
                          "per_layer": per_layer})
    extra = expl.labels.groupby(by).first()
    for column in {"block": ("block_index", "stage"), "role": ("component",)}.get(by, ()):
        frame[column] = frame["group"].map(extra[column])
    return frame.sort_values("mean_abs_shap", ascending=False).reset_index(drop=True)


def option_preference_intervals(expl: StudyExplanation, by: str = "role", rounds: int = 2000,
                                seed: int = 0) -> pd.DataFrame:
    """Mean SHAP of a layer cell per (group, option) with bootstrap intervals over configs:
    positive = that option, on that group's layers, makes the config better than average.

    The intervals of :func:`~qua2.explain.grouping.option_preference`; long format: group,
    option, method, bits, mean_shap, lo, hi, cells.
    """
    return _preference_cells(expl, expl.labels[by].to_numpy(), rounds, seed)


def method_preference(expl: StudyExplanation, rounds: int = 2000, seed: int = 0
                      ) -> pd.DataFrame:
    """Mean SHAP of a layer cell per option over *all* layers, with bootstrap intervals."""
    everything = np.full(len(expl.layers), "all", dtype=object)
    return _preference_cells(expl, everything, rounds, seed).drop(columns="group")


def _preference_cells(expl: StudyExplanation, labels: np.ndarray, rounds: int, seed: int
                      ) -> pd.DataFrame:
    values = expl.values
    keys = expl.explanation.option_keys()
    groups = list(dict.fromkeys(labels))
    options = sorted({k for k in np.unique(keys) if k != "fp"})
    cells = [(g, o) for g in groups for o in options]
    sums = np.zeros((len(values), len(cells)))
    counts = np.zeros_like(sums)
    for j, (group, option) in enumerate(cells):
        mask = (labels == group)[None, :] & (keys == option)
        sums[:, j] = (values * mask).sum(axis=1)
        counts[:, j] = mask.sum(axis=1)
    mean, low, high = ratio_means(sums, counts, rounds, seed)
    frame = pd.DataFrame(cells, columns=["group", "option"])
    parsed = [QuantOption.parse(option) for option in frame["option"]]
    frame["method"] = [option.method for option in parsed]
    frame["bits"] = np.array([option.bits for option in parsed], dtype=int)
    frame["mean_shap"], frame["lo"], frame["hi"] = mean, low, high
    frame["cells"] = counts.sum(axis=0).astype(int)
    return frame[frame["cells"] > 0].reset_index(drop=True)
