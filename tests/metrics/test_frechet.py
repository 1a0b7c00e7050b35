import math

import numpy as np
import pytest
import scipy.linalg
import torch

from qua2.errors import Qua2Error
from qua2.metrics.frechet import (
    FeatureExtractor,
    FrechetScorer,
    GaussianStats,
    frechet_distance,
    reference_stats,
    reference_stats_path,
)


def test_hand_computed_gaussians():
    # Diagonal covariances commute, so d² = ‖Δμ‖² + Σ (√a − √b)².
    a = GaussianStats(np.array([0.0, 1.0]), np.diag([4.0, 1.0]), 10)
    b = GaussianStats(np.array([3.0, 1.0]), np.diag([1.0, 9.0]), 10)
    expected = 9.0 + (2 - 1) ** 2 + (1 - 3) ** 2
    assert frechet_distance(a, b) == pytest.approx(expected, abs=1e-9)
    assert frechet_distance(b, a) == pytest.approx(expected, abs=1e-9)


def test_matches_scipy_sqrtm_on_full_covariances():
    rng = np.random.default_rng(0)
    a = GaussianStats.from_features(rng.normal(size=(400, 12)))
    b = GaussianStats.from_features(rng.normal(size=(300, 12)) @ rng.normal(size=(12, 12)) + 1)
    covmean = scipy.linalg.sqrtm(a.sigma @ b.sigma).real
    ref = (((a.mu - b.mu) ** 2).sum() + np.trace(a.sigma) + np.trace(b.sigma)
           - 2 * np.trace(covmean))
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-8)


def test_identical_and_rank_deficient():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(20, 64))  # N < D: singular covariance, sqrtm would be unreliable
    s = GaussianStats.from_features(f)
    assert frechet_distance(s, s) == pytest.approx(0.0, abs=1e-8)
    assert math.isfinite(frechet_distance(s, GaussianStats.from_features(f + 0.5)))


def test_distance_grows_with_noise(pixels, real_digits):
    images, _ = real_digits
    scorer = FrechetScorer(pixels, images[:900], use_cache=False)
    gen = torch.Generator().manual_seed(0)
    other = images[900:]
    scores = [scorer((other + s * torch.randn(other.shape, generator=gen)).clamp(-1, 1))
              for s in (0.0, 0.2, 0.5, 1.0)]
    assert scores == sorted(scores) and scores[-1] > 10 * scores[0]


def test_shuffling_pixels_moves_away(pixels, real_digits):
    images, _ = real_digits
    scorer = FrechetScorer(pixels, images[:900], use_cache=False)
    shuffled = images[900:].flatten(1)[:, torch.randperm(64)].reshape(-1, 1, 8, 8)
    assert scorer(shuffled) > 5 * scorer(images[900:])


def test_reference_stats_cached_once(pixels, real_digits, tmp_path, monkeypatch):
    monkeypatch.setenv("QUA2_CACHE_DIR", str(tmp_path))
    images, _ = real_digits
    first = reference_stats(pixels, images)
    assert pixels.calls > 0
    calls = pixels.calls
    second = reference_stats(pixels, images)
    assert pixels.calls == calls  # loaded from disk, no feature extraction
    np.testing.assert_array_equal(first.sigma, second.sigma)
    assert second.n == 1797


def test_corrupted_reference_cache_recomputed(pixels, real_digits, tmp_path, monkeypatch,
                                              caplog):
    monkeypatch.setenv("QUA2_CACHE_DIR", str(tmp_path))
    images, _ = real_digits
    first = reference_stats(pixels, images, data_key="digits")
    reference_stats_path(pixels.id, "digits").write_bytes(b"not a safetensors file")
    again = reference_stats(pixels, images, data_key="digits")
    assert "corrupted" in caplog.text
    np.testing.assert_allclose(first.mu, again.mu)


def test_iterable_reference_needs_key(pixels, real_digits):
    images, _ = real_digits
    with pytest.raises(Qua2Error, match="data_key"):
        reference_stats(pixels, iter(images.split(100)))
    stats = reference_stats(pixels, iter(images.split(100)), data_key="x", use_cache=False)
    assert stats.n == 1797


def test_protocol_and_bad_input(pixels):
    assert isinstance(pixels, FeatureExtractor)
    with pytest.raises(Qua2Error, match="at least 2"):
        GaussianStats.from_features(torch.zeros(1, 4))
    with pytest.raises(Qua2Error, match="NaN"):
        GaussianStats.from_features(torch.full((3, 4), float("nan")))
    with pytest.raises(Qua2Error, match="dimension"):
        frechet_distance(GaussianStats.from_features(torch.randn(5, 3)),
                         GaussianStats.from_features(torch.randn(5, 4)))
    with pytest.raises(Qua2Error, match=r"\[N, C, H, W\]"):
        FrechetScorer(pixels, torch.zeros(10, 64), use_cache=False)
