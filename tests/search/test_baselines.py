import numpy as np

from qua2.search.baselines import (
    best_sampled,
    best_uniform,
    mixdq_ip,
    random_at_budget,
    repair_to_budget,
)
from tests.search.test_search_core import table


def test_repair_reaches_budget_and_keeps_protected_layers():
    t = table()
    start = np.full(6, 3)  # the most expensive option everywhere
    capacity = t.capacity(3.8)
    cheapest = t.nbytes.min(1)
    assert cheapest[1:].sum() + t.nbytes[0, 3] <= capacity  # protecting layer 0 is feasible
    priority = np.array([9, 0, 1, 2, 3, 4.0])  # layer 0 is the most protected
    fixed = repair_to_budget(start, t, capacity, np.random.default_rng(0), priority)
    assert t.nbytes[np.arange(6), fixed].sum() <= capacity + 1e-6
    assert fixed[0] == 3


def test_best_uniform_respects_budget():
    t = table()
    choice = best_uniform(t, 3.5)
    assert len(set(choice)) == 1 and t.options[choice[0]].bits == 3
    assert t.options[best_uniform(t, 4.5)[0]].bits == 4
    assert best_uniform(t, 2.0) is None


def test_best_sampled_and_random_at_budget():
    t = table()
    choices = np.array([np.full(6, 3), np.full(6, 0), np.full(6, 2)])
    objectives = np.array([10.0, 1.0, 5.0])
    assert best_sampled(choices, objectives, t, 3.5) == 1
    assert best_sampled(choices, objectives, t, 9.0) == 0  # tiny layers: big overheads
    for c in random_at_budget(t, 3.4, 5):
        assert t.avg_bits(c) <= 3.4 + 1e-9


def test_mixdq_prefers_insensitive_layers_for_low_bits():
    t = table()
    sensitivity = np.zeros(t.nbytes.shape)
    low = [i for i, o in enumerate(t.options) if o.bits == 3]
    sensitivity[0, low] = -100.0  # layer 0 hates 3 bits
    sensitivity[1:, low] = -1.0
    choice = mixdq_ip(sensitivity, t, 3.6)
    assert t.options[choice[0]].bits == 4
    assert t.avg_bits(choice) <= 3.6 + 1e-9


def test_edge_layers_are_the_unnumbered_and_the_first_and_last_blocks():
    from qua2.search.baselines import edge_layers

    names = ["pos_embed.proj", "transformer_blocks.0.attn1.to_q", "transformer_blocks.1.ff",
             "transformer_blocks.2.ff", "transformer_blocks.3.attn1.to_q", "proj_out"]
    assert edge_layers(names).tolist() == [True, True, False, False, True, True]


def test_edge_recipe_raises_the_edges_one_option_and_fits_the_budget():
    from dataclasses import replace

    from qua2.search.baselines import edge_recipe

    t = replace(table(), layers=("x_embed", "blocks.0.a", "blocks.1.a", "blocks.2.a",
                                 "blocks.3.a", "out"))
    uniform_bits = [t.avg_bits(np.full(6, o)) for o in range(len(t.options))]
    ladder = sorted(range(len(t.options)), key=lambda o: uniform_bits[o])
    for budget in (3.2, 3.6, 4.0, 4.6):
        choice = edge_recipe(t, budget)
        if choice is None:
            assert t.avg_bits(np.full(6, ladder[0])) > budget or \
                t.avg_bits(np.where(np.arange(6) % 5 == 0, ladder[1], ladder[0])) > budget
            continue
        assert t.avg_bits(choice) <= budget + 1e-9
        body = {ladder.index(c) for c in choice[[2, 3]]}  # blocks 1 and 2: the body
        edges = {ladder.index(c) for c in choice[[0, 1, 4, 5]]}
        assert len(body) == len(edges) == 1
        assert edges.pop() == min(body.pop() + 1, len(ladder) - 1)
