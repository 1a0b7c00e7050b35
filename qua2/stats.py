"""Bootstrap resampling and intervals: the one place qua2 and ``analysis/`` compute them.

Every interval is a nonparametric bootstrap interval (Efron & Tibshirani, *An Introduction to
the Bootstrap*, 1993): a statistic is recomputed on resamples drawn with replacement, and the
interval is read off the distribution of those draws.

* :func:`percentile_interval` — the percentile interval (Efron & Tibshirani, 1993, §13.3);
* :func:`bias_shifted_interval` — the percentile interval shifted by the bootstrap estimate
  of bias, ``mean(θ̂*) − θ̂`` (§10.2), for statistics whose resamples are biased away from the
  point estimate (Fréchet distances: a resample with repeats holds fewer distinct images);
* :func:`paired_interval` — the interval of a difference ``a − b`` whose draws come from the
  *same* resamples, so the resampling noise the two share cancels;
* :func:`bootstrap_indices` / :func:`bootstrap` — resamples shared by several statistics, or
  one statistic evaluated on each resample;
* :func:`ratio_means` — ratio means ``Σ sums / Σ counts`` with resampling weights.

This is a base-layer module: it imports numpy only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

#: The default coverage of every interval.
LEVEL = 0.95


def bootstrap_indices(count: int, rounds: int, seed: int) -> np.ndarray:
    """``[rounds, count]`` resampled indices of ``range(count)``, drawn in one call.

    Scoring several statistics (or configurations) on these same rows makes their draws
    paired (see :func:`paired_interval`).
    """
    return np.random.default_rng(seed).integers(0, count, size=(rounds, count))


def bootstrap(n: int, statistic: Callable[[np.ndarray], Any], rounds: int = 2000,
              seed: int = 0) -> np.ndarray:
    """``statistic(indices)`` on ``rounds`` resamples (with replacement) of ``range(n)``.

    One resample is drawn per round (Efron & Tibshirani, 1993, algorithm 6.1); the result has
    one row per round and the statistic's shape after it.
    """
    rng = np.random.default_rng(seed)
    return np.asarray([statistic(rng.integers(0, n, n)) for _ in range(rounds)], dtype=float)


def percentile_interval(draws: np.ndarray, level: float = LEVEL, *, omit_nan: bool = True
                        ) -> tuple[Any, Any]:
    """The bootstrap percentile interval (Efron & Tibshirani, 1993, §13.3) over the first
    axis of ``draws``: the ``(1 − level)/2`` and ``(1 + level)/2`` quantiles.

    With ``omit_nan`` (the default) resamples whose statistic is undefined (NaN: a constant
    resample's correlation, an empty cell's mean) are left out; otherwise a NaN draw makes the
    interval NaN. A 1-D ``draws`` gives two scalars, ``[rounds, k]`` two arrays of ``k``.
    """
    tail = 100 * (1 - level) / 2
    if omit_nan:
        return (np.nanpercentile(draws, tail, axis=0),
                np.nanpercentile(draws, 100 - tail, axis=0))
    low, high = np.percentile(draws, [tail, 100 - tail], axis=0)
    return low, high


def bias_shifted_interval(point: float, draws: np.ndarray, level: float = LEVEL
                          ) -> tuple[float, float]:
    """The percentile interval shifted by the bootstrap estimate of bias.

    The bias of a statistic under resampling is estimated by ``mean(θ̂*) − θ̂`` (Efron &
    Tibshirani, 1993, §10.2); subtracting it from both ends centres the interval on the point
    estimate ``point`` instead of on the (biased) resamples. A NaN draw makes it NaN.
    """
    low, high = (float(q) for q in percentile_interval(draws, level, omit_nan=False))
    bias = float(np.mean(draws)) - point
    return low - bias, high - bias


def paired_interval(a_draws: Any, b_draws: Any, delta: float, level: float = LEVEL, *,
                    shift_bias: bool = False) -> tuple[float, float, float]:
    """``(delta, low, high)``: the interval of ``a − b`` from draws on shared resamples.

    ``a_draws[i]`` and ``b_draws[i]`` must come from the same resample ``i``: then the draws of
    the difference are ``a_draws − b_draws`` and the noise both share cancels, which makes the
    interval much narrower than the two separate intervals suggest (Efron & Tibshirani, 1993,
    paired comparisons). ``delta`` is the point estimate ``a − b``; ``shift_bias`` uses
    :func:`bias_shifted_interval` instead of the percentile interval.
    """
    draws = np.asarray(a_draws) - np.asarray(b_draws)
    if shift_bias:
        return (delta, *bias_shifted_interval(delta, draws, level))
    low, high = percentile_interval(draws, level, omit_nan=False)
    return delta, float(low), float(high)


def ratio_means(sums: np.ndarray, counts: np.ndarray, rounds: int = 2000, seed: int = 0
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ratio means ``Σ sums / Σ counts`` over the first axis, and their percentile interval.

    ``sums`` and ``counts`` are ``[units, cells]``; units (configurations) are resampled with
    multinomial weights — the same as resampling rows with replacement (Efron & Tibshirani,
    1993) without materialising the resamples. A cell without counts has a NaN estimate.
    """
    estimate = sums.sum(axis=0) / np.maximum(counts.sum(axis=0), 1e-12)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(sums), np.full(len(sums), 1 / len(sums)), size=rounds)
    with np.errstate(invalid="ignore", divide="ignore"):
        samples = (weights @ sums) / (weights @ counts)
    low, high = percentile_interval(samples)
    estimate = np.where(counts.sum(axis=0) > 0, estimate, np.nan)
    return estimate, low, high
