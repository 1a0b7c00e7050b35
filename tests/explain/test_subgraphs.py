"""Qua²SeDiMo's quantifiable sensitivity of sub-graph variants."""

from __future__ import annotations

import numpy as np
import pytest

from qua2.errors import Qua2Error
from qua2.explain.subgraphs import (
    best_variants,
    quantifiable_sensitivity,
    summarise,
    variants,
)
from qua2.surrogates.fit import load_fitted


def test_variants_enumerate_or_sample_distinct_combinations():
    rng = np.random.default_rng(0)
    every = variants(2, 3, 100, rng)
    assert every.shape == (9, 2) and len({tuple(r) for r in every}) == 9
    sampled = variants(6, 6, 50, rng)
    assert sampled.shape == (50, 6) and len({tuple(r) for r in sampled}) == 50
    assert sampled.min() >= 0 and sampled.max() <= 5


def test_prediction_scores_rank_sub_graphs_by_their_true_sensitivity(fitted, data, graph,
                                                                     true_sensitivity):
    model = load_fitted(fitted[0], "ridge")
    background = data.choices[data.cv_rows(data.target())[:16]]
    scores = quantifiable_sensitivity(model, graph, background, max_variants=216)
    parts = [p for p in graph.partition() if p.layers]
    assert set(scores["subgraph"]) == {p.name for p in parts}
    expected = sum(min(6 ** len(p.layers), 216) for p in parts)
    assert len(scores) == expected
    assert abs(scores["score"].mean()) < 1e-9  # standardised over all variants
    # the spread of a sub-graph's scores follows the summed true sensitivity of its layers
    spread = scores.groupby("subgraph")["score"].agg(lambda s: s.max() - s.min())
    truth = {p.name: true_sensitivity[list(p.layers)].sum() for p in parts}
    order = np.argsort([truth[name] for name in spread.index])
    assert np.corrcoef(np.arange(len(order)), np.argsort(np.argsort(spread.to_numpy()))[order]
                       )[0, 1] > 0.6
    # with a quality-only objective the best variant of every fully enumerated sub-graph is
    # all 4-bit (larger ones are sampled and may miss it, but come close)
    best = best_variants(scores).set_index("subgraph")
    small = [p.name for p in parts if 6 ** len(p.layers) <= 216]
    assert (best.loc[small, "mean_bits"] == 4).all()
    assert (best["mean_bits"] >= 3.7).all()
    by_block = summarise(scores, "block_index")
    assert {"count", "mean", "spread"} <= set(by_block.columns)


def test_embedding_scores_need_the_gnn(fitted, graph, data):
    model = load_fitted(fitted[0], "ridge")
    with pytest.raises(Qua2Error, match="GNN"):
        quantifiable_sensitivity(model, graph, data.choices[:4], method="embedding")
    with pytest.raises(Qua2Error, match="background"):
        quantifiable_sensitivity(model, graph, None)


def test_gnn_embedding_scores(tmp_path):
    from qua2.study.graph import study_graph
    from qua2.surrogates.data import load_study_data
    from qua2.surrogates.gnn import GNNSurrogate
    from tests.fixtures.synthetic_study import make_synthetic_study

    study, _ = make_synthetic_study(tmp_path / "g", n_random=40, n_blocks=1, sweep=False)
    data, graph = load_study_data(study), study_graph(study)
    rows = data.cv_rows(data.target())
    model = GNNSurrogate(data.encoder, graph, epochs=5, hidden=16, batch_size=20)
    model.fit(data.choices[rows], data.values(data.target())[rows])
    scores = quantifiable_sensitivity(model, graph, hop_weights=[0, 1, 1, 0.5, 0.5],
                                      max_variants=40)
    assert np.isfinite(scores["score"]).all() and len(scores) > 40
