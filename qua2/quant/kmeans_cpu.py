"""The CPU kernel of :mod:`qua2.quant.kmeans`: the same 1-D k-means, compiled with Numba.

On the CPU the vectorised tensor version pays a fixed cost of ~1500 small tensor operations per
call (≈ 8 ms), more than scikit-learn needs for a whole small layer. This kernel runs the same
steps — sort-based prefix sums, Panter–Dite density initialisation, Lloyd on cuts, split–merge
moves (see :mod:`qua2.quant.kmeans` for the papers) — row by row as compiled scalar code, rows in
parallel. It is an implementation detail: :func:`qua2.quant.kmeans.kmeans_1d_centroids` picks it
for CPU tensors, the tensor version runs everywhere else (CUDA). Numba caches the compiled code
on disk, so only the first call on a machine compiles (a few seconds).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numba
import numpy as np
from numba import njit, prange

from qua2.quant.kmeans import LLOYD_ITERS, SPLIT_ITERS, SPLIT_MERGE_ROUNDS


@contextmanager
def use_threads(count: int) -> Iterator[None]:
    """Run Numba's parallel loops on at most ``count`` threads inside the block."""
    previous = numba.get_num_threads()
    # numba.config sets its NUMBA_* settings as globals at import, invisible to mypy.
    limit = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
    numba.set_num_threads(max(1, min(count, limit)))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


@njit(cache=True, inline="always")
def _mean(v: np.ndarray, p: np.ndarray, a: int, b: int) -> float:
    """Mean of the run ``v[a:b]`` from prefix sums; an empty run falls back to ``v[a]``."""
    if b > a:
        return (p[b] - p[a]) / (b - a)
    return float(v[min(a, v.shape[0] - 1)])


@njit(cache=True, inline="always")
def _ward(p: np.ndarray, a: int, t: int, b: int) -> float:
    """SSE(a, b) − SSE(a, t) − SSE(t, b) (Ward, 1963); 0 when a side is empty."""
    left, right = t - a, b - t
    if left == 0 or right == 0:
        return 0.0
    diff = (p[t] - p[a]) / left - (p[b] - p[t]) / right
    return left * right / (left + right) * diff * diff


