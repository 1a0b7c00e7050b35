"""Baselines that a searched configuration must beat at the same average-bit budget.

- **uniform**: every layer on one option; the best uniform config within the budget.
- **best sampled**: the best configuration the study evaluated whose bits fit the budget.
- **MixDQ IP**: MixDQ's integer programme (Zhao et al., ECCV 2024) over one-at-a-time
  sensitivities — here the measured objective of each layer alone at each option (``qua2
  sweep``), the rest in full precision.
- **random at budget**: random configurations drawn near the budget and repaired into it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qua2.search.budget import CostTable
from qua2.search.knapsack import solve_mckp


def repair_to_budget(choice: np.ndarray, table: CostTable, capacity: float,
                     rng: np.random.Generator, priority: np.ndarray | None = None) -> np.ndarray:
    """Move layers to cheaper options until the choice fits ``capacity`` bytes.

    Each step takes the layer with the lowest ``priority`` (random order when none is given)
    among those that can still get cheaper, and moves it to its next cheaper option.
    """
    choice = choice.copy()
    rows = np.arange(len(choice))
    order = np.argsort(priority) if priority is not None else rng.permutation(len(choice))
    while table.nbytes[rows, choice].sum() > capacity + 1e-6:
        moved = False
        for layer in order:
            costs = table.nbytes[layer]
            cheaper = np.flatnonzero(costs < costs[choice[layer]])
            if len(cheaper):
                choice[layer] = cheaper[np.argmax(costs[cheaper])]
                moved = True
                break
        if not moved:
            break  # already the cheapest everywhere
    return choice


def best_uniform(table: CostTable, budget_bits: float,
                 scores: Sequence[float] | None = None) -> np.ndarray | None:
    """The uniform choice within budget: the best by ``scores`` (per option), else most bits."""
    feasible = [o for o in range(len(table.options))
                if table.avg_bits(np.full(len(table.layers), o)) <= budget_bits + 1e-9]
    if not feasible:
        return None
    key = (lambda o: scores[o]) if scores is not None else \
        (lambda o: table.avg_bits(np.full(len(table.layers), o)))
    return np.full(len(table.layers), max(feasible, key=key))


def best_sampled(choices: np.ndarray, objectives: np.ndarray, table: CostTable,
                 budget_bits: float) -> int | None:
    """Index of the best evaluated choice whose average bits fit the budget."""
    fits = [i for i, c in enumerate(choices) if table.avg_bits(c) <= budget_bits + 1e-9]
    return max(fits, key=lambda i: objectives[i]) if fits else None


def mixdq_ip(sensitivity: np.ndarray, table: CostTable, budget_bits: float) -> np.ndarray:
    """MixDQ's allocation: maximise summed one-at-a-time objectives within the budget.

    ``sensitivity[l, o]`` is the measured objective (higher is better) with only layer ``l``
    quantized to option ``o``; missing measurements should be ``-inf`` and are avoided.
    """
    values = np.where(np.isfinite(sensitivity), sensitivity, np.nanmin(
        np.where(np.isfinite(sensitivity), sensitivity, np.nan)) - 1e6)
    return solve_mckp(values, table.nbytes, table.capacity(budget_bits))


def random_at_budget(table: CostTable, budget_bits: float, count: int,
                     seed: int = 0) -> list[np.ndarray]:
    """``count`` random choices (uniform option per layer) repaired into the budget."""
    rng = np.random.default_rng(seed)
    capacity = table.capacity(budget_bits)
    layers, options = table.nbytes.shape
    return [repair_to_budget(rng.integers(options, size=layers), table, capacity, rng)
            for _ in range(count)]
