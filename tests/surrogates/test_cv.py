"""Honest cross-validation on a study with a known ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from qua2.errors import Qua2Error
from qua2.surrogates.cv import cross_validate, fold_indices
from qua2.surrogates.data import StudyData
from qua2.surrogates.ridge import RidgeSurrogate
from qua2.surrogates.xgb import XGBSurrogate


def test_study_data_reads_every_kind(data):
    kinds = set(data.kinds)
    assert kinds == {"uniform", "random", "sweep"}
    assert data.target().name == "objective" and data.target().higher_is_better
    fid = data.target("digits_fid")
    assert fid.name == "digits_fid" and not fid.higher_is_better
    assert (data.choices[data.kinds == "sweep"] >= 0).sum(axis=1).max() == 1
    with pytest.raises(Qua2Error, match="not a recorded metric"):
        data.target("fid_typo")


def test_folds_hold_out_random_rows_only_and_each_once(data):
    result = cross_validate(RidgeSurrogate(data.encoder), data, data.target(), k=4)
    assert set(result.oof["kind"]) == {"random"}
    assert sorted(result.oof["id"]) == sorted(np.array(data.ids)[data.kinds == "random"])
    assert len(result.folds) == 4


@pytest.mark.parametrize("make", [
    lambda enc: RidgeSurrogate(enc),
    lambda enc: XGBSurrogate(enc, n_estimators=200, learning_rate=0.06),
], ids=["ridge", "xgb"])
def test_held_out_ranking_is_high_on_the_known_function(data, make):
    result = cross_validate(make(data.encoder), data, data.target(), k=4)
    summary = result.summary
    assert summary["spearman_mean"] > 0.95
    assert summary["kendall_mean"] > 0.8
    assert summary["ndcg@10_mean"] > 0.8


def test_lower_is_better_targets_rank_too(data):
    fid = cross_validate(RidgeSurrogate(data.encoder), data, data.target("digits_fid"), k=3)
    assert fid.summary["spearman_mean"] > 0.95 and fid.summary["ndcg@10_mean"] > 0.8


def test_a_shuffled_target_cannot_be_predicted(data):
    """Honesty check: with the target permuted across configs, held-out ρ must collapse."""
    rng = np.random.default_rng(0)
    metrics = data.metrics.copy()
    random = data.kinds == "random"
    metrics.loc[random, "objective"] = rng.permutation(metrics.loc[random, "objective"])
    shuffled = StudyData(data.encoder, data.choices, data.kinds, data.ids, metrics,
                         data.avg_bits, data.tags, data.primary, data.primary_lower_is_better)
    result = cross_validate(RidgeSurrogate(data.encoder), shuffled, shuffled.target(), k=4,
                            train_extra=())
    assert abs(result.summary["spearman_mean"]) < 0.25


def test_learning_curve_improves_with_more_configs(data):
    result = cross_validate(RidgeSurrogate(data.encoder), data, data.target(), k=3,
                            curve_sizes=(15, 60))
    curve = {p["n_train"]: p["spearman_mean"] for p in result.curve}
    assert sorted(curve) == [15, 60, 133]  # the last point: the folds themselves
    assert curve[15] < curve[133]


def test_too_few_configs_for_the_folds():
    with pytest.raises(Qua2Error, match="too few"):
        fold_indices(7, 5, 0)
