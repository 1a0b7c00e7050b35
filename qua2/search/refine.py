"""Surrogate-guided search under an exact average-bit budget.

1. **Linearise** the surrogate around a reference configuration: the value of option ``o`` for
   layer ``l`` is the predicted change of the objective when only ``l`` moves to ``o``.
2. **Integer programme**: the k best distinct allocations of that linear model under the byte
   budget (:mod:`qua2.search.knapsack`).
3. **Local search** on the full surrogate, which sees interactions the linear model misses:
   best-improvement over single-layer changes and random pairs (one layer up, one down) that
   stay within the budget, from every integer-programme solution.

A predictor is any callable mapping choice matrices ``[N, L]`` (option index per layer) to
scores ``[N]`` where *higher is better*.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from qua2.search.budget import CostTable
from qua2.search.knapsack import k_best_mckp

Predictor = Callable[[np.ndarray], np.ndarray]


def linearise(predict: Predictor, table: CostTable, base: np.ndarray) -> np.ndarray:
    """``values[l, o]`` = predicted gain of moving layer ``l`` alone to option ``o``."""
    layers, options = table.nbytes.shape
    variants = np.repeat(base[None, :], layers * options, axis=0)
    variants[np.arange(layers * options), np.repeat(np.arange(layers), options)] = \
        np.tile(np.arange(options), layers)
    return (predict(variants) - predict(base[None, :])[0]).reshape(layers, options)


def reference_choice(predict: Predictor, table: CostTable) -> np.ndarray:
    """The best uniform configuration among those at the highest bit-width (the FP side)."""
    top_bits = max(o.bits for o in table.options)
    candidates = [i for i, o in enumerate(table.options) if o.bits == top_bits]
    uniform = np.array([[i] * len(table.layers) for i in candidates])
    return uniform[int(np.argmax(predict(uniform)))]


def _neighbours(choice: np.ndarray, table: CostTable, capacity: float, pairs: int,
                rng: np.random.Generator) -> np.ndarray:
    layers, options = table.nbytes.shape
    rows = np.arange(layers)
    used = table.nbytes[rows, choice].sum()
    singles = np.repeat(choice[None, :], layers * options, axis=0)
    singles[np.arange(layers * options), np.repeat(rows, options)] = np.tile(np.arange(options),
                                                                             layers)
    a, b = rng.integers(layers, size=(2, pairs))
    oa, ob = rng.integers(options, size=(2, pairs))
    doubles = np.repeat(choice[None, :], pairs, axis=0)
    doubles[np.arange(pairs), a] = oa
    doubles[np.arange(pairs), b] = ob
    moves = np.concatenate([singles, doubles])
    delta = table.nbytes[rows, moves].sum(1) - used
    return moves[(used + delta <= capacity + 1e-6) & (moves != choice).any(1)]


def local_search(predict: Predictor, table: CostTable, start: np.ndarray, capacity: float,
                 rounds: int = 30, pairs: int = 400, seed: int = 0) -> tuple[np.ndarray, float]:
    """Best-improvement hill climbing from ``start`` within ``capacity`` bytes."""
    rng = np.random.default_rng(seed)
    current, score = start.copy(), float(predict(start[None, :])[0])
    for _ in range(rounds):
        moves = _neighbours(current, table, capacity, pairs, rng)
        if len(moves) == 0:
            break
        scores = predict(moves)
        best = int(np.argmax(scores))
        if scores[best] <= score + 1e-12:
            break
        current, score = moves[best], float(scores[best])
    return current, score


def search_budget(predict: Predictor, table: CostTable, budget_bits: float, top: int = 3,
                  ip_solutions: int = 5, seed: int = 0) -> list[tuple[np.ndarray, float]]:
    """The ``top`` best distinct choices found within ``budget_bits``, with predicted scores."""
    table.check_budget(budget_bits)
    capacity = table.capacity(budget_bits)
    values = linearise(predict, table, reference_choice(predict, table))
    starts = k_best_mckp(values, table.nbytes, capacity, ip_solutions)
    found: dict[bytes, tuple[np.ndarray, float]] = {}
    for i, start in enumerate(starts):
        found[start.tobytes()] = (start, float(predict(start[None, :])[0]))
        refined, score = local_search(predict, table, start, capacity, seed=seed + i)
        found[refined.tobytes()] = (refined, score)
    ranked = sorted(found.values(), key=lambda item: -item[1])
    return ranked[:top]
