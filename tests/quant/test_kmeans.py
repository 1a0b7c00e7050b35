"""Vectorised 1-D k-means: exact DP reference, scikit-learn parity, edge cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from qua2.quant.kmeans import assign_codes, kmeans_1d, kmeans_1d_optimal


def _rows(kind: str, rows: int, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "normal":
        return torch.randn(rows, n, generator=g)
    u = torch.rand(rows, n, generator=g) - 0.5
    if kind == "laplace":
        return -u.sign() * torch.log1p(-2 * u.abs())
    # Student t with 3 degrees of freedom: outliers that trap plain Lloyd iterations.
    chi2 = torch.randn(rows, n, 3, generator=g).square().sum(-1)
    return torch.randn(rows, n, generator=g) / (chi2 / 3).sqrt()


def _sse(x: torch.Tensor, centroids: torch.Tensor, codes: torch.Tensor) -> np.ndarray:
    return (x.double() - centroids.gather(1, codes.long())).square().sum(1).numpy()


def _brute_force(values: np.ndarray, k: int) -> float:
    """Least SSE over every split of the sorted values into k contiguous runs."""
    x = np.sort(values)
    best = np.inf
    for cuts in itertools.combinations(range(1, len(x)), k - 1):
        parts = np.split(x, cuts)
        best = min(best, sum(((p - p.mean()) ** 2).sum() for p in parts))
    return best


@pytest.mark.parametrize("seed", range(5))
def test_dp_reference_is_exact(seed):
    values = np.random.default_rng(seed).normal(size=9)
    _, sse = kmeans_1d_optimal(values, 3)
    assert sse == pytest.approx(_brute_force(values, 3), rel=1e-9, abs=1e-12)


def test_dp_reference_centroids():
    centroids, sse = kmeans_1d_optimal(np.array([0, 1, 2, 10, 11, 12, 20, 30.0]), 4)
    assert centroids.tolist() == [1.0, 11.0, 20.0, 30.0]
    assert sse == pytest.approx(4.0)


@pytest.mark.parametrize(("kind", "n", "k"), [("normal", 96, 8), ("laplace", 128, 16),
                                              ("student", 200, 16), ("normal", 300, 4)])
def test_close_to_the_exact_optimum_and_never_below(kind, n, k):
    x = _rows(kind, 16, n, seed=n + k)
    centroids, codes = kmeans_1d(x, k)
    ours = _sse(x, centroids, codes)
    optimum = np.array([kmeans_1d_optimal(row, k)[1] for row in x.double().numpy()])
    assert np.all(ours >= optimum * (1 - 1e-9))  # also a check of the reference
    assert ours.sum() <= 1.15 * optimum.sum()


@pytest.mark.parametrize(("kind", "n", "k"), [("normal", 256, 8), ("normal", 1152, 16),
                                              ("laplace", 200, 8), ("student", 600, 16),
                                              ("student", 64, 8), ("normal", 300, 4)])
def test_error_at_most_scikit_learn(kind, n, k):
    from sklearn.cluster import KMeans

    x = _rows(kind, 24, n, seed=7 * n + k)
    centroids, codes = kmeans_1d(x, k)
    ours = _sse(x, centroids, codes).sum()
    theirs = sum(KMeans(n_clusters=k, n_init="auto", random_state=0)
                 .fit(row[:, None]).inertia_ for row in x.double().numpy())
    assert ours <= theirs


def test_deterministic_and_sorted():
    x = _rows("laplace", 8, 100, seed=0)
    a, codes_a = kmeans_1d(x, 8)
    b, codes_b = kmeans_1d(x.clone(), 8)
    assert torch.equal(a, b) and torch.equal(codes_a, codes_b)
    assert torch.all(a[:, 1:] >= a[:, :-1])


def test_codes_are_nearest_centroids():
    x = _rows("normal", 5, 77, seed=2)
    centroids, codes = kmeans_1d(x, 8)
    distance = (x.double()[:, :, None] - centroids[:, None, :]).abs()
    nearest = distance.gather(2, codes.long()[:, :, None]).squeeze(2)
    assert torch.all(nearest <= distance.min(dim=2).values + 1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])  # compiled / tensor path
def test_assign_codes_ties_go_up(dtype):
    centroids = torch.tensor([[0.0, 2.0, 4.0, 6.0]], dtype=torch.float64)
    codes = assign_codes(torch.tensor([[-1.0, 1.0, 0.999, 3.0, 5.0, 7.0]], dtype=dtype),
                         centroids)
    assert codes.tolist() == [[0, 1, 0, 2, 3, 3]]


@pytest.mark.parametrize("row", [[3.0] * 10, [1.0, 2.0], [0.0, 0.0, 0.0, 1.0, 1.0]])
def test_degenerate_rows(row):
    x = torch.tensor([row])
    centroids, codes = kmeans_1d(x, 8)
    assert torch.isfinite(centroids).all()
    assert _sse(x, centroids, codes).sum() == pytest.approx(0.0, abs=1e-12)


def test_many_rows_at_once_match_one_at_a_time():
    x = _rows("student", 6, 90, seed=4)
    together = _sse(x, *kmeans_1d(x, 8))
    alone = np.concatenate([_sse(x[i : i + 1], *kmeans_1d(x[i : i + 1], 8)) for i in range(6)])
    np.testing.assert_allclose(together, alone, rtol=1e-9)


def test_batched_tensor_version_does_not_depend_on_the_batch():
    """A row's centroids are the same alone or among others (a stopping tolerance applied to
    the whole batch once let converged rows keep iterating beside slower ones)."""
    from qua2.quant.kmeans import kmeans_tensor_centroids, sort_rows

    x = sort_rows(torch.randn(256, 1152, generator=torch.Generator().manual_seed(0)) * 0.02)
    together = kmeans_tensor_centroids(x, 16)
    alone = torch.cat([kmeans_tensor_centroids(x[i : i + 1], 16) for i in range(0, 256, 16)])
    # Bit-exact by design: a row's cuts are integers from the same per-row comparisons whatever
    # its batch, and equal cuts give the same float64 means. (The bug this guards against moved
    # centroids by far more than any rounding, so no tolerance would be the better test.)
    assert torch.equal(together[::16], alone)


@pytest.mark.parametrize("k", [4, 8, 16])
def test_compiled_cpu_kernel_matches_the_tensor_version(k):
    """The CPU kernel (Numba) and the batched tensor version (CUDA's) give the same clustering."""
    from qua2.quant.kmeans import kmeans_tensor_centroids, sort_rows
    from qua2.quant.kmeans_cpu import kmeans_rows

    generator = torch.Generator().manual_seed(k)
    torch.manual_seed(k)  # StudentT draws from the global generator
    x = torch.cat([torch.randn(40, 300, generator=generator),
                   torch.distributions.StudentT(3.0).sample((40, 300)),
                   torch.rand(40, 300, generator=generator).round(decimals=1)])  # ties
    rows = sort_rows(x)
    # Same clusters; the centroids are float64 means summed in another order by each version.
    np.testing.assert_allclose(kmeans_rows(rows.numpy(), k),
                               kmeans_tensor_centroids(rows, k).numpy(), rtol=0, atol=1e-12)
