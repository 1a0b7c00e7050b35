"""Image metrics: Fréchet distance on pluggable features, digits classifier, paired fidelity.

Entry points: :class:`MetricSuite` / :func:`score_images` (see :mod:`qua2.metrics.suite` for
the metric names) and the metric registry :mod:`qua2.metrics.registry` (each metric's
direction and inputs). Names are imported on first use (PEP 562), so reading the registry —
e.g. to validate a study file — does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from qua2.metrics.registry import METRICS, MetricSpec, get_metric, register_metric

_LAZY = {
    "DigitsClassifier": "classifier", "load_digits_classifier": "classifier",
    "digits_split": "digits", "load_digits_images": "digits",
    "mse": "fidelity", "psnr": "fidelity", "sqnr": "fidelity", "ssim": "fidelity",
    "FeatureExtractor": "frechet", "FrechetScorer": "frechet", "GaussianStats": "frechet",
    "frechet_distance": "frechet", "reference_stats": "frechet",
    "MetricSuite": "suite", "paired_fidelity": "suite", "score_images": "suite",
}

__all__ = ["METRICS", "MetricSpec", "get_metric", "register_metric", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'qua2.metrics' has no attribute {name!r}")
    return getattr(importlib.import_module(f"qua2.metrics.{_LAZY[name]}"), name)
