"""Image metrics: Fréchet distance on pluggable features, digits classifier, paired fidelity.

Entry points: :class:`MetricSuite` / :func:`score_images` (see :mod:`qua2.metrics.suite` for
the metric names), :class:`FrechetScorer`, :func:`paired_fidelity`, the digits data and
classifier, and the metric registry (:data:`METRICS`, :class:`MetricSpec`,
:func:`register_metric`: each metric's direction and inputs). Reading the registry — e.g. to
validate a study file — does not import torch.
"""

from __future__ import annotations

from qua2.lazy import lazy_exports

#: The package's public names → their defining modules, each imported on first use.
_EXPORTS = {
    "METRICS": "qua2.metrics.registry",
    "MetricSpec": "qua2.metrics.registry",
    "get_metric": "qua2.metrics.registry",
    "register_metric": "qua2.metrics.registry",
    "MetricSuite": "qua2.metrics.suite",
    "score_images": "qua2.metrics.suite",
    "paired_fidelity": "qua2.metrics.suite",
    "FrechetScorer": "qua2.metrics.frechet",
    "load_digits_classifier": "qua2.metrics.classifier",
    "load_digits_images": "qua2.metrics.digits",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
