"""The search objective: a fitted surrogate, or a pessimistic bootstrap ensemble of it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from qua2.search.budget import CostTable
from qua2.search.objective import (
    bootstrap_members,
    pessimistic_predictor,
    search_predictor,
    surrogate_predictor,
)
from qua2.search.refine import search_budget
from qua2.specs import SearchSpace
from qua2.study.study import Study
from qua2.surrogates.ridge import RidgeSurrogate

SPACE = SearchSpace.grid(["uaq", "kmeans_a"], [3, 4])


def _table(layers: tuple[str, ...], options=tuple(SPACE)) -> CostTable:
    bits = np.array([o.bits for o in options], dtype=float)
    fp16 = np.full(len(layers), 512.0)
    nbytes = fp16[:, None] / 16 * bits[None, :] + 4.0
    return CostTable(layers, options, nbytes, fp16)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A one-block synthetic study (11 layers, 40 random configs, no sweep)."""
    from tests.fixtures.synthetic_study import make_synthetic_study

    return make_synthetic_study(tmp_path_factory.mktemp("objective"), n_random=40,
                                n_blocks=1, sweep=False, seed=3)


def test_pessimistic_score_is_mean_minus_spread():
    members = [lambda c: np.array([1.0, 5.0]), lambda c: np.array([3.0, 5.0])]
    choices = np.zeros((2, 3), dtype=int)
    assert np.allclose(pessimistic_predictor(members, 0.0)(choices), [2.0, 5.0])
    assert np.allclose(pessimistic_predictor(members, 2.0)(choices), [0.0, 5.0])


def test_pessimism_keeps_the_search_where_the_members_agree():
    """Two members agree on an additive landscape but disagree wildly about one cheap option
    of layer 0 (one calls it excellent, the other poor): its mean still looks good, so a
    plain search takes it; a pessimistic one does not."""
    table = _table(tuple(f"l{i}" for i in range(6)))
    rng = np.random.default_rng(0)
    shared = rng.normal(size=table.nbytes.shape) + 0.5 * np.array([o.bits for o in SPACE])
    cheap = int(np.argmin(table.nbytes[0]))

    def member(bonus: float):
        def predict(choices):
            score = shared[np.arange(choices.shape[1]), choices].sum(1)
            return score + bonus * (choices[:, 0] == cheap)
        return predict

    members = [member(12.0), member(-6.0)]  # mean +3, spread 9
    plain = search_budget(pessimistic_predictor(members, 0.0), table, 3.6, top=1)[0][0]
    cautious = search_budget(pessimistic_predictor(members, 1.0), table, 3.6, top=1)[0][0]
    assert plain[0] == cheap
    assert cautious[0] != cheap


def test_bootstrap_members_are_seeded_resamples(synthetic):
    from qua2.surrogates.data import load_study_data

    data = load_study_data(synthetic[0])
    target = data.target()
    rows = data.mask(("random",), target)
    x, y = data.choices[rows], data.values(target)[rows]
    ridge = RidgeSurrogate(data.encoder)
    first = bootstrap_members(ridge, x, y, members=3, seed=5)
    again = bootstrap_members(ridge, x, y, members=3, seed=5)
    predictions = [m.predict(x) for m in first]
    # The same computation repeated: bit-identical.
    assert all(np.array_equal(p, m.predict(x)) for p, m in zip(predictions, again))
    # Different resamples: members differ from each other and from the fit on all rows.
    full = RidgeSurrogate(data.encoder).fit(x, y).predict(x)
    assert not np.allclose(predictions[0], predictions[1])
    assert not np.allclose(predictions[0], full)


def test_search_predictor_follows_the_study_settings(synthetic):
    from qua2.surrogates.data import load_study_data

    study = synthetic[0]
    data = load_study_data(study)
    target = data.target()
    rows = data.mask(("random", "uniform"), target)
    ridge = RidgeSurrogate(data.encoder).fit(data.choices[rows], data.values(target)[rows])
    table = _table(tuple(data.encoder.layers), tuple(data.encoder.options))
    choices = np.random.default_rng(1).integers(len(table.options),
                                                 size=(5, len(table.layers)))

    def with_pipeline(**keys):
        config = dataclasses.replace(study.config, pipeline=dataclasses.replace(
            study.config.pipeline, **keys))
        return Study(study.directory, config)

    alone = search_predictor(with_pipeline(search_ensemble=0), ridge, table)(choices)
    assert np.array_equal(alone, surrogate_predictor(ridge, table)(choices))
    neutral = search_predictor(with_pipeline(search_ensemble=4, search_pessimism=0.0),
                               ridge, table)(choices)
    cautious = search_predictor(with_pipeline(search_ensemble=4, search_pessimism=1.0),
                                ridge, table)(choices)
    assert not np.allclose(neutral, alone)  # the members' mean, not the full fit
    assert np.all(cautious < neutral)       # minus a spread that is never zero here
