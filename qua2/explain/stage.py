"""The ``explain`` stage: SHAP views, sensitivity checks and figures for a fitted study.

Everything goes to ``<study>/explain/``; every PNG has a CSV of the data behind it::

    predicted_vs_measured.png/.csv   held-out predictions of every surrogate (from qua2 fit)
    learning_curve.png/.csv          held-out ρ vs training configs
    pareto.png/.csv                  average bits vs quality of every evaluated config
    explain.json                     summary: per surrogate, SHAP method, importance vs sweep,
                                     top layers and op types
    <surrogate>/
      shap_values.csv                SHAP value per (config, layer)
      layer_importance.csv           mean |SHAP| per layer with labels and sweep loss
      beeswarm.png/.csv              top layers
      importance_by_group.png/.csv   mean |SHAP| per op type, component, block, stage …
      option_preference.png/.csv     mean SHAP per (op type, method × bits)
      importance_vs_sweep.png/.csv   mean |SHAP| vs measured one-at-a-time loss
      subgraph_scores.csv            quantifiable sensitivity of every sub-graph variant
      sensitivity_boxes.png/.csv     its summary by block index and op type
      best_variants.png/.csv         the top variant of every sub-graph and its option mix
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qua2.errors import Qua2Error
from qua2.explain import plots
from qua2.explain.attributions import LayerExplanation, explain
from qua2.explain.grouping import LABELS, layer_table, mean_abs, option_preference, views
from qua2.explain.sensitivity import fp_metric, importance_vs_sweep, sweep_sensitivity
from qua2.explain.subgraphs import best_variants, quantifiable_sensitivity, summarise
from qua2.io import read_json_object, read_json_object_or_none, rerun_stage
from qua2.log import say
from qua2.plots import pareto_figure, pareto_front, save_figure
from qua2.surrogates.data import StudyData, load_study_data
from qua2.surrogates.fit import digest, load_fitted
from qua2.surrogates.registry import get_surrogate

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from qua2.graph.opgraph import OpGraph
    from qua2.study.stages import RunOptions
    from qua2.study.study import Study
    from qua2.surrogates.base import Surrogate


@dataclass
class ExplainOptions:
    """What ``qua2 explain`` does; every field has a command-line flag."""

    surrogates: tuple[str, ...] | None = None  # None: the best fitted one (by held-out ρ)
    max_configs: int = 300        # configs explained by exact (tree/linear) SHAP
    max_configs_permutation: int = 48  # … by permutation SHAP (GNN)
    background: int = 24          # background configs (permutation SHAP, partial dependence)
    max_variants: int = 1296      # sub-graph variants scored per sub-graph (6⁴)
    top: int = 20                 # layers in the beeswarm
    seed: int = 0
    force: bool = False           # recompute even if explain.json is up to date


def explain_study(study: Study, options: ExplainOptions | None = None
                  ) -> dict[str, LayerExplanation]:
    """Explain the study's fitted surrogates; write figures, CSVs and ``explain.json``."""
    options = options or ExplainOptions()
    report = _fit_report(study)
    kinds = list(options.surrogates or [report["best"]])
    missing = [k for k in kinds if k not in report["surrogates"]]
    if missing:
        raise Qua2Error(f"surrogate {missing[0]!r} is not fitted for this study; run `qua2 fit "
                        f"{study.directory} --surrogate {missing[0]}` first.")
    data = load_study_data(study)
    path = study.path("explain", "explain.json")
    # what an earlier run explained; a damaged file only means recomputing it
    previous = read_json_object_or_none(path, "it is computed again") or {}
    entries = previous.get("surrogates", {}) if previous.get("target") == report["target"] \
        else {}
    fingerprints = {k: _fingerprint(report, k, options, data.ids) for k in kinds}
    todo = [k for k in kinds
            if options.force or entries.get(k, {}).get("fingerprint") != fingerprints[k]]
    for kind in sorted(set(kinds) - set(todo)):
        say(f"explain: {kind} is up to date in {path.parent / kind}; --force recomputes")
    if not todo:
        return {}
    from qua2.study.graph import study_graph

    graph = study_graph(study)
    table = layer_table(data.encoder.layers, graph)
    out = path.parent
    _study_figures(study, data, report, out)
    sweep = sweep_sensitivity(data, fp_value=fp_metric(study, data.primary))
    explanations = {}
    for kind in todo:
        model = load_fitted(study, kind)
        lexp, info = _explain_one(model, data, table, graph, sweep, report, options,
                                  out / kind)
        explanations[kind] = lexp
        entries[kind] = {**info, "fingerprint": fingerprints[kind]}
        rho = info["importance_vs_sweep"].get("spearman")
        say(f"explain: {kind} ({lexp.method} SHAP on {len(lexp.choices)} configs); "
            f"importance vs sweep ρ = {'n/a' if rho is None else f'{rho:.3f}'} → {out / kind}")
    path.write_text(json.dumps({"target": report["target"], "surrogates": entries}, indent=1,
                               default=_json))
    return explanations


