"""qua2: quantization-sensitivity studies of diffusion-model denoisers.

The names a researcher uses, importable from ``qua2`` directly (each loads its sub-package on
first use, so ``import qua2`` stays light: no torch, diffusers, shap or torch-geometric)::

    study = qua2.run_study("experiments/digits-dit-quick.yaml", "runs/quick")
    cache = qua2.OptionCache(study.directory / "cache")
    with qua2.quantized(study.adapter.module, config, cache): ...

Extending qua2 is one registration call per concept (docs/ARCHITECTURE.md):
:func:`register_metric`, :func:`register_method`, :func:`register_surrogate`,
:func:`register_family`.
"""

from __future__ import annotations

import importlib
from typing import Any

from qua2.errors import Qua2Error
from qua2.version import __version__

_PUBLIC = {
    # studies
    "Study": "qua2.study.study", "StudyConfig": "qua2.study.config",
    "load_study_config": "qua2.study.config", "run_study": "qua2.pipeline",
    "RunOptions": "qua2.study.stages", "results_frame": "qua2.study.results",
    # models
    "load_model": "qua2.models.registry", "register_family": "qua2.models.registry",
    # quantization
    "QuantOption": "qua2.specs", "QuantConfig": "qua2.specs", "SearchSpace": "qua2.specs",
    "quantize_weight": "qua2.quant.methods", "register_method": "qua2.quant.methods",
    "OptionCache": "qua2.quant.cache", "quantized": "qua2.quant.apply",
    "average_bits": "qua2.quant.apply",
    # metrics, surrogates, explanations
    "register_metric": "qua2.metrics.registry", "MetricSpec": "qua2.metrics.registry",
    "fit_study": "qua2.surrogates.fit", "load_fitted": "qua2.surrogates.fit",
    "register_surrogate": "qua2.surrogates.registry",
    "SurrogateSpec": "qua2.surrogates.registry", "explain_study": "qua2.explain.stage",
    # messages
    "show_messages": "qua2.log",
}

__all__ = ["Qua2Error", "__version__", *sorted(_PUBLIC)]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'qua2' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)


def __dir__() -> list[str]:
    return sorted(__all__)
