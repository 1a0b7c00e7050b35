"""Range search: candidates, objectives, and that the chosen range is the best candidate."""

from __future__ import annotations

import pytest
import torch

from qua2.activations.range_search import (
    OBJECTIVES,
    candidate_ranges,
    range_errors,
    search_range,
)
from qua2.errors import Qua2Error


def _outlier_data() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    values = torch.randn(20_000, generator=gen)
    values[:3] = torch.tensor([40.0, -35.0, 38.0])  # three outliers stretch min-max ×8
    return values


def test_candidates_shrink_towards_zero():
    cands = candidate_ranges(-2.0, 4.0, n_candidates=3, step=0.25)
    torch.testing.assert_close(cands, torch.tensor([[-2.0, 4.0], [-1.5, 3.0], [-1.0, 2.0]]))


def test_lp_error_by_hand():
    # Range [0, 3] at 2 bits is the integer grid; 0.5 → 0 (half to even), 1.2 → 1.
    values = torch.tensor([0.5, 1.2])
    err = range_errors(values, torch.tensor([[0.0, 3.0]]), bits=2, objective="lp", p=2.0)
    assert err.item() == pytest.approx((0.25 + 0.04) / 2)
    l1 = range_errors(values, torch.tensor([[0.0, 3.0]]), bits=2, objective="l1")
    assert l1.item() == pytest.approx((0.5 + 0.2) / 2)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_outliers_are_clipped_and_the_minimum_is_chosen(objective):
    values = _outlier_data()
    lo, hi = search_range(values, bits=4, objective=objective)
    assert -35.0 <= lo < 0 < hi <= 40.0
    cands = candidate_ranges(-35.0, 40.0)
    errors = range_errors(values, cands, 4, objective)  # KL: histogram over the first (full)
    best = int(errors.argmin())
    assert (lo, hi) == pytest.approx(tuple(cands[best].tolist()))
    if objective in ("lp", "mse", "l1", "kl"):
        assert hi < 40.0  # with 4 bits, spending the grid on three outliers never pays off


def test_lp_beats_full_range_on_outliers():
    values = _outlier_data()
    lo, hi = search_range(values, bits=4, objective="lp", p=2.4)
    full = range_errors(values, torch.tensor([[-35.0, 40.0]]), 4, "lp")
    best = range_errors(values, torch.tensor([[lo, hi]]), 4, "lp")
    assert best.item() < full.item()


def test_exact_extremes_can_be_given_for_a_subsample():
    lo, hi = search_range(torch.tensor([0.0, 0.5, 1.0]), bits=8, lo=-1.0, hi=2.0,
                          n_candidates=1)
    assert (lo, hi) == (-1.0, 2.0)


def test_bad_inputs_are_one_sentence_errors():
    with pytest.raises(Qua2Error, match="unknown range-search objective 'l3'"):
        search_range(torch.ones(4), 8, objective="l3")
    with pytest.raises(Qua2Error, match="empty calibration set"):
        search_range(torch.empty(0), 8)
    with pytest.raises(Qua2Error, match="n_candidates"):
        candidate_ranges(0.0, 1.0, n_candidates=200, step=0.01)
