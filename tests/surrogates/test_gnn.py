"""The graph surrogate: training, hop embeddings, sub-graph scoring inputs, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from qua2.errors import Qua2Error
from qua2.study.graph import study_graph
from qua2.surrogates.base import load_surrogate
from qua2.surrogates.data import load_study_data
from qua2.surrogates.gnn import GNNSurrogate

FAST = {"epochs": 12, "batch_size": 32, "hidden": 16}


@pytest.fixture(scope="module")
def tiny_data(tiny):
    return load_study_data(tiny[0]), study_graph(tiny[0])


@pytest.mark.parametrize("conv,hop", [("gatv2", 1.0), ("gin", 0.0)])
def test_fit_predict_save_load(tiny_data, tmp_path, conv, hop):
    data, graph = tiny_data
    rows = data.cv_rows(data.target())
    x, y = data.choices[rows], data.values(data.target())[rows]
    model = GNNSurrogate(data.encoder, graph, conv=conv, hop_rank_weight=hop, **FAST)
    assert model.fit(x[:45], y[:45]) is model
    assert len(model.loss_curve_) == FAST["epochs"]
    assert model.loss_curve_[-1] < model.loss_curve_[0]
    pred = model.predict(x[45:])
    assert pred.shape == (len(x) - 45,) and np.isfinite(pred).all()
    norms = model.hop_norms(x[45:])
    assert norms.shape == (len(x) - 45, model.layers + 1)
    part = next(p for p in graph.partition() if p.kind == "self_attn")
    many = np.resize(x, (1030, x.shape[1]))  # more than one chunk of 1024
    sub = model.subgraph_hop_norms(np.asarray(part.nodes), many)
    assert sub.shape == (1030, model.layers + 1) and np.isfinite(sub).all()
    same = np.arange(1024, 1030) % len(x)  # rows repeat with period len(x)
    np.testing.assert_allclose(sub[1024:], sub[same], rtol=1e-4)
    model.save(tmp_path / "gnn")
    assert {p.name for p in (tmp_path / "gnn").iterdir()} == \
        {"surrogate.json", "gnn_weights.safetensors", "graph.json"}
    loaded = load_surrogate(tmp_path / "gnn")
    np.testing.assert_allclose(loaded.predict(x[45:]), pred, rtol=1e-5, atol=1e-5)


def test_full_precision_layers_and_reproducibility(tiny_data):
    data, graph = tiny_data
    rows = data.cv_rows(data.target())
    x, y = data.choices[rows], data.values(data.target())[rows]
    a = GNNSurrogate(data.encoder, graph, random_state=3, **FAST).fit(x, y)
    b = GNNSurrogate(data.encoder, graph, random_state=3, **FAST).fit(x, y)
    fp = np.full((2, data.encoder.n_layers), -1)
    fp[1, 0] = 0
    np.testing.assert_allclose(a.predict(fp), b.predict(fp), rtol=1e-5)
    assert a.predict(fp)[0] != a.predict(fp)[1]


def test_misconfiguration_is_reported(tiny_data):
    data, graph = tiny_data
    with pytest.raises(Qua2Error, match="needs graph="):
        GNNSurrogate(data.encoder).fit(data.choices[:5], np.arange(5.0))
    with pytest.raises(Qua2Error, match="conv must be"):
        GNNSurrogate(data.encoder, graph, conv="gcn").fit(data.choices[:5], np.arange(5.0))


@pytest.mark.slow
def test_gnn_ranks_held_out_configs_of_the_known_function(data, synthetic):
    from qua2.surrogates.cv import cross_validate

    graph = study_graph(synthetic[0])
    model = GNNSurrogate(data.encoder, graph, epochs=60)
    result = cross_validate(model, data, data.target(), k=3)
    assert result.summary["spearman_mean"] > 0.9
    assert result.hop_spearman is not None and len(result.hop_spearman) == 5
