"""Sequential design (qua2.search.design) on a synthetic study whose true FID is known.

Evaluation is replaced by the synthetic truth (no images), so the test runs the real loop —
initial random batch, rounds of proposals under the optimistic ensemble, random share,
resumption — in seconds, and can check what it found against the truth.
"""

from __future__ import annotations

import dataclasses

import pytest

import qua2.search.design as design_module
import qua2.study.queue as queue_module
from qua2.search.budget import CostTable
from qua2.specs import QuantConfig
from qua2.study.stages import RunOptions
from qua2.study.store import Store

BUDGET = 4.5  # the synthetic layers are small: their overheads put uniform 3-bit at 3.1–6.5 bits


class StatsCache:
    """Stands in for the option cache of a synthetic study: its sizes come from the option
    statistics the synthetic study writes (no weights exist)."""

    def __init__(self, stats, layers, space):
        self.layers, self.layer_set, self.space = list(layers), set(layers), space
        self.stats = stats
        self.total_params = int(sum(stats.option_stats(layer, space.options[0]).fp16_nbytes
                                    for layer in layers) // 2)

    def option_stats(self, layer, option):
        return self.stats.option_stats(layer, option)


def _synthetic(tmp_path, name: str, monkeypatch, total=64, share=0.3):
    from tests.fixtures.synthetic_study import make_synthetic_study

    study, truth = make_synthetic_study(tmp_path / name, n_random=1, n_blocks=2, sweep=False,
                                        noise=0.0, seed=4)
    with Store(study.path("study.sqlite")) as store:  # start from the anchors alone
        store._db.execute("DELETE FROM configs WHERE kind='random'")
    config = dataclasses.replace(
        study.config,
        config_sampler=dataclasses.replace(study.config.config_sampler, num_configs=total),
        design=dataclasses.replace(study.config.design, kind="sequential", initial=24,
                                   batch=10, random_share=share),
        pipeline=dataclasses.replace(study.config.pipeline, budgets=[BUDGET]))
    study = type(study)(study.directory, config)
    space = config.search_space.build()
    cache = StatsCache(truth.encoder.stats, truth.encoder.layers, space)
    monkeypatch.setattr(queue_module, "open_option_cache", lambda s: cache)
    monkeypatch.setattr(queue_module, "_layers_and_space", lambda s: (cache.layers, space))
    monkeypatch.setattr("qua2.study.option_cache.open_option_cache", lambda s: cache)
    monkeypatch.setattr(design_module, "ready_executor", lambda s, o: None)
    monkeypatch.setattr(design_module, "MEMBERS", 4)  # half the default: a faster test

    def evaluate_with_truth(study, executor, kinds, desc):
        with Store(study.path("study.sqlite")) as store:
            for row in store.rows(status="pending"):
                fid = float(truth.fid(truth.encoder.choices([row.config]))[0])
                store.finish(row.id, {"digits_fid": fid, "objective": -fid}, {}, row.avg_bits)

    monkeypatch.setattr(design_module, "evaluate_rows", evaluate_with_truth)
    return study, truth, cache


def _best_at_budget(study, truth) -> float:
    with Store(study.path("study.sqlite")) as store:
        rows = [r for r in store.rows(status="done") if r.kind in ("random", "design")
                and r.avg_bits <= BUDGET]
    return min(r.metrics["digits_fid"] for r in rows)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A random-share-1 design (random sampling) and a sequential one, run to 64 rows each."""
    out = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, share in (("random", 1.0), ("sequential", 0.3)):
            study, truth, cache = _synthetic(tmp_path_factory.mktemp(name), name, monkeypatch,
                                             share=share)
            design_module.stage_sample(study, RunOptions())
            out[name] = (study, truth, cache)
        yield out


def test_sequential_design_finds_better_configurations_than_random_at_equal_cost(finished):
    found = {}
    for name, (study, truth, _) in finished.items():
        with Store(study.path("study.sqlite")) as store:
            assert store.count(kind="random") + store.count(kind="design") == 64
        found[name] = _best_at_budget(study, truth)
    # The truth is known: sequential proposals at the budget beat the best of 64 random draws
    # (a random share of 1 draws the same seeded sequence in the same rounds).
    assert found["sequential"] < found["random"]


def test_rounds_keep_a_random_share_and_propose_at_the_budget(finished):
    study, _, cache = finished["sequential"]
    with Store(study.path("study.sqlite")) as store:
        random_rows, design_rows = store.rows(kind="random"), store.rows(kind="design")
    rounds = sorted({r.tags["round"] for r in design_rows})
    assert rounds == [1, 2, 3, 4]  # 24 initial + 4 rounds of 10 = 64
    # Each round of 10: ceil(0.3 × 10) = 3 random draws, up to 7 proposed (a proposal the
    # study already holds is replaced by another random draw).
    assert len(random_rows) + len(design_rows) == 64
    assert len(random_rows) >= 24 + 4 * 3 and len(design_rows) >= 4 * 4
    table = CostTable.from_cache(cache.layers, study.config.search_space.build(), cache)
    bits = [table.avg_bits(table.to_choice(QuantConfig.from_dict(r.config)))
            for r in design_rows]
    assert all(BUDGET - 0.5 <= b <= BUDGET + 1e-9 for b in bits)


def test_a_random_share_of_one_is_random_sampling_in_rounds(finished):
    study, _, _ = finished["random"]
    with Store(study.path("study.sqlite")) as store:
        assert store.count(kind="design") == 0 and store.count(kind="random") == 64


def test_proposals_are_deterministic_given_the_rows(finished, monkeypatch):
    study, _, cache = finished["sequential"]
    monkeypatch.setattr("qua2.study.option_cache.open_option_cache", lambda s: cache)
    first = [c.digest() for c in design_module.propose(study, 5, 9)]
    again = [c.digest() for c in design_module.propose(study, 5, 9)]
    assert first == again and len(set(first)) == len(first) > 0


def test_an_interrupted_round_is_evaluated_before_the_next_one(tmp_path, monkeypatch):
    study, _, _ = _synthetic(tmp_path, "s", monkeypatch, total=34)
    from qua2.study.queue import queue_random

    queue_random(study, 24)  # as if the initial batch was queued and the run was killed
    design_module.stage_sample(study, RunOptions())
    with Store(study.path("study.sqlite")) as store:
        assert store.count("pending") == 0
        assert store.count(kind="random") + store.count(kind="design") == 34
        before = store.counts()
    design_module.stage_sample(study, RunOptions())  # done: nothing more is queued
    with Store(study.path("study.sqlite")) as store:
        assert store.counts() == before
