"""Rank metrics and the differentiable ranking losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qua2.surrogates.gnn_model import pairwise_loss, soft_ranks, spearman_loss
from qua2.surrogates.ranking import ndcg_at_k, rank_metrics


def test_perfect_and_reversed_rankings():
    y = np.arange(20.0)
    perfect = rank_metrics(y, 2 * y + 1)
    assert perfect["spearman"] == pytest.approx(1) and perfect["kendall"] == pytest.approx(1)
    assert perfect["ndcg@10"] == pytest.approx(1)
    reverse = rank_metrics(y, -y)
    assert reverse["spearman"] == pytest.approx(-1) and reverse["ndcg@10"] < 0.6
    assert rank_metrics(y, y + 2)["mae"] == pytest.approx(2)


def test_ndcg_respects_the_metric_direction():
    fid = np.array([10.0, 50.0, 30.0, 20.0])
    assert ndcg_at_k(fid, fid, k=2, higher_is_better=False) == pytest.approx(1)
    assert ndcg_at_k(fid, -fid, k=2, higher_is_better=False) < 0.5


def test_ndcg_matches_the_textbook_formula_and_ignores_row_order_for_ties():
    y = np.array([0.0, 3.0, 1.0, 2.0, 4.0])
    pred = np.array([0.1, 0.3, 0.2, 0.5, 0.4])
    gains = y / 4  # relevance: rescaled to [0, 1]
    order = np.argsort(-pred)
    discounts = 1 / np.log2(np.arange(2, 5))
    expected = (gains[order[:3]] * discounts).sum() / (np.sort(gains)[::-1][:3] * discounts).sum()
    # sklearn's ndcg_score sums the same terms in another order: equal to rounding
    assert ndcg_at_k(y, pred, k=3) == pytest.approx(expected, rel=1e-12)
    tied = np.array([1.0, 2.0, 2.0, 0.0, 0.0])  # tied predictions share their gains
    flipped = ndcg_at_k(y[::-1], tied[::-1], k=2)
    assert ndcg_at_k(y, tied, k=2) == pytest.approx(flipped, rel=1e-12)
    assert ndcg_at_k(np.array([5.0]), np.array([1.0])) == 1.0


def test_constant_predictions_have_no_correlation():
    assert np.isnan(rank_metrics(np.arange(5.0), np.ones(5))["spearman"])


def test_soft_ranks_approach_hard_ranks_and_losses_order_correctly():
    scores = torch.tensor([0.3, -1.0, 2.0, 0.9])
    assert torch.allclose(soft_ranks(scores, tau=1e-3), torch.tensor([1.0, 0.0, 3.0, 2.0]))
    y = torch.tensor([1.0, 0.0, 3.0, 2.0])
    assert spearman_loss(y * 5, y) < 0.05 < spearman_loss(-y * 5, y)
    assert pairwise_loss(y * 5, y) < pairwise_loss(-y * 5, y)
    scores = torch.zeros(4, requires_grad=True)
    spearman_loss(scores + torch.tensor([0.0, 1e-3, 2e-3, 3e-3]), y).backward()
    assert scores.grad is not None and torch.isfinite(scores.grad).all()
