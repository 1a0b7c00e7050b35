"""The study's own stages: model, FP reference, graph, option cache and the evaluations.

Every stage of qua2 has the signature ``stage_NAME(study, options) -> None`` and lives in the
package whose work it does (this module for the study; ``qua2.surrogates.fit.stage_fit``,
``qua2.explain.stage.stage_explain``, ``qua2.search.stage.stage_search``,
``qua2.search.verification.stage_verify``, ``qua2.export.stage_export``,
``qua2.report.stage_report``); :mod:`qua2.pipeline` lists them in order. A stage is a function
of the study and the artifacts earlier stages left in its directory, so each can be re-run
alone, and a killed run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qua2.errors import Qua2Error
from qua2.io import atomic_write_json, read_json_object_or_none
from qua2.log import say
from qua2.study.store import Store
from qua2.study.study import Study

if TYPE_CHECKING:
    from qua2.study.config import ExecutorSection


@dataclass
class RunOptions:
    """Command-line overrides of the study config for one run."""

    workers: int | None = None
    threads: int | None = None
    executor: str | None = None  # "local" or "ray" (default: the YAML's executor.kind)
    address: str | None = None  # Ray cluster address (default: the YAML's executor.address)
    num_configs: int | None = None
    budgets: tuple[float, ...] | None = None  # search budgets (default: search.stage's)
    surrogate: str = "best"  # which fitted surrogate guides the search
    top: int = 2  # qua2 picks kept per budget
    bootstrap_rounds: int = 200
    export_budget: float | None = None  # default: pipeline.export_budget of the YAML, or 3.5

    def __post_init__(self) -> None:
        if self.bootstrap_rounds < 1:
            raise Qua2Error(f"bootstrap rounds must be at least 1, got {self.bootstrap_rounds}; "
                            "pass e.g. --rounds 200.")

    def executor_for(self, study: Study) -> ExecutorSection:
        """The study's ``executor`` section with this run's command-line overrides applied."""
        from qua2.study.validate import check_executor

        given: dict[str, Any] = {"kind": self.executor, "address": self.address,
                                 "workers": self.workers, "cpus_per_worker": self.threads}
        executor = dataclasses.replace(study.config.executor,
                                       **{k: v for k, v in given.items() if v is not None})
        check_executor(executor)
        return executor


# --------------------------------------------------------------------------- stages
def stage_model(study: Study, options: RunOptions) -> None:
    """Load (or train, for the embedded models) the denoiser and describe it."""
    from qua2.study.reference import tensors_digest

    adapter = study.adapter
    layers = adapter.quantizable_layers()
    params = sum(p.numel() for p in adapter.module.parameters())
    digest = tensors_digest(adapter.module.state_dict())  # every parameter and buffer, by name
    _check_same_weights(study, digest)
    info = {"family": adapter.family, "name": adapter.name, "parameters": params,
            "quantizable_layers": len(layers), "device": str(study.device),
            "weights_digest": digest}
    atomic_write_json(study.path("model.json"), info)
    say(f"model {adapter.name}: {params / 1e6:.2f} M parameters, {len(layers)} weight layers")


def _check_same_weights(study: Study, digest: str) -> None:
    """Refuse to resume a study whose results came from other weights than the model's now.

    The study file names the model, not its weights: a re-trained or re-shipped model under
    the same name would otherwise mix two models' numbers in one study.
    """
    path = study.path("model.json")
    stored = read_json_object_or_none(path, "it is written again")
    if stored is None:
        return
    if "weights_digest" not in stored:
        say(f"{path} predates weight digests: if the model changed since this study was made "
            "(e.g. the digits models now ship with qua2), start a new --out directory.")
    elif stored["weights_digest"] != digest:
        raise Qua2Error(f"the model's weights differ from those {study.directory} was made "
                        "with (model.json); its stored results would mix two models: start a "
                        "new --out directory, or restore the original weights.")


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
    metrics = read_json_object_or_none(metrics_path, "they are computed again")
    if metrics is None:
        metrics = build_scorer(study).score(reference.images, reference)
        atomic_write_json(metrics_path, metrics)
    say(f"FP sample grid → {grid}")
    say("FP metrics (" + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()) + f") → "
        f"{metrics_path}")


def stage_graph(study: Study, options: RunOptions) -> None:
    """Trace the denoiser into its operation graph (once)."""
    from qua2.study.graph import study_graph

    graph = study_graph(study)
    traced = set(graph.layers())
    missing = set(study.adapter.quantizable_layers()) - traced
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

    executor = ready_executor(study, options)
    queue_anchors(study)
    evaluate_rows(study, executor, ["uniform"], "anchors")


def stage_sample(study: Study, options: RunOptions) -> None:
    """Queue random configs up to the study's count and evaluate them."""
    from qua2.study.queue import queue_random

    executor = ready_executor(study, options)
    target = options.num_configs or study.config.config_sampler.num_configs
    with Store(study.path("study.sqlite")) as store:
        have = store.count(kind="random")
    if have < target:
        queue_random(study, target - have)
    evaluate_rows(study, executor, ["random"], "random configs")


def stage_sweep(study: Study, options: RunOptions) -> None:
    """Queue and evaluate the one-layer-at-a-time sweep (MixDQ-style sensitivity)."""
    from qua2.study.queue import queue_sweep

    if not study.config.pipeline.sweep:
        say("sweep: skipped (pipeline.sweep is false)")
        return
    executor = ready_executor(study, options)
    queue_sweep(study)
    evaluate_rows(study, executor, ["sweep"], "sweep")


def ready_executor(study: Study, options: RunOptions) -> ExecutorSection:
    """The run's executor, checked (and for Ray connected) before any row is queued."""
    executor = options.executor_for(study)
    if executor.kind == "ray":
        from qua2.study.ray_executor import connect

        connect(executor)
    return executor


def evaluate_rows(study: Study, executor: ExecutorSection, kinds: list[str], desc: str) -> None:
    """Evaluate the pending rows of ``kinds`` (racing them when ``images.racing`` is on)."""
    from qua2.study.racing import evaluate_racing

    evaluate_racing(study, kinds, executor, desc)