def _fingerprint(report: dict[str, Any], kind: str, options: ExplainOptions,
                 ids: list[str]) -> str:
    """Changes when the fit, the rows (new sweep or search rows) or the options change."""
    import dataclasses

    return digest({"fit": report["surrogates"][kind].get("fingerprint"), "rows": sorted(ids),
                   "options": {k: v for k, v in dataclasses.asdict(options).items()
                               if k not in ("force", "surrogates")}})


def _json(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)


def _fit_report(study: Study) -> dict[str, Any]:
    path = study.path("surrogates", "cv_report.json")
    if not path.exists():
        raise Qua2Error(f"{study.directory} has no fitted surrogates; run `qua2 fit "
                        f"{study.directory}` first.")
    return read_json_object(path, rerun_stage(study.directory, "fit"))


# --------------------------------------------------------------------------- per surrogate
def _rows(data: StudyData, count: int, rng: np.random.Generator) -> np.ndarray:
    rows = data.cv_rows(data.target())
    return np.sort(rng.choice(rows, size=min(count, len(rows)), replace=False))


def _explain_one(model: Surrogate, data: StudyData, table: pd.DataFrame, graph: OpGraph,
                 sweep: pd.DataFrame, report: dict[str, Any], options: ExplainOptions,
                 folder: Path) -> tuple[LayerExplanation, dict[str, Any]]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(options.seed)
    exact = get_surrogate(model.kind).exact_shap
    rows = _rows(data, options.max_configs if exact else options.max_configs_permutation, rng)
    background = data.choices[_rows(data, options.background, rng)]
    lexp = explain(model, data.choices[rows], background, seed=options.seed)
    ids = [data.ids[i] for i in rows]
    pd.DataFrame(lexp.values, index=pd.Index(ids, name="id"), columns=lexp.layers) \
        .to_csv(folder / "shap_values.csv")
    importance = lexp.importance()
    layers = table.join(importance).join(sweep.set_index("layer")).reset_index()
    layers.sort_values("mean_abs_shap", ascending=False).to_csv(
        folder / "layer_importance.csv", index=False)
    grouped = _group_figures(lexp, table, options, folder)
    check = _sweep_check(importance, sweep, table, folder)
    hop_weights = report["surrogates"].get(model.kind, {}).get("hop_spearman")
    scoring = _subgraph_figures(model, graph, background, hop_weights, options, folder)
    info = {"method": lexp.method, "configs": len(rows), "background": len(background),
            "subgraph_scores": scoring,
            "importance_vs_sweep": check,
            "top_layers": importance.head(10).round(6).to_dict(),
            "top_op_types": grouped["role"].head(10).round(6).to_dict()}
    return lexp, info


def _group_figures(lexp: LayerExplanation, table: pd.DataFrame, options: ExplainOptions,
                   folder: Path) -> dict[str, pd.Series]:
    _save(plots.beeswarm_figure(lexp, table, options.top), folder / "beeswarm.png",
          _beeswarm_data(lexp, options.top))
    grouped = {name: mean_abs(v) for name, v in views(lexp, table).items()}
    frame = pd.concat([s.rename_axis("group").reset_index().assign(view=name)
                       for name, s in grouped.items()], ignore_index=True)
    panels = {k: grouped[k] for k in ("role", "component", "block")}
    _save(plots.importance_bars_figure(panels, table), folder / "importance_by_group.png",
          frame[["view", "group", "mean_abs_shap"]])
    preference = option_preference(lexp, table, "role")
    _save(plots.option_preference_figure(preference), folder / "option_preference.png",
          preference)
    return grouped


