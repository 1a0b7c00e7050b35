"""Baselines that a searched configuration must beat at the same average-bit budget.

- **uniform**: every layer on one option; the best uniform config within the budget.
- **best sampled**: the best configuration the study evaluated whose bits fit the budget.
- **MixDQ IP**: MixDQ's integer programme (Zhao et al., ECCV 2024) over one-at-a-time
  sensitivities — here the measured objective of each layer alone at each option (``qua2
  sweep``), the rest in full precision.
- **random at budget**: random configurations drawn near the budget and repaired into it.
- **edge recipe**: the hand recipe of GGUF users (ComfyUI-GGUF #78 and PR #370, mflux #517):
  one type for the body, one type higher for the input/output layers and the first and last
  blocks, with the body type chosen as high as the budget allows. Positions come from layer
  names (the first number in a name is its block), as those tools do.
"""

from __future__ import annotations

import re
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
    return [repair_to_budget(rng.integers(options, size=int(layers)), table, capacity, rng)
            for _ in range(count)]


_BLOCK = re.compile(r"\.(\d+)\.")


def edge_layers(layers: Sequence[str]) -> np.ndarray:
    """Mask of the layers outside numbered blocks and of the first and last block's layers."""
    blocks = [int(m.group(1)) if (m := _BLOCK.search(f".{name}.")) else None for name in layers]
    numbered = [b for b in blocks if b is not None]
    ends = {min(numbered), max(numbered)} if numbered else set()
    return np.array([b is None or b in ends for b in blocks])


def edge_recipe(table: CostTable, budget_bits: float) -> np.ndarray | None:
    """The hand recipe within the budget: edges one option higher than the body (see above).

    Options are ranked by the bits they cost uniformly; the body takes the highest option
    whose recipe fits, edges the next one up (or the same when it is the highest).
    """
    uniform_bits = [table.avg_bits(np.full(len(table.layers), o))
                    for o in range(len(table.options))]
    ladder = sorted(range(len(table.options)), key=lambda o: uniform_bits[o])
    edges = edge_layers(table.layers)
    for rank in range(len(ladder) - 1, -1, -1):
        choice = np.full(len(table.layers), ladder[rank])
        choice[edges] = ladder[min(rank + 1, len(ladder) - 1)]
        if table.avg_bits(choice) <= budget_bits + 1e-9:
            return choice
    return None
