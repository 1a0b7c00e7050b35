"""Fréchet distance between Gaussian fits of image features, on any feature extractor.

FID (Heusel et al., 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local
Nash Equilibrium") fits a Gaussian to the Inception pool features of real and of generated
images and reports the Fréchet (2-Wasserstein) distance between them::

    d² = ‖μ₁ − μ₂‖² + Tr(Σ₁) + Tr(Σ₂) − 2 Tr((Σ₁ Σ₂)^½)

Here the feature network is pluggable (:class:`FeatureExtractor`): the digits classifier for
"digits-FID", an Inception network or a local transformers vision model for real images. The
reference statistics of the real data are computed once and cached on disk, keyed by the
extractor's id and a digest of the data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from qua2.errors import Qua2Error
from qua2.io import bytes_digest, write_safetensors
from qua2.metrics.digits import tensor_digest
from qua2.paths import cache_dir

log = logging.getLogger(__name__)


@runtime_checkable
class FeatureExtractor(Protocol):
    """Images ``[N, C, H, W]`` in [-1, 1] → features ``[N, D]``.

    ``id`` must change whenever the features would (other weights, other preprocessing):
    cached reference statistics are keyed by it.
    """

    id: str

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class GaussianStats:
    """Mean ``[D]`` and covariance ``[D, D]`` (float64) of ``n`` feature vectors."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int

    @classmethod
    def from_features(cls, features: torch.Tensor | np.ndarray) -> GaussianStats:
        """Fit a Gaussian: sample mean and unbiased covariance (as in the reference FID code)."""
        f = np.asarray(torch.as_tensor(features).detach().cpu().double())
        if f.ndim != 2 or len(f) < 2:
            raise Qua2Error(f"a Fréchet distance needs at least 2 feature vectors of shape [N, D], "
                            f"got shape {tuple(f.shape)}.")
        if not np.isfinite(f).all():
            raise Qua2Error("the feature extractor returned NaN or infinite features; check the "
                            "images for NaN values.")
        return cls(f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1]),
                   len(f))


def frechet_distance(a: GaussianStats, b: GaussianStats,
                     root_a: np.ndarray | None = None) -> float:
    """Fréchet distance d² between two Gaussians (Heusel et al., 2017, eq. 6).

    Tr((Σ₁Σ₂)^½) is computed as Σᵢ √λᵢ with λ the eigenvalues of the symmetric PSD matrix
    Σ₁^½ Σ₂ Σ₁^½ (similar to Σ₁Σ₂, so same spectrum). Unlike ``scipy.linalg.sqrtm`` of the
    non-symmetric product, this never produces complex parts or NaNs for the rank-deficient
    covariances that small sample counts give; tiny negative eigenvalues from rounding are
    clipped to zero. ``root_a`` is Σ₁^½ when the caller has it already (see
    :meth:`FrechetScorer.reference_root`); the distance is symmetric in ``a`` and ``b``.
    """
    if a.mu.shape != b.mu.shape:
        raise Qua2Error(f"cannot compare features of dimension {a.mu.shape[0]} with "
                        f"{b.mu.shape[0]}; use the same feature extractor for both sets.")
    root_a = _psd_sqrt(a.sigma) if root_a is None else root_a
    middle = root_a @ b.sigma @ root_a
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = a.mu - b.mu
    d2 = float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2.0 * tr_covmean)
    return max(d2, 0.0)  # rounding can leave -1e-12 for identical inputs


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix via its eigendecomposition."""
    eig, vec = np.linalg.eigh((sigma + sigma.T) / 2)
    return (vec * np.sqrt(np.clip(eig, 0.0, None))) @ vec.T


# ------------------------------------------------------------------------------ features
def extract_features(extractor: FeatureExtractor, images: torch.Tensor | Iterable[torch.Tensor],
                     batch_size: int = 256) -> torch.Tensor:
    """Features ``[N, D]`` of a tensor of images (batched) or of an iterable of image batches."""
    batches = images.split(batch_size) if isinstance(images, torch.Tensor) else images
    out = []
    with torch.no_grad():
        for batch in batches:
            _check_images(batch)
            feats = torch.as_tensor(extractor(batch))
            if feats.ndim != 2 or len(feats) != len(batch):
                raise Qua2Error(f"feature extractor {extractor.id!r} returned shape "
                                f"{tuple(feats.shape)} for {len(batch)} images; it must return "
                                "[N, D].")
            out.append(feats.detach().cpu().double())
    if not out:
        raise Qua2Error("no images were given to extract features from.")
    return torch.cat(out)


def _check_images(images: object) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
        desc = (f"{images.dtype} tensor of shape {tuple(images.shape)}"
                if isinstance(images, torch.Tensor) else type(images).__name__)
        raise Qua2Error(f"images must be a float tensor [N, C, H, W] in [-1, 1], got {desc}.")


# ------------------------------------------------------------------------------ reference cache
def reference_stats_path(extractor_id: str, data_key: str) -> Path:
    """Where the reference statistics of ``data_key`` under ``extractor_id`` are cached."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{extractor_id}--{data_key}")
    return cache_dir() / "metrics" / "reference-stats" / f"{safe}.safetensors"