def _beeswarm_data(lexp: LayerExplanation, top: int) -> pd.DataFrame:
    chosen = list(lexp.importance().head(top).index)
    column = {name: i for i, name in enumerate(lexp.layers)}
    keys = lexp.option_keys()
    return pd.DataFrame([{"layer": layer, "config": i, "shap": lexp.values[i, column[layer]],
                          "bits": lexp.explanation.data[i, column[layer]],
                          "option": keys[i, column[layer]]}
                         for layer in chosen for i in range(len(lexp.values))])


def _sweep_check(importance: pd.Series, sweep: pd.DataFrame, table: pd.DataFrame,
                 folder: Path) -> dict[str, Any]:
    stats = importance_vs_sweep(importance, sweep)
    if stats["spearman"] is None:
        return stats
    joined = sweep.set_index("layer")[["loss_mean"]].rename(columns={"loss_mean": "measured"})
    joined = joined.join(importance.rename("shap"), how="inner").join(table[["component"]])
    _save(plots.importance_vs_sweep_figure(joined, stats), folder / "importance_vs_sweep.png",
          joined.rename_axis("layer").reset_index())
    return stats


def _subgraph_figures(model: Surrogate, graph: OpGraph, background: np.ndarray,
                      hop_weights: list[float] | None, options: ExplainOptions,
                      folder: Path) -> str:
    # Embedding norms only score quality when the GNN was trained to rank them (Qua²SeDiMo's
    # hop-level loss); otherwise the model-agnostic partial-dependence score is used.
    trained = getattr(model, "hop_rank_weight", 0) > 0 and hop_weights is not None
    method = "embedding" if trained else "prediction"
    scores = quantifiable_sensitivity(model, graph, background, method=method,
                                      hop_weights=hop_weights,
                                      max_variants=options.max_variants, seed=options.seed)
    if scores.empty:
        return method
    scores.to_csv(folder / "subgraph_scores.csv", index=False)
    summary = pd.concat([summarise(scores, "block_index").assign(by="block_index"),
                         summarise(scores, "kind").assign(by="kind")], ignore_index=True)
    _save(plots.sensitivity_boxes_figure(scores), folder / "sensitivity_boxes.png", summary)
    best = best_variants(scores)
    _save(plots.option_share_figure(best, list(model.checked_encoder().options)),
          folder / "best_variants.png", best)
    return method


# --------------------------------------------------------------------------- study level
def _study_figures(study: Study, data: StudyData, report: dict[str, Any], out: Path) -> None:
    summaries = {k: e["summary"] for k, e in report["surrogates"].items()}
    oof_path = study.path("surrogates", "oof_predictions.csv")
    target = report["target"]["name"]
    if oof_path.exists():
        oof = pd.read_csv(oof_path)
        _save(plots.predicted_vs_measured_figure(oof, summaries, target),
              out / "predicted_vs_measured.png", oof)
    curve_path = study.path("surrogates", "learning_curve.csv")
    if curve_path.exists() and curve_path.stat().st_size > 1:
        curve = pd.read_csv(curve_path)
        if len(curve):
            _save(plots.learning_curve_figure(curve), out / "learning_curve.png", curve)
    quality = data.primary
    # Whole-model average bits (layers left in FP count 16 bits): the store's avg_bits of a
    # sweep row covers its one quantized layer only, which is not comparable.
    frame = pd.DataFrame({"id": data.ids, "kind": data.kinds,
                          "avg_bits": data.encoder.avg_bits(data.choices),
                          quality: data.values(quality)})
    lower = data.primary_lower_is_better
    shown = frame[frame["kind"] != "sweep"]  # one layer quantized: ≈ 16 bits, off the scale
    front = pareto_front(shown, quality, lower)
    _save(pareto_figure(shown, quality, lower, fp_metric(study, quality)),
          out / "pareto.png", frame.assign(pareto=frame["id"].isin(front["id"])))


def _save(figure: Figure, path: Path, data: pd.DataFrame) -> None:
    save_figure(figure, path)
    data.to_csv(path.with_suffix(".csv"), index=False)


def stage_explain(study: Study, options: RunOptions | None = None) -> None:
    """Pipeline stage: explain the best fitted surrogate (and every other cheap one)."""
    report = _fit_report(study)
    kinds = tuple(k for k in report["surrogates"] if get_surrogate(k).exact_shap)
    explain_study(study, ExplainOptions(surrogates=tuple(dict.fromkeys((report["best"], *kinds)))))


__all__ = ["LABELS", "ExplainOptions", "explain_study", "stage_explain"]
