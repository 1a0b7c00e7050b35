"""The stages of a study, in order; each one skips what is already done.

``qua2 run`` calls :func:`run_study`, which runs every stage in :data:`STAGES`. A stage is a
function of the study (and the artifacts of earlier stages, found in the study directory), so
each can be re-run alone, and a killed run resumes where it stopped.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qua2.errors import Qua2Error
from qua2.io import DamagedArtifactError, atomic_write_json, read_json_object
from qua2.study.store import Store
from qua2.study.study import Study


@dataclass
class RunOptions:
    """Command-line overrides of the study config for one run."""

    workers: int | None = None
    threads: int | None = None
    num_configs: int | None = None
    budgets: tuple[float, ...] | None = None  # search budgets (default: search.stage's)
    surrogate: str = "best"  # which fitted surrogate guides the search
    top: int = 2  # qua2 picks kept per budget
    bootstrap_rounds: int = 200
    export_budget: float = 3.5  # the budget whose best verified pick the export stage writes

    def __post_init__(self) -> None:
        if self.bootstrap_rounds < 1:
            raise Qua2Error(f"bootstrap rounds must be at least 1, got {self.bootstrap_rounds}; "
                            "pass e.g. --rounds 200.")


def say(message: str) -> None:
    print(f"qua2: {message}", file=sys.stderr)


# --------------------------------------------------------------------------- stages
def stage_model(study: Study, options: RunOptions) -> None:
    """Load (or train, for the embedded models) the denoiser and describe it."""
    adapter = study.adapter
    layers = adapter.quantizable_layers()
    params = sum(p.numel() for p in adapter.module.parameters())
    info = {"family": adapter.family, "name": adapter.name, "parameters": params,
            "quantizable_layers": len(layers), "device": str(study.device)}
    study.path("model.json").write_text(json.dumps(info, indent=2))
    say(f"model {adapter.name}: {params / 1e6:.2f} M parameters, {len(layers)} weight layers")


def stage_reference(study: Study, options: RunOptions) -> None:
    """FP reference images, a sample grid and the FP metrics table."""
    from qua2.plots import sample_grid_figure, save_figure
    from qua2.study.reference import get_reference
    from qua2.study.scoring import build_scorer

    reference = get_reference(study, "sampling")
    grid = study.path("reference", "fp_samples.png")
    shown = min(len(reference.images), 50)
    save_figure(sample_grid_figure(reference.images[:shown], reference.conditions[:shown],
                                   suptitle=f"{study.config.name}: full precision"), grid)
    metrics_path = study.path("reference", "fp_metrics.json")
    metrics = _stored_fp_metrics(metrics_path)
    if metrics is None:
        metrics = build_scorer(study).score(reference.images, reference)
        atomic_write_json(metrics_path, metrics)
    say(f"FP sample grid → {grid}")
    say("FP metrics (" + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()) + f") → "
        f"{metrics_path}")


def _stored_fp_metrics(path: Path) -> dict[str, float] | None:
    """The FP metrics written by an earlier run; None if absent or damaged (then recomputed)."""
    if not path.exists():
        return None
    try:
        return read_json_object(path, "they are computed again")
    except DamagedArtifactError as error:
        say(f"{error}")
        return None


def stage_graph(study: Study, options: RunOptions) -> None:
    """Trace the denoiser into its operation graph (once)."""
    from qua2.study.graph import study_graph

    graph = study_graph(study)
    layers = set(study.adapter.quantizable_layers())
    traced = set(graph.layers())
    missing = sorted(layers - traced)
    say(f"operation graph: {graph.num_nodes} nodes, {graph.num_edges} edges, "
        f"{len(traced)} weight layers" + (f" ({len(missing)} never called)" if missing else ""))


def stage_cache(study: Study, options: RunOptions) -> None:
    """Quantize every (layer, option) once into the study's option cache."""
    from qua2.study.option_cache import build_option_cache

    cache = build_option_cache(study)
    say(f"option cache: {len(cache.layers)} layers × {len(cache.space)} options → "
        f"{cache.directory}")


def stage_anchors(study: Study, options: RunOptions) -> None:
    """Queue and evaluate the uniform configs (every layer on one option)."""
    from qua2.study.queue import queue_anchors

    queue_anchors(study)
    _evaluate(study, options, ["uniform"], "anchors")


