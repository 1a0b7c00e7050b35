"""Image metrics: Fréchet distance on pluggable features, digits classifier, paired fidelity.

Entry points: :class:`MetricSuite` / :func:`score_images` (see :mod:`qua2.metrics.suite` for
the metric names). Transformers (CLIP) and the Inception network load only when used.
"""

from qua2.metrics.classifier import DigitsClassifier, load_digits_classifier
from qua2.metrics.digits import digits_split, load_digits_images
from qua2.metrics.fidelity import mse, psnr, sqnr, ssim
from qua2.metrics.frechet import (
    FeatureExtractor,
    FrechetScorer,
    GaussianStats,
    frechet_distance,
    reference_stats,
)
from qua2.metrics.suite import MetricSuite, paired_fidelity, score_images

__all__ = [
    "DigitsClassifier",
    "FeatureExtractor",
    "FrechetScorer",
    "GaussianStats",
    "MetricSuite",
    "digits_split",
    "frechet_distance",
    "load_digits_classifier",
    "load_digits_images",
    "mse",
    "paired_fidelity",
    "psnr",
    "reference_stats",
    "score_images",
    "sqnr",
    "ssim",
]
