"""The ``fit`` stage: cross-validate and fit every surrogate of a study, write the report.

Artifacts, all under ``<study>/surrogates/``::

    cv_report.json          per surrogate: per-fold and pooled held-out metrics, learning curve,
                            hyper-parameters, timings; the best surrogate by held-out Spearman ρ
    cv_report.md            the same as Markdown tables
    oof_predictions.csv     every held-out prediction (surrogate, id, kind, fold, y, pred)
    learning_curve.csv      held-out metrics vs number of training configs
    option_stats.json       option sizes and errors read once from the option cache
    <kind>/                 the surrogate fitted on all rows (surrogate.json + model file)

A surrogate whose report entry was computed from the same rows, target and settings is not
recomputed (the stage resumes); ``force`` recomputes it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from qua2.errors import Qua2Error
from qua2.io import DamagedArtifactError, read_json_object_or_none
from qua2.log import say
from qua2.surrogates.base import Surrogate, load_surrogate
from qua2.surrogates.cv import DEFAULT_CURVE, CVResult, cross_validate
from qua2.surrogates.data import StudyData, Target, load_study_data
from qua2.surrogates.registry import get_surrogate
from qua2.surrogates.report import write_markdown

if TYPE_CHECKING:
    from qua2.graph.opgraph import OpGraph
    from qua2.study.stages import RunOptions
    from qua2.study.study import Study

REPORT_JSON = "cv_report.json"


@dataclass
class FitOptions:
    """What ``qua2 fit`` does; every field has a command-line flag."""

    surrogates: tuple[str, ...] = ("ridge", "xgb", "gnn")
    target: str | None = None           # a metric name; None: the study's objective
    folds: int = 5
    seed: int = 0
    curve_sizes: tuple[int, ...] = DEFAULT_CURVE  # () for no learning curve
    curve_gnn: bool = False             # GNN learning curves cost ~len(sizes) × the CV
    # Rows added to every training side but never held out: uniform anchors (extremes, not
    # samples) and sequential-design rows (chosen by a surrogate, so they would flatter ρ).
    train_extra: tuple[str, ...] = ("uniform", "design")
    threads: int = 1
    gnn_epochs: int | None = None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # kind → hyper-params
    force: bool = False


def digest(payload: dict[str, Any]) -> str:
    """A short hash of a JSON-ready ``payload`` (what the fit and explain stages resume by)."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def make_surrogate(kind: str, data: StudyData, options: FitOptions,
                   graph: OpGraph | None = None) -> Surrogate:
    """An unfitted surrogate of ``kind`` for ``data`` with the options' hyper-parameters."""
    spec = get_surrogate(kind)
    params: dict[str, Any] = {"encoder": data.encoder, "random_state": options.seed}
    if spec.threads:
        params[spec.threads] = options.threads
    if spec.needs_graph:
        params["graph"] = graph
    if kind == "gnn" and options.gnn_epochs is not None:  # `qua2 fit --epochs` is the GNN's
        params["epochs"] = options.gnn_epochs
    params.update(options.params.get(kind, {}))
    return spec.load_class()(**params)


def _fingerprint(data: StudyData, target: str, kind: str, options: FitOptions,
                 estimator: Surrogate) -> str:
    # only the rows a fit uses: adding sweep rows later does not make a fit stale
    used = data.mask(("random", *options.train_extra), target)
    ids = sorted(i for i, keep in zip(data.ids, used) if keep)
    payload = {"ids": ids, "target": target, "kind": kind, "params": estimator.hyper_params(),
               "folds": options.folds, "seed": options.seed, "extra": options.train_extra,
               "curve": _curve_for(kind, options)}
    if get_surrogate(kind).reads_encoding:  # a graph model reads the graph features instead
        payload["features"] = [data.encoder.encoding, data.encoder.use_error]
    return digest(payload)


def _curve_for(kind: str, options: FitOptions) -> tuple[int, ...]:
    return options.curve_sizes if (not get_surrogate(kind).slow or options.curve_gnn) else ()


def fit_study(study: Study, options: FitOptions | None = None) -> dict[str, Any]:
    """Cross-validate and fit the options' surrogates; returns the (merged) report."""
    options = options or FitOptions()
    for kind in options.surrogates:
        get_surrogate(kind)  # an unknown kind fails before any work
    data = load_study_data(study)
    target = data.target(options.target)
    n_random = len(data.cv_rows(target))
    say(f"fit: {n_random} random configs for {options.folds}-fold CV on {target.name!r} "
        f"({'higher' if target.higher_is_better else 'lower'} is better), "
        f"{data.encoder.n_layers} layers")
    report = _load_report(study)
    if report.get("target") != target.to_dict():
        report = {}  # another target: old entries are not comparable
    entries = report.get("surrogates", {})
    graph = None
    if any(get_surrogate(k).needs_graph for k in options.surrogates):
        from qua2.study.graph import study_graph

        graph = study_graph(study)
    frames = []
    for kind in options.surrogates:
        estimator = make_surrogate(kind, data, options, graph)
        fingerprint = _fingerprint(data, target.name, kind, options, estimator)
        if not options.force and entries.get(kind, {}).get("fingerprint") == fingerprint:
            say(f"fit: {kind} is up to date (held-out ρ "
                f"{entries[kind]['summary']['spearman_mean']:.3f}); --force refits")
            continue
        result = _validate(kind, estimator, data, target, options)
        entries[kind] = {**result.to_dict(), "fingerprint": fingerprint,
                         "params": _json_params(estimator)}
        frames.append(result.oof.assign(surrogate=kind))
        _fit_final(study, kind, estimator, data, target, options)
    report = _finish_report(study, data, target, options, entries, frames)
    write_markdown(report, study.path("surrogates", "cv_report.md"))
    return report