def stage_sample(study: Study, options: RunOptions) -> None:
    """Queue random configs up to the study's count and evaluate them."""
    from qua2.study.queue import queue_random

    target = options.num_configs or study.config.config_sampler.num_configs
    with Store(study.path("study.sqlite")) as store:
        have = store.count(kind="random")
    if have < target:
        queue_random(study, target - have)
    _evaluate(study, options, ["random"], "random configs")


def stage_sweep(study: Study, options: RunOptions) -> None:
    """Queue and evaluate the one-layer-at-a-time sweep (MixDQ-style sensitivity)."""
    from qua2.study.queue import queue_sweep

    if not study.config.pipeline.sweep:
        say("sweep: skipped (pipeline.sweep is false)")
        return
    queue_sweep(study)
    _evaluate(study, options, ["sweep"], "sweep")


def _evaluate(study: Study, options: RunOptions, kinds: list[str], desc: str) -> None:
    from qua2.study.workers import evaluate_pending

    workers = options.workers or study.config.workers
    evaluate_pending(study, kinds, workers=workers, threads=options.threads, desc=desc)


def stage_fit(study: Study, options: RunOptions) -> None:
    """Cross-validate and fit the surrogates (``qua2 fit``)."""
    from qua2.surrogates.fit import stage_fit as fit

    fit(study, options)


def stage_explain(study: Study, options: RunOptions) -> None:
    """SHAP explanations, sub-graph sensitivities and figures (``qua2 explain``)."""
    from qua2.explain.stage import stage_explain as explain

    explain(study, options)


def stage_search(study: Study, options: RunOptions) -> None:
    """Candidates within each average-bit budget: qua2's picks and the baselines."""
    from qua2.search.stage import DEFAULT_BUDGETS, cost_table, surrogate_predictor
    from qua2.search.stage import stage_search as search
    from qua2.study.option_cache import open_option_cache
    from qua2.surrogates.fit import load_fitted

    cache = open_option_cache(study)
    table = cost_table(study, cache)
    for budget in options.budgets or ():  # budgets asked for explicitly must be feasible
        table.check_budget(budget)
    kind = None if options.surrogate == "best" else options.surrogate
    predict = surrogate_predictor(load_fitted(study, kind), table)
    candidates = search(study, predict, cache, options.budgets or DEFAULT_BUDGETS, options.top)
    say(f"search: {len(candidates)} candidates → {study.path('search', 'candidates.json')}")


def stage_verify(study: Study, options: RunOptions) -> None:
    """Evaluate every candidate for real on held-out seeds, with bootstrap intervals."""
    from qua2.search.verification import stage_verify as verify
    from qua2.study.option_cache import open_option_cache

    verify(study, open_option_cache(study), rounds=options.bootstrap_rounds)
    say(f"verification → {study.path('verification', 'table.md')}")


def stage_export(study: Study, options: RunOptions) -> None:
    """Export the best verified qua2 pick at ``options.export_budget`` as packed weights."""
    from qua2.export import export_study_config

    budget = options.export_budget
    out = study.directory / "export" / f"qua2-{budget:g}bits"
    summary = export_study_config(study, f"best:{budget:g}", out)
    say(f"export: {summary.layers_bits:.3f} bits per quantized weight, "
        f"{summary.file_bytes / 1e6:.3f} MB vs {summary.fp16_bytes / 1e6:.3f} MB FP16 → {out}")


def stage_report(study: Study, options: RunOptions) -> None:
    """The Markdown report of everything above."""
    from qua2.report import build_report

    say(f"report → {build_report(study)}")


StageFn = Callable[[Study, RunOptions], None]
STAGES: list[tuple[str, StageFn]] = [
    ("model", stage_model),
    ("reference", stage_reference),
    ("graph", stage_graph),
    ("cache", stage_cache),
    ("anchors", stage_anchors),
    ("sample", stage_sample),
    ("sweep", stage_sweep),
    ("fit", stage_fit),
    ("explain", stage_explain),
    ("search", stage_search),
    ("verify", stage_verify),
    ("export", stage_export),
    ("report", stage_report),
]


def run_study(config_path: str | Path, out: str | Path, options: RunOptions | None = None,
              stages: list[str] | None = None) -> Study:
    """Create or resume the study of ``config_path`` in ``out`` and run its stages in order."""
    from qua2.study.config import load_study_config
    from qua2.study.validate import check_study_paths

    options = options or RunOptions()
    config = load_study_config(config_path)
    check_study_paths(config)
    study = Study.create(config, out)
    for name, stage in STAGES:
        if stages is None or name in stages:
            stage(study, options)
    return study
