"""Per-image ingredients of every metric, so any subset of images is scored without networks.

A bootstrap interval (Efron & Tibshirani, 1993) re-scores hundreds of resamples of the same
images. Running the feature networks once and keeping what each metric needs per image —
feature vectors for Fréchet distances, right/wrong for class accuracy, per-image CLIP scores,
per-image MSE and SSIM against the FP images — turns each resample into a few array
reductions and one small eigendecomposition. :meth:`ImageScores.aggregate` with no index is
the full-sample score, and :meth:`~qua2.metrics.suite.MetricSuite.score` is defined through
it, so the point estimate and its resamples can never disagree on a definition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from qua2.metrics.fidelity import DATA_RANGE
from qua2.metrics.frechet import FrechetScorer, GaussianStats

#: Metrics that are the mean of a per-image value.
MEAN_METRICS = ("class_accuracy", "clip_score", "mse", "ssim")


@dataclass
class ImageScores:
    """What the metrics of :class:`~qua2.metrics.suite.MetricSuite` need, image by image.

    ``features`` maps a Fréchet metric (``digits_fid``, ``fid`` …) to the ``[N, D]`` features
    of the images and ``frechet`` to its scorer (which holds the real data's statistics);
    ``per_image`` maps each metric of :data:`MEAN_METRICS` that applies to its ``[N]`` values.
    ``psnr`` follows from the pooled ``mse``.
    """

    n_images: int
    features: dict[str, np.ndarray] = field(default_factory=dict)
    frechet: dict[str, FrechetScorer] = field(default_factory=dict)
    per_image: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def concat(cls, parts: list[ImageScores]) -> ImageScores:
        """The scores of consecutive image ranges as one (same metrics in every part)."""
        first = parts[0]
        return cls(sum(p.n_images for p in parts),
                   {k: np.concatenate([p.features[k] for p in parts]) for k in first.features},
                   dict(first.frechet),
                   {k: np.concatenate([p.per_image[k] for p in parts]) for k in first.per_image})

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The per-image arrays as one flat mapping (``features/KEY``, ``per_image/KEY``): what
        a study stores for a configuration evaluated on part of its images (racing)."""
        return {**{f"features/{k}": v for k, v in self.features.items()},
                **{f"per_image/{k}": v for k, v in self.per_image.items()}}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray],
                    frechet: dict[str, FrechetScorer]) -> ImageScores:
        """The inverse of :meth:`to_arrays`; ``frechet`` are the scorers of the study's suite
        (they hold the real data's statistics, which are never stored per configuration)."""
        features = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("features/")}
        per_image = {k.split("/", 1)[1]: v for k, v in arrays.items()
                     if k.startswith("per_image/")}
        counts = {len(v) for v in (*features.values(), *per_image.values())}
        if len(counts) != 1 or set(features) - set(frechet):
            raise ValueError("per-image arrays of different lengths or unknown Fréchet metrics")
        return cls(counts.pop(), features, {k: frechet[k] for k in features}, per_image)

    def metric(self, name: str, index: np.ndarray | None = None) -> float:
        """One metric of :meth:`aggregate` alone (what a racing test resamples hundreds of
        times: the other metrics' work is skipped)."""
        pick = slice(None) if index is None else np.asarray(index)
        if name in self.features:
            return self.frechet[name].distance(GaussianStats.from_features(
                self.features[name][pick]))
        if name == "psnr":
            return _psnr(float(self.per_image["mse"][pick].mean()))
        if name not in self.per_image:
            raise KeyError(f"{name!r} is not scored per image")
        return float(self.per_image[name][pick].mean())

    def aggregate(self, index: np.ndarray | None = None) -> dict[str, float]:
        """Every metric of the images ``index`` picks (with repeats), or of all images."""
        pick: slice | np.ndarray = slice(None)
        count = self.n_images
        if index is not None:
            pick = np.asarray(index)
            count = len(pick)
        out: dict[str, float] = {"n_images": float(count)}
        for key, features in self.features.items():
            out[key] = self.frechet[key].distance(GaussianStats.from_features(features[pick]))
        for key in (*MEAN_METRICS, *sorted(set(self.per_image) - set(MEAN_METRICS))):
            if key in self.per_image:  # built-in means first (stable order), then added ones
                out[key] = float(self.per_image[key][pick].mean())
        if "mse" in out:
            out["psnr"] = _psnr(out["mse"])
        return out


def _psnr(mse: float) -> float:
    """PSNR in dB of a pooled MSE on the [-1, 1] scale; ∞ for identical images."""
    return math.inf if mse == 0.0 else 10.0 * math.log10(DATA_RANGE**2 / mse)
