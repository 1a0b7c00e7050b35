import itertools

import numpy as np
import pytest

from qua2.errors import Qua2Error
from qua2.search.budget import CostTable
from qua2.search.knapsack import k_best_mckp, solve_mckp
from qua2.search.refine import linearise, local_search, search_budget
from qua2.specs import SearchSpace

SPACE = SearchSpace.grid(["uaq", "kmeans_a"], [3, 4])


def table(layers=6, seed=0):
    rng = np.random.default_rng(seed)
    fp16 = rng.integers(100, 400, size=layers).astype(float) * 2
    bits = np.array([o.bits for o in SPACE])
    overhead = np.array([4.0, 4.0, 16.0, 32.0])
    nbytes = fp16[:, None] / 16 * bits[None, :] + overhead[None, :]
    return CostTable(tuple(f"l{i}" for i in range(layers)), tuple(SPACE), nbytes, fp16)


def brute_force(values, costs, capacity):
    best, arg = -np.inf, None
    layers, options = values.shape
    for choice in itertools.product(range(options), repeat=layers):
        choice = np.array(choice)
        if costs[np.arange(layers), choice].sum() <= capacity + 1e-9:
            value = values[np.arange(layers), choice].sum()
            if value > best:
                best, arg = value, choice
    return arg, best


@pytest.mark.parametrize("budget", [3.2, 3.5, 3.9])
def test_milp_matches_brute_force(budget):
    t = table()
    values = np.random.default_rng(1).normal(size=t.nbytes.shape)
    choice = solve_mckp(values, t.nbytes, t.capacity(budget))
    expected, best = brute_force(values, t.nbytes, t.capacity(budget))
    assert t.avg_bits(choice) <= budget + 1e-9
    assert values[np.arange(6), choice].sum() == pytest.approx(best)
    assert np.array_equal(choice, expected)


def test_k_best_are_distinct_and_ordered():
    t = table()
    values = np.random.default_rng(2).normal(size=t.nbytes.shape)
    solutions = k_best_mckp(values, t.nbytes, t.capacity(3.6), 4)
    totals = [values[np.arange(6), s].sum() for s in solutions]
    assert len({s.tobytes() for s in solutions}) == 4
    assert totals == sorted(totals, reverse=True)


def test_infeasible_budget_is_a_clear_error():
    t = table()
    low, high = t.bits_range()
    with pytest.raises(Qua2Error, match="below the cheapest configuration"):
        t.check_budget(2.5)
    with pytest.raises(Qua2Error, match="above the costliest configuration"):
        t.check_budget(high + 0.5)
    t.check_budget(low)
    t.check_budget(high)


def test_linearise_recovers_an_additive_predictor():
    t = table()
    truth = np.random.default_rng(3).normal(size=t.nbytes.shape)

    def predict(choices):
        return truth[np.arange(choices.shape[1]), choices].sum(1)

    base = np.zeros(6, dtype=int)
    values = linearise(predict, t, base)
    expected = truth - truth[np.arange(6), base][:, None]
    np.testing.assert_allclose(values, expected, atol=1e-12)


def test_search_finds_optimum_and_respects_budget_with_interactions():
    t = table(layers=7, seed=4)
    rng = np.random.default_rng(5)
    truth = rng.normal(size=t.nbytes.shape)

    def predict(choices):
        # Additive part plus an interaction the linear model cannot see.
        additive = truth[np.arange(choices.shape[1]), choices].sum(1)
        return additive + 1.5 * ((choices[:, 0] == 1) & (choices[:, 1] == 1))

    budget = 3.6
    results = search_budget(predict, t, budget, top=3)
    assert all(t.avg_bits(c) <= budget + 1e-9 for c, _ in results)
    # Exhaustive optimum of the true (non-additive) function:
    grid = np.array(list(itertools.product(range(4), repeat=7)))
    feasible = grid[t.nbytes[np.arange(7), grid].sum(1) <= t.capacity(budget) + 1e-9]
    assert results[0][1] == pytest.approx(predict(feasible).max())


def test_local_search_never_leaves_budget():
    t = table()
    start = np.zeros(6, dtype=int)
    choice, _ = local_search(lambda c: -c.sum(1).astype(float) * 0 + c[:, 0], t, start,
                             t.capacity(3.3))
    assert t.avg_bits(choice) <= 3.3 + 1e-9