@njit(cache=True)
def _density_init(v: np.ndarray, k: int, spacing: int = 8) -> np.ndarray:
    """Centroids at the (j + ½)/k quantiles of the p^{1/3} mass (Panter & Dite, 1951)."""
    n = v.shape[0]
    steps = max(1, (n - 1) // spacing)
    edges = np.empty(steps + 1)
    for i in range(steps + 1):
        edges[i] = v[i * (n - 1) // steps]
    cdf = np.zeros(steps + 1)
    for i in range(steps):
        cdf[i + 1] = cdf[i] + max(edges[i + 1] - edges[i], 0.0) ** (2.0 / 3.0)
    total = cdf[steps] if cdf[steps] > 0 else 1.0
    centroids = np.empty(k)
    for j in range(k):
        q = (j + 0.5) / k * total
        hi = min(max(np.searchsorted(cdf, q), 1), steps)
        span = cdf[hi] - cdf[hi - 1]
        frac = min(max((q - cdf[hi - 1]) / max(span, 1e-300), 0.0), 1.0)
        centroids[j] = edges[hi - 1] + frac * (edges[hi] - edges[hi - 1])
    return centroids


@njit(cache=True)
def _cuts_of(v: np.ndarray, centroids: np.ndarray, cuts: np.ndarray) -> bool:
    """Nearest-centroid cuts (first value ≥ each midpoint) into ``cuts``; True if any moved."""
    moved = False
    for j in range(1, centroids.shape[0]):
        mid = np.float32((centroids[j - 1] + centroids[j]) * 0.5)
        cut = np.searchsorted(v, mid)
        if cut != cuts[j]:
            cuts[j] = cut
            moved = True
    return moved


@njit(cache=True)
def _lloyd(v: np.ndarray, p: np.ndarray, cuts: np.ndarray) -> None:
    """Lloyd's algorithm on cuts until no cut moves (Lloyd, 1982), at most LLOYD_ITERS passes."""
    k = cuts.shape[0] - 1
    centroids = np.empty(k)
    for _ in range(LLOYD_ITERS):
        for j in range(k):
            centroids[j] = _mean(v, p, cuts[j], cuts[j + 1])
        if not _cuts_of(v, centroids, cuts):
            return


@njit(cache=True)
def _split(v: np.ndarray, p: np.ndarray, a: int, b: int) -> tuple[int, float]:
    """2-means split of ``v[a:b]``: (cut, SSE gain); a run of < 2 values cannot split."""
    if b - a < 2:
        return a, 0.0
    cut = min(max(np.searchsorted(v, np.float32(_mean(v, p, a, b))), a + 1), b - 1)
    for _ in range(SPLIT_ITERS):
        middle = np.float32((_mean(v, p, a, cut) + _mean(v, p, cut, b)) * 0.5)
        cut = min(max(np.searchsorted(v, middle), a + 1), b - 1)
    return cut, _ward(p, a, cut, b)


@njit(cache=True)
def _split_merge(v: np.ndarray, p: np.ndarray, cuts: np.ndarray, min_gain: float) -> None:
    """Merge the cheapest neighbouring pair and split the best cluster while the SSE drops."""
    k = cuts.shape[0] - 1
    if k < 3:
        return
    split_at = np.empty(k, dtype=np.int64)
    gain = np.empty(k)
    merged = np.empty(k + 1, dtype=np.int64)
    for _ in range(SPLIT_MERGE_ROUNDS):
        for s in range(k):
            cut, gained = _split(v, p, cuts[s], cuts[s + 1])
            split_at[s] = cut
            gain[s] = gained
        # As the tensor version: only the two best splits, each with its cheapest merge that
        # does not touch it.
        first = int(np.argmax(gain))
        second = -1
        for s in range(k):
            if s != first and (second < 0 or gain[s] > gain[second]):
                second = s
        best, best_pair, best_split = -np.inf, 0, 0
        for s in (first, second):
            cost, pair = np.inf, 0
            for q in range(k - 1):  # merging clusters q and q + 1 removes cuts[q + 1]
                if q != s and q + 1 != s:
                    c = _ward(p, cuts[q], cuts[q + 1], cuts[q + 2])
                    if c < cost:
                        cost, pair = c, q
            if gain[s] - cost > best:
                best, best_pair, best_split = gain[s] - cost, pair, s
        if best <= min_gain:
            return
        m = 0
        for j in range(k + 1):
            if j != best_pair + 1:
                merged[m] = cuts[j]
                m += 1
        merged[m] = split_at[best_split]
        cuts[:] = np.sort(merged)
        _lloyd(v, p, cuts)


@njit(cache=True, parallel=True)
def kmeans_rows(sorted_rows: np.ndarray, k: int) -> np.ndarray:
    """Sorted centroids ``[rows, k]`` (float64) of rows already sorted ascending (float32)."""
    rows, n = sorted_rows.shape
    out = np.empty((rows, k))
    for r in prange(rows):
        v = sorted_rows[r]
        p = np.zeros(n + 1)
        energy = 0.0
        for i in range(n):
            p[i + 1] = p[i] + v[i]
            energy += float(v[i]) * float(v[i])
        cuts = np.zeros(k + 1, dtype=np.int64)
        cuts[k] = n
        _cuts_of(v, _density_init(v, k), cuts)
        _lloyd(v, p, cuts)
        _split_merge(v, p, cuts, 1e-12 * energy)
        for j in range(k):
            out[r, j] = _mean(v, p, cuts[j], cuts[j + 1])
    return out


@njit(cache=True, parallel=True)
def assign_rows(x: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Codes ``[rows, n]`` (uint8): how many of the row's sorted ``bounds`` are ≤ each value."""
    rows, n = x.shape
    codes = np.zeros((rows, n), dtype=np.uint8)
    for r in prange(rows):
        for j in range(bounds.shape[1]):  # one comparison per bound: branch-free, vectorised
            bound = bounds[r, j]
            for i in range(n):
                codes[r, i] += x[r, i] >= bound
    return codes