def reference_stats(extractor: FeatureExtractor,
                    images: torch.Tensor | Iterable[torch.Tensor],
                    data_key: str | None = None, use_cache: bool = True) -> GaussianStats:
    """Gaussian statistics of real images' features, computed once and cached.

    For a tensor, the cache key is a digest of its bytes unless ``data_key`` is given; an
    iterable of batches (e.g. a large folder streamed from disk) needs an explicit ``data_key``
    naming the data set, because it cannot be hashed before it is consumed.
    """
    if data_key is None:
        if not isinstance(images, torch.Tensor):
            raise Qua2Error("reference images given as an iterable need a data_key naming the "
                            "data set, so their statistics can be cached.")
        _check_images(images)
        data_key = tensor_digest(images)
    path = reference_stats_path(extractor.id, data_key)
    if use_cache and path.exists():
        cached = _load_stats(path)
        if cached is not None:
            return cached
        log.warning("recomputing reference statistics: the cached file %s is corrupted.",
                    path)
    stats = GaussianStats.from_features(extract_features(extractor, images))
    if use_cache:
        _save_stats(stats, path)
    return stats


def _save_stats(stats: GaussianStats, path: Path) -> None:
    metadata = {"n": str(stats.n), "digest": _stats_digest(stats.mu, stats.sigma)}
    # Atomic: concurrent workers never read half a file.
    write_safetensors(path, {"mu": torch.from_numpy(stats.mu),
                             "sigma": torch.from_numpy(stats.sigma)}, metadata)


def _stats_digest(mu: np.ndarray, sigma: np.ndarray) -> str:
    return bytes_digest(np.ascontiguousarray(mu).tobytes() + np.ascontiguousarray(sigma).tobytes())


def _load_stats(path: Path) -> GaussianStats | None:
    """The cached statistics, or ``None`` if the file is unreadable or inconsistent."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata()
            n = int(metadata["n"])
            mu, sigma = handle.get_tensor("mu"), handle.get_tensor("sigma")
    except Exception:  # any parse failure means "recompute", never "crash"
        return None
    if metadata.get("digest") != _stats_digest(mu, sigma):  # a flipped bit: recompute
        return None
    ok = (mu.ndim == 1 and sigma.shape == (len(mu), len(mu)) and np.isfinite(sigma).all()
          and np.isfinite(mu).all())
    return GaussianStats(mu, sigma, n) if ok else None


# ------------------------------------------------------------------------------ the metric
class FrechetScorer:
    """Fréchet distance of generated images to fixed reference statistics, under one extractor.

    ``FrechetScorer(extractor, reference_images)`` computes (or loads) the reference statistics
    once; calling it on generated images returns d². Scores from different sample counts are
    not comparable: the estimator is biased upward at small N (Chong & Forsyth, 2020).
    """

    def __init__(self, extractor: FeatureExtractor,
                 reference: torch.Tensor | Iterable[torch.Tensor] | GaussianStats,
                 data_key: str | None = None, use_cache: bool = True) -> None:
        self.extractor = extractor
        self.reference = (reference if isinstance(reference, GaussianStats)
                          else reference_stats(extractor, reference, data_key, use_cache))

    def features(self, images: torch.Tensor) -> np.ndarray:
        """``[N, D]`` float64 features of ``images`` under this scorer's extractor."""
        return extract_features(self.extractor, images).numpy()

    def stats(self, images: torch.Tensor) -> GaussianStats:
        """Gaussian statistics of ``images`` under this scorer's extractor."""
        return GaussianStats.from_features(self.features(images))

    @cached_property
    def reference_root(self) -> np.ndarray:
        """Σ^½ of the reference statistics, computed once for every distance to them."""
        return _psd_sqrt(self.reference.sigma)

    def distance(self, stats: GaussianStats) -> float:
        """Fréchet distance of ``stats`` to the reference."""
        return frechet_distance(self.reference, stats, root_a=self.reference_root)

    def __call__(self, images: torch.Tensor) -> float:
        return self.distance(self.stats(images))
