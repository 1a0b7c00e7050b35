"""qua2: quantization-sensitivity studies of diffusion-model denoisers.

The names a researcher uses, importable from ``qua2`` directly (each loads its sub-package on
first use, so ``import qua2`` stays light: no torch, diffusers, shap or torch-geometric)::

    study = qua2.run_study("experiments/digits-dit-quick.yaml", "runs/quick")
    frame = qua2.results_frame(study)
    cache = qua2.open_option_cache(study)
    with qua2.quantized(study.adapter.module, config, cache): ...
    qua2.run_stages(study, qua2.RunOptions(budgets=(3.5,)), stages=["search", "verify"])

Each sub-package (``qua2.quant``, ``qua2.study`` …) exports the 5–10 names of its own area in
the same way; everything else is imported from its defining module (docs/ARCHITECTURE.md,
"Public API"). Extending qua2 is one registration call per concept: :func:`register_metric`,
:func:`register_method`, :func:`register_surrogate`, :func:`register_family`.
"""

from __future__ import annotations

from qua2.errors import Qua2Error
from qua2.lazy import lazy_exports
from qua2.version import __version__

_PUBLIC = {
    # studies: describe, run, read
    "StudyConfig": "qua2.study.config", "load_study_config": "qua2.study.config",
    "Study": "qua2.study.study", "RunOptions": "qua2.study.stages",
    "run_study": "qua2.pipeline", "run_stages": "qua2.pipeline",
    "results_frame": "qua2.study.results", "status_summary": "qua2.study.results",
    "open_option_cache": "qua2.study.option_cache", "study_graph": "qua2.study.graph",
    # models
    "load_model": "qua2.models.registry", "register_family": "qua2.models.registry",
    # quantization
    "QuantOption": "qua2.specs", "QuantConfig": "qua2.specs", "SearchSpace": "qua2.specs",
    "quantize_weight": "qua2.quant.methods", "register_method": "qua2.quant.methods",
    "OptionCache": "qua2.quant.cache", "quantized": "qua2.quant.apply",
    "average_bits": "qua2.quant.apply",
    # metrics and surrogates
    "register_metric": "qua2.metrics.registry", "MetricSpec": "qua2.metrics.registry",
    "FitOptions": "qua2.surrogates.fit", "fit_study": "qua2.surrogates.fit",
    "load_fitted": "qua2.surrogates.fit", "register_surrogate": "qua2.surrogates.registry",
    "SurrogateSpec": "qua2.surrogates.registry",
    # explanations
    "ExplainOptions": "qua2.explain.stage", "explain_study": "qua2.explain.stage",
    "study_explanation": "qua2.explain.summaries", "group_importance": "qua2.explain.summaries",
    "option_preference_intervals": "qua2.explain.summaries",
    # export and reload
    "export_study_config": "qua2.export", "load_packed": "qua2.quant.export",
    # figures
    "save_figure": "qua2.plots", "sample_grid_figure": "qua2.plots",
    "pareto_figure": "qua2.plots", "draw_graph": "qua2.graph.draw",
    # messages
    "show_messages": "qua2.log",
}

__all__ = ["Qua2Error", "__version__", *sorted(_PUBLIC)]
__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC, eager=["Qua2Error", "__version__"])
