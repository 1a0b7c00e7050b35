"""Bit allocation as an integer programme: a multiple-choice knapsack, solved exactly.

MixDQ (Zhao et al., ECCV 2024, §3.3) allocates one bit-width per layer by an integer programme
that maximises summed per-layer scores under a memory budget. qua2 uses the same programme for
any per-(layer, option) value table — from one-at-a-time sensitivities (the MixDQ baseline) or
from a surrogate linearised around a reference configuration — and solves it exactly with
HiGHS through :func:`scipy.optimize.milp`:

    maximise   Σ_l Σ_o value[l, o] · x[l, o]
    subject to Σ_o x[l, o] = 1                      for every layer l
               Σ_l Σ_o bytes[l, o] · x[l, o] ≤ C    (C from the average-bit budget)
               x ∈ {0, 1}

A ``forbid`` list excludes given solutions (no-good cuts), which yields the k best distinct
solutions of the linear model one after another.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_matrix

from qua2.errors import Qua2Error


def _one_per_layer(layers: int, options: int) -> LinearConstraint:
    rows = np.repeat(np.arange(layers), options)
    cols = np.arange(layers * options)
    matrix = csr_matrix((np.ones(layers * options), (rows, cols)), shape=(layers, layers * options))
    return LinearConstraint(matrix, 1, 1)


def _no_good(choice: np.ndarray, options: int) -> LinearConstraint:
    """Forbid exactly ``choice``: at most L−1 of its L picks may be taken together."""
    row = np.zeros(len(choice) * options)
    row[np.arange(len(choice)) * options + choice] = 1
    return LinearConstraint(row[None, :], -np.inf, len(choice) - 1)


def solve_mckp(values: np.ndarray, costs: np.ndarray, capacity: float,
               forbid: Sequence[np.ndarray] = (), time_limit: float = 30.0) -> np.ndarray:
    """The option index per layer that maximises ``values`` within ``capacity`` bytes."""
    layers, options = values.shape
    constraints = [_one_per_layer(layers, options),
                   LinearConstraint(costs.reshape(1, -1), -np.inf, capacity)]
    constraints += [_no_good(np.asarray(c), options) for c in forbid]
    result = milp(
        c=-values.reshape(-1),  # milp minimises
        constraints=constraints,
        integrality=np.ones(layers * options),
        bounds=Bounds(0, 1),
        options={"time_limit": time_limit, "mip_rel_gap": 1e-9},
    )
    if result.x is None:
        raise Qua2Error(
            f"no configuration fits {capacity:.0f} bytes; raise the bit budget "
            "(the solver reports: " + str(result.message).rstrip(".") + ")."
        )
    return result.x.reshape(layers, options).argmax(1)


def k_best_mckp(values: np.ndarray, costs: np.ndarray, capacity: float, k: int) -> list[np.ndarray]:
    """Up to ``k`` distinct solutions, best first (each re-solved with the earlier ones cut)."""
    found: list[np.ndarray] = []
    for _ in range(k):
        try:
            found.append(solve_mckp(values, costs, capacity, forbid=found))
        except Qua2Error:
            break  # fewer than k feasible solutions exist
    return found