def _validate(kind: str, estimator: Surrogate, data: StudyData, target: Target,
              options: FitOptions) -> CVResult:
    def progress(done: int, total: int) -> None:
        if get_surrogate(kind).slow:
            say(f"fit: {kind} fold {done}/{total}")

    result = cross_validate(estimator, data, target, k=options.folds, seed=options.seed,
                            train_extra=options.train_extra,
                            curve_sizes=_curve_for(kind, options), name=kind,
                            progress=progress)
    summary = result.summary
    say(f"fit: {kind}: held-out Spearman {summary['spearman_mean']:.3f} ± "
        f"{summary['spearman_std']:.3f}, Kendall {summary['kendall_mean']:.3f}, NDCG@10 "
        f"{summary['ndcg@10_mean']:.3f}, MAE {summary['mae_mean']:.4g} "
        f"({result.seconds:.0f} s)")
    return result


def _fit_final(study: Study, kind: str, estimator: Surrogate, data: StudyData, target: Target,
               options: FitOptions) -> None:
    from sklearn.base import clone

    rows = data.mask(("random", *options.train_extra), target)
    model = clone(estimator).fit(data.choices[rows], data.values(target)[rows])
    model.save(study.path("surrogates", kind, "surrogate.json").parent,
               target=target.to_dict())


def _finish_report(study: Study, data: StudyData, target: Target, options: FitOptions,
                   entries: dict[str, Any], frames: list[pd.DataFrame]) -> dict[str, Any]:
    ranked = sorted(entries, key=lambda k: -_nan_low(entries[k]["summary"]["spearman_mean"]))
    report = {"version": 1, "study": str(study.directory), "target": target.to_dict(),
              "folds": options.folds, "seed": options.seed,
              "n_random": len(data.cv_rows(target)),
              "train_extra": list(options.train_extra), "n_layers": data.encoder.n_layers,
              "surrogates": {k: entries[k] for k in ranked},
              "best": ranked[0] if ranked else None}
    path = study.path("surrogates", REPORT_JSON)
    path.write_text(json.dumps(report, indent=1))
    _write_tables(study, entries, frames)
    return report


def _write_tables(study: Study, entries: dict[str, Any], frames: list[pd.DataFrame]) -> None:
    oof_path = study.path("surrogates", "oof_predictions.csv")
    old = pd.read_csv(oof_path) if oof_path.exists() else pd.DataFrame()
    if frames:
        fresh = pd.concat(frames, ignore_index=True)
        if len(old):
            old = old[~old["surrogate"].isin(fresh["surrogate"])]
        merged = pd.concat([old, fresh], ignore_index=True)
        merged = merged[merged["surrogate"].isin(entries)]
        cols = ["surrogate", "id", "kind", "fold", "y", "pred"]
        merged[cols].to_csv(oof_path, index=False)
    rows = [{"surrogate": k, **point} for k, e in entries.items()
            for point in e.get("learning_curve") or []]
    pd.DataFrame(rows).to_csv(study.path("surrogates", "learning_curve.csv"), index=False)


def _nan_low(value: float) -> float:
    return value if value == value else float("-inf")


def _json_params(estimator: Surrogate) -> dict[str, Any]:
    return json.loads(json.dumps(estimator.hyper_params(), default=str))


def _load_report(study: Study) -> dict[str, Any]:
    """The cross-validation report; a damaged one is treated as absent (everything refits)."""
    path = study.path("surrogates", REPORT_JSON)
    return read_json_object_or_none(path, "the surrogates are fitted again") or {}


def load_fitted(study: Study, kind: str | None = None) -> Surrogate:
    """A surrogate fitted by ``qua2 fit`` (default: the report's best one)."""
    report = _load_report(study)
    if not report and study.path("surrogates", REPORT_JSON).exists():  # damaged: fit again
        fit_study(study, FitOptions(surrogates=tuple(study.config.pipeline.surrogates)))
        report = _load_report(study)
    kind = kind or report.get("best")
    if not kind:
        raise Qua2Error(f"{study.directory} has no fitted surrogates; run `qua2 fit` first.")
    directory = study.path("surrogates", kind, "surrogate.json").parent
    try:
        return load_surrogate(directory)
    except DamagedArtifactError as error:
        # A fit is deterministic (seeded): refitting gives the surrogate that was damaged.
        say(f"{error} Refitting {kind}.")
        fit_study(study, FitOptions(surrogates=(kind,), force=True))
        return load_surrogate(directory)


def stage_fit(study: Study, options: RunOptions | None = None) -> None:
    """Pipeline stage: cross-validate and fit every surrogate (skips what is up to date)."""
    threads = (options.threads if options is not None else None) or 1
    kinds = tuple(study.config.pipeline.surrogates)
    fit_study(study, FitOptions(surrogates=kinds, threads=threads,
                                seed=study.config.seeds.surrogates))

