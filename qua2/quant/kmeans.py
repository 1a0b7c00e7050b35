"""Fast, deterministic 1-D k-means over many rows at once, plus an exact reference.

Qua²SeDiMo (Mills et al., AAAI 2025) quantizes weights by 1-D k-means per output channel
(K-Means-C) or per layer (K-Means-A); its public code calls scikit-learn's ``KMeans`` once per
channel, which takes days for large denoisers. Here every row of a layer is clustered at once,
with no per-row Python loop, on CPU or CUDA:

1. **Sort** each row. In one dimension every optimal cluster is a contiguous run of sorted
   values, so a clustering is just k − 1 *cut* positions, and any cluster's size and mean are
   differences of prefix sums (the observation behind Ckmeans.1d.dp, Wang & Song 2011); SSE
   changes of splits and merges follow from means alone (Ward 1963).
2. **Initialise** from the asymptotically optimal point density of a quantizer, ∝ p(x)^{1/3}
   (Panter & Dite 1951; Gersho 1979): with the density estimated from sorted spacings, the
   p^{1/3}-mass between order statistics is ∝ spacing^{2/3}, and the k centroids sit at the
   (j + ½)/k quantiles of that mass. Deterministic, and it gives the tails their centroids.
3. **Lloyd** iterations (Lloyd 1982) on cuts: the cut between two clusters moves to the first
   value at or above the midpoint of their centroids — one batched ``searchsorted`` — until
   no cut moves (exact convergence, so a row's result never depends on its batch).
4. **Split–merge** moves (as in ISODATA, Ball & Hall 1965): merge the adjacent pair that costs
   least and split the cluster that gains most (by 2-means on its range) whenever that lowers
   the SSE, then run Lloyd again. This escapes the local optima Lloyd gets stuck in.
5. **Assign** codes by counting the midpoints at or below each value.

On the CPU the sort uses NumPy, whose vectorised sort is several times faster than
``torch.sort`` there, and the clustering runs in a compiled kernel (``kmeans_cpu.py``, Numba)
that does the same steps row by row without the fixed cost of ~1500 small tensor operations
per call. :func:`kmeans_1d_optimal` solves the problem exactly by dynamic
programming (Bellman 1973; Wang & Song 2011) in ``O(k · n²)``; it is the reference in tests.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.nn.functional import pad

#: Caps on iterations; every loop stops earlier once no row changes.
LLOYD_ITERS = 100
SPLIT_MERGE_ROUNDS = 16
SPLIT_ITERS = 4


@dataclass(frozen=True)
class SortedRows:
    """Rows sorted ascending (float32) with float64 prefix sums and per-row energy.

    A run ``[a, b)`` of a sorted row is a candidate cluster; its mean costs O(1), and so do
    the SSE changes of splitting or merging runs (Ward's formula), so no prefix sum of squares
    is needed.
    """

    values: Tensor  # [rows, n] float32, ascending
    p1: Tensor  # [rows, n + 1] float64: p1[:, j] = values[:, :j].sum()
    energy: Tensor  # [rows] float64: sum of squares

    @classmethod
    def of(cls, sorted_rows: Tensor) -> SortedRows:
        values = sorted_rows.float().contiguous()
        return cls(values, _prefix_sum(values), _energy(values))

    @property
    def n(self) -> int:
        return self.values.shape[1]

    def select(self, index: Tensor) -> SortedRows:
        return SortedRows(self.values[index], self.p1[index], self.energy[index])

    def sums(self, positions: Tensor) -> Tensor:
        """Prefix sums at ``positions``: a gather into ``p1`` (the costly, cache-missing step,
        so callers that need the same positions twice gather once and pass the result)."""
        return self.p1.gather(1, positions)

    def mean(self, a: Tensor, b: Tensor, p_a: Tensor | None = None,
             p_b: Tensor | None = None) -> Tensor:
        """Mean of ``[a, b)``; an empty run falls back to the value at ``a``.

        ``p_a`` / ``p_b`` are ``sums(a)`` / ``sums(b)`` when the caller has them already.
        """
        p_a = self.sums(a) if p_a is None else p_a
        p_b = self.sums(b) if p_b is None else p_b
        count = (b - a).to(torch.float64)
        mean = (p_b - p_a) / count.clamp_min(1)
        empty = count == 0
        if bool(empty.any()):
            fallback = self.values.gather(1, a.clamp(max=self.n - 1)).double()
            mean = torch.where(empty, fallback, mean)
        return mean

    def ward(self, a: Tensor, t: Tensor, b: Tensor, p_a: Tensor, p_t: Tensor,
             p_b: Tensor) -> Tensor:
        """SSE(a, b) − SSE(a, t) − SSE(t, b) = n_l·n_r/n · (μ_l − μ_r)² (Ward, 1963).

        The SSE a split of run ``[a, b)`` at ``t`` removes, or a merge of ``[a, t)`` and
        ``[t, b)`` adds; 0 when a side is empty. ``p_*`` are the prefix sums at the positions.
        """
        left, right = (t - a).to(torch.float64), (b - t).to(torch.float64)
        diff = (p_t - p_a) / left.clamp_min(1) - (p_b - p_t) / right.clamp_min(1)
        return left * right / (left + right).clamp_min(1) * diff.square()

    def means(self, cuts: Tensor) -> Tensor:
        """Centroids ``[rows, k]`` of the clusters between consecutive ``cuts``."""
        p = self.sums(cuts)
        return self.mean(cuts[:, :-1], cuts[:, 1:], p[:, :-1], p[:, 1:])

    def merge_costs(self, cuts: Tensor, p: Tensor | None = None) -> Tensor:
        """``[rows, k − 1]`` SSE added by merging each pair of neighbouring clusters
        (``p``: ``sums(cuts)`` when the caller has it)."""
        p = self.sums(cuts) if p is None else p
        return self.ward(cuts[:, :-2], cuts[:, 1:-1], cuts[:, 2:], p[:, :-2], p[:, 1:-1],
                         p[:, 2:])

    def first_at_least(self, values: Tensor) -> Tensor:
        """Per row, the first position whose value is ≥ each of ``values`` (``[rows, m]``)."""
        return torch.searchsorted(self.values, values.to(self.values.dtype).contiguous())

    def cuts_of(self, centroids: Tensor) -> Tensor:
        """Cuts ``[rows, k + 1]`` (with 0 and n) of the nearest-centroid clustering."""
        inner = self.first_at_least((centroids[:, 1:] + centroids[:, :-1]) * 0.5)
        edge = inner.new_zeros(inner.shape[0], 1)
        return torch.cat([edge, inner, edge + self.n], dim=1)


def _prefix_sum(x: Tensor) -> Tensor:
    """``[rows, n + 1]`` float64 running sums with a leading 0 (NumPy on the CPU: ~3× faster)."""
    if x.device.type == "cpu":
        out = np.empty((x.shape[0], x.shape[1] + 1))  # no zero-fill of 8 bytes per weight
        out[:, 0] = 0.0
        np.cumsum(x.numpy(), axis=1, dtype=np.float64, out=out[:, 1:])
        return torch.from_numpy(out)
    return pad(torch.cumsum(x, dim=1, dtype=torch.float64), (1, 0))


def _energy(x: Tensor) -> Tensor:
    """``[rows]`` float64 sums of squares (NumPy's einsum on the CPU: ~4× faster, no temporary)."""
    if x.device.type == "cpu":
        v = x.numpy()
        return torch.from_numpy(np.einsum("ij,ij->i", v, v, dtype=np.float64))
    return torch.sum(x * x, dim=1, dtype=torch.float64)


def sort_rows(x: Tensor) -> Tensor:
    """Each row of a 2-D tensor sorted ascending, float32, same device."""
    x = x.detach().float()
    if x.device.type == "cpu":
        return torch.from_numpy(np.sort(x.numpy(), axis=1))
    return torch.sort(x, dim=1).values


def density_init(rows: SortedRows, k: int, spacing: int = 8) -> Tensor:
    """Centroids at the (j + ½)/k quantiles of the p^{1/3} mass (Panter–Dite), ``[rows, k]``.

    The density is estimated from spacings of order statistics ``spacing`` apart; the
    p^{1/3}-mass of a spacing of width w holding a fixed count is ∝ w^{2/3}.
    """
    n = rows.n
    steps = max(1, (n - 1) // spacing)
    edges = rows.values[:, torch.arange(steps + 1, device=rows.values.device) * (n - 1) // steps]
    edges = edges.double()
    mass = pad(edges.diff(dim=1).clamp_min(0).pow(2.0 / 3.0).cumsum(dim=1), (1, 0))
    total = mass[:, -1:]
    cdf = mass / torch.where(total > 0, total, torch.ones_like(total))
    q = ((torch.arange(k, device=edges.device, dtype=edges.dtype) + 0.5) / k)
    q = q.expand(edges.shape[0], k)
    hi = torch.searchsorted(cdf.contiguous(), q.contiguous()).clamp_(1, steps)
    c_lo, c_hi = cdf.gather(1, hi - 1), cdf.gather(1, hi)
    frac = ((q - c_lo) / (c_hi - c_lo).clamp_min(1e-300)).clamp_(0, 1)
    e_lo, e_hi = edges.gather(1, hi - 1), edges.gather(1, hi)
    return e_lo + frac * (e_hi - e_lo)


def lloyd_cuts(rows: SortedRows, cuts: Tensor, max_iter: int = LLOYD_ITERS) -> Tensor:
    """Lloyd's algorithm on cuts, per row until no cut moves (or ``max_iter`` passes).

    Exact convergence, not a tolerance on centroid movement: a row whose cuts stopped moving is
    a fixed point, so it may stay in the batch while others continue without changing — each
    row's result is the same whatever it is batched with (tested).
    """
    out = cuts.clone()
    active = torch.arange(cuts.shape[0], device=cuts.device)
    sub, cur = rows, cuts
    centroids = sub.means(cur)
    for _ in range(max_iter):
        new = sub.cuts_of(centroids)
        out[active] = new
        moving = (new != cur).any(dim=1)
        if not bool(moving.any()):
            break
        if int(moving.sum()) * 2 <= moving.numel():
            # Shrink the working set only when that halves it: selecting copies the rows.
            keep = moving.nonzero().squeeze(1)
            active, sub, new = active[keep], sub.select(keep), new[keep]
        cur, centroids = new, sub.means(new)
    return out


def split_cuts(rows: SortedRows, a: Tensor, b: Tensor, p_a: Tensor, p_b: Tensor
               ) -> tuple[Tensor, Tensor]:
    """2-means split of each cluster ``[a, b)`` (prefix sums ``p_a``, ``p_b``): (cut, SSE gain)."""
    too_small = b - a < 2

    def inside(cut: Tensor) -> Tensor:
        # Keep both halves non-empty; a cluster of < 2 values "splits" into itself and nothing.
        return torch.where(too_small, a, torch.maximum(torch.minimum(cut, b - 1), a + 1))

    cut = inside(rows.first_at_least(rows.mean(a, b, p_a, p_b)))
    for _ in range(SPLIT_ITERS):
        p_cut = rows.sums(cut)
        middle = (rows.mean(a, cut, p_a, p_cut) + rows.mean(cut, b, p_cut, p_b)) * 0.5
        cut = inside(rows.first_at_least(middle))
    return cut, rows.ward(a, cut, b, p_a, rows.sums(cut), p_b)


def _best_move(rows: SortedRows, cuts: Tensor) -> tuple[Tensor, Tensor]:
    """Best "merge pair (p, p+1), split cluster s ∉ {p, p+1}" per row: (new cuts, SSE gain).

    Only the two best splits are paired with their best compatible merge: O(rows · k) rather
    than all k² pairs, and the same answer unless the two best splits both touch every
    cheap merge.
    """
    k = cuts.shape[1] - 1
    p = rows.sums(cuts)
    cut, gain = split_cuts(rows, cuts[:, :-1], cuts[:, 1:], p[:, :-1], p[:, 1:])
    merge_cost = rows.merge_costs(cuts, p)  # [rows, k - 1]
    pairs = torch.arange(k - 1, device=cuts.device)
    best_gain = torch.full_like(gain[:, 0], float("-inf"))
    best_pair = torch.zeros_like(cuts[:, 0])
    best_split = torch.zeros_like(cuts[:, 0])
    for split in gain.topk(min(2, k), dim=1).indices.unbind(dim=1):
        touches = (pairs == split[:, None]) | (pairs + 1 == split[:, None])
        cost, pair = merge_cost.masked_fill(touches, float("inf")).min(dim=1)
        total = gain.gather(1, split[:, None]).squeeze(1) - cost
        better = total > best_gain
        best_gain = torch.where(better, total, best_gain)
        best_pair = torch.where(better, pair, best_pair)
        best_split = torch.where(better, split, best_split)
    keep = torch.ones_like(cuts, dtype=torch.bool).scatter_(1, (best_pair + 1)[:, None], False)
    merged = cuts[keep].view(cuts.shape[0], -1)
    moved = torch.cat([merged, cut.gather(1, best_split[:, None])], dim=1)
    return torch.sort(moved, dim=1).values, best_gain


def split_merge(rows: SortedRows, cuts: Tensor, rounds: int = SPLIT_MERGE_ROUNDS) -> Tensor:
    """Apply improving split–merge moves (each followed by Lloyd) while any row improves."""
    if cuts.shape[1] - 1 < 3:
        return cuts
    out = cuts.clone()
    active = torch.arange(cuts.shape[0], device=cuts.device)
    sub, cur = rows, cuts
    for _ in range(rounds):
        candidate, gain = _best_move(sub, cur)
        # The move's gain is the exact SSE drop and Lloyd never raises the SSE, so every row
        # with a gain above rounding noise improves.
        better = gain > 1e-12 * sub.energy
        if not bool(better.any()):
            break
        keep = better.nonzero().squeeze(1)
        active, sub = active[keep], sub.select(keep)
        cur = lloyd_cuts(sub, candidate[keep])
        out[active] = cur
    return out


def assign_codes(x: Tensor, centroids: Tensor) -> Tensor:
    """Index of the nearest of the sorted ``centroids`` ``[rows, k]`` for every value of ``x``.

    Counts the midpoints at or below each value (ties go up): on the CPU in a compiled,
    branch-free loop (``kmeans_cpu.assign_rows``); elsewhere in place on one uint8 buffer, so no
    temporaries the size of ``x`` are allocated per centroid.
    """
    bounds = ((centroids[:, 1:] + centroids[:, :-1]) * 0.5).to(x.dtype)
    if x.device.type == "cpu" and x.dtype == torch.float32:
        from qua2.quant.kmeans_cpu import assign_rows, use_threads

        with use_threads(torch.get_num_threads()):
            return torch.from_numpy(assign_rows(np.ascontiguousarray(x.detach().numpy()),
                                                np.ascontiguousarray(bounds.numpy())))
    codes = torch.zeros(x.shape, dtype=torch.uint8, device=x.device)
    hit = torch.empty(x.shape, dtype=torch.bool, device=x.device)
    for j in range(bounds.shape[1]):
        torch.ge(x, bounds[:, j : j + 1], out=hit)
        codes += hit
    return codes


def kmeans_1d_centroids(sorted_rows: Tensor, k: int) -> Tensor:
    """Sorted centroids ``[rows, k]`` (float64) for rows that are already sorted ascending.

    CPU tensors go to the compiled row-by-row kernel (:mod:`qua2.quant.kmeans_cpu`), others
    (CUDA) to the batched tensor version; both run the same algorithm to the same result.
    """
    if sorted_rows.shape[1] <= k:
        # No more values than centroids: every value is its own centroid (SSE 0).
        extra = sorted_rows[:, -1:].expand(-1, k - sorted_rows.shape[1])
        return torch.cat([sorted_rows, extra], dim=1).double()
    if sorted_rows.device.type == "cpu":
        from qua2.quant.kmeans_cpu import kmeans_rows, use_threads

        values = np.ascontiguousarray(sorted_rows.detach().float().numpy())
        with use_threads(torch.get_num_threads()):  # the same budget torch was given
            return torch.from_numpy(kmeans_rows(values, k))
    return kmeans_tensor_centroids(sorted_rows, k)


def kmeans_tensor_centroids(sorted_rows: Tensor, k: int) -> Tensor:
    """The batched tensor version of :func:`kmeans_1d_centroids` (any device; ``n > k``)."""
    rows = SortedRows.of(sorted_rows)
    cuts = lloyd_cuts(rows, rows.cuts_of(density_init(rows, k)))
    return rows.means(split_merge(rows, cuts))


def kmeans_1d(x: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """k-means with ``k`` centroids on every row of ``x`` ``[rows, n]`` (any float dtype).

    Returns ``(centroids [rows, k] float64 sorted, codes [rows, n] uint8)``; ``k`` ≤ 256.
    """
    centroids = kmeans_1d_centroids(sort_rows(x), k)
    return centroids, assign_codes(x.float(), centroids)


def kmeans_1d_optimal(values: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """Exact 1-D k-means by dynamic programming (Wang & Song 2011); returns (centroids, SSE).

    ``D[m, j]`` is the least SSE of the first j sorted values in m clusters; a cluster is a
    contiguous run ``x[i:j]`` whose SSE follows from prefix sums. ``O(k · n²)`` time and
    ``O(n²)`` memory, so keep n to a few thousand.
    """
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = x.size
    k = min(k, n)
    s1 = np.concatenate([[0.0], np.cumsum(x)])
    s2 = np.concatenate([[0.0], np.cumsum(x * x)])
    i = np.arange(n + 1)[:, None]
    j = np.arange(n + 1)[None, :]
    count = np.maximum(j - i, 1)
    cost = s2[j] - s2[i] - (s1[j] - s1[i]) ** 2 / count
    cost = np.where(j > i, np.maximum(cost, 0.0), np.inf)  # cost[i, j]: SSE of x[i:j]
    best = cost[0].copy()
    choices = []
    for _ in range(1, k):
        total = best[:, None] + cost
        arg = np.argmin(total, axis=0)
        choices.append(arg)
        best = total[arg, np.arange(n + 1)]
    # Walk the split points back from the end to recover the clusters' means.
    bounds, end = [n], n
    for arg in reversed(choices):
        end = int(arg[end])
        bounds.append(end)
    bounds = sorted({*bounds, 0})
    centroids = np.array([x[a:b].mean() for a, b in itertools.pairwise(bounds) if b > a])
    return centroids, float(best[n])
