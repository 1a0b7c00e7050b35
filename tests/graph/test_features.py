"""Partition into sub-graphs and GNN features (single config, batches, reverse edges)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
import torch
from torch_geometric.data import Batch

from qua2.errors import Qua2Error
from qua2.graph.features import GraphFeaturizer
from qua2.specs import QuantConfig, QuantOption, SearchSpace


@dataclass(frozen=True)
class _Stats:
    nbytes: int
    fp16_nbytes: int
    error: float


class FakeCache:
    """Stands in for qua2.quant's option cache: deterministic stats, counts its look-ups."""

    def __init__(self) -> None:
        self.calls = 0

    def option_stats(self, layer: str, option: QuantOption) -> _Stats:
        self.calls += 1
        return _Stats(nbytes=option.bits * 10, fp16_nbytes=160,
                      error=len(layer) / 100 + (8 - option.bits))


SPACE = SearchSpace.grid(["uaq", "kmeans_c", "kmeans_a"], [3, 4])


def _random_config(layers: list[str], seed: int) -> QuantConfig:
    rng = random.Random(seed)
    return QuantConfig({name: rng.choice(SPACE.options) for name in layers
                        if rng.random() < 0.8})


# --------------------------------------------------------------------------- partition
def test_partition_covers_every_node_exactly_once(graph):
    parts = graph.partition()
    rows = [r for part in parts for r in part.nodes]
    assert sorted(rows) == list(range(graph.num_nodes))
    assert sorted(layer for p in parts for layer in p.layers) == sorted(graph.layers())
    assert len({p.name for p in parts}) == len(parts)


def test_partition_has_the_expected_parts(traced_of):
    names = {p.name for p in traced_of("pixart")[2].partition()}
    assert {"transformer_blocks.0/self_attn", "transformer_blocks.0/cross_attn",
            "transformer_blocks.0/ff", "transformer_blocks.1/ff", "time_embed", "text_embed",
            "patch_in", "patch_out"} <= names
    sdxl = {p.name: p for p in traced_of("sdxl")[2].partition()}
    assert sdxl["down_blocks.1.resnets.0/resnet"].layers[0] == "down_blocks.1.resnets.0.conv1"
    assert "up_blocks.0.upsamplers.0/sampler" in sdxl
    assert {"time_embed", "text_embed", "cond_embed"} <= set(sdxl)


# --------------------------------------------------------------------------- features
def test_static_features_and_fp_default(traced_of):
    graph = traced_of("dit")[2]
    featurizer = GraphFeaturizer(graph, SPACE)
    data = graph.to_pyg(None, None, methods=SPACE)
    assert data.x.shape == (graph.num_nodes, len(featurizer.feature_names))
    assert data.edge_index.shape == (2, graph.num_edges)
    names = featurizer.feature_names
    x = data.x
    assert (x[:, names.index("method=fp")] == 1).all()
    assert (x[:, names.index("bits")] == 1).all()
    op_cols = [i for i, n in enumerate(names) if n.startswith("op=")]
    assert (x[:, op_cols].sum(1) == 1).all()
    q = names.index("quantizable")
    assert int(x[:, q].sum()) == len(graph.layers())


def test_quant_features_follow_the_config_and_cache(traced_of):
    graph = traced_of("pixart")[2]
    featurizer = GraphFeaturizer(graph, SPACE)
    layer = "transformer_blocks.0.attn1.to_q"
    config = QuantConfig({layer: QuantOption("kmeans_c", 3)})
    data = featurizer(config, FakeCache(), y=-12.5)
    names = featurizer.feature_names
    row = data.x[graph.index(layer)]
    assert row[names.index("method=kmeans_c")] == 1 and row[names.index("method=fp")] == 0
    assert row[names.index("bits")] == pytest.approx(3 / 16)
    assert row[names.index("size_ratio")] == pytest.approx(30 / 160)
    assert row[names.index("error")] == pytest.approx(len(layer) / 100 + 5)
    other = data.x[graph.index("transformer_blocks.0.attn1.to_k")]
    assert other[names.index("method=fp")] == 1
    assert data.y.item() == -12.5


def test_batch_equals_collated_singles_and_memoises_cache(traced_of):
    graph = traced_of("sd15")[2]
    featurizer = GraphFeaturizer(graph, SPACE, reverse_edges=True)
    cache = FakeCache()
    configs = [_random_config(graph.layers(), seed) for seed in range(5)]
    batch = featurizer.batch(configs, cache, y=[1.0, 2.0, 3.0, 4.0, 5.0])
    reference = Batch.from_data_list(
        [featurizer(c, cache, y=float(i + 1)) for i, c in enumerate(configs)])
    for key in ("x", "edge_index", "edge_type", "batch", "ptr", "y"):
        assert torch.equal(batch[key], reference[key]), key
    assert batch.num_graphs == 5
    assert torch.equal(batch.to_data_list()[3].x, reference.to_data_list()[3].x)
    assert cache.calls <= len(graph.layers()) * len(SPACE)


def test_reverse_edges_option(traced_of):
    graph = traced_of("dit")[2]
    data = graph.to_pyg(reverse_edges=True)
    e = graph.num_edges
    assert data.edge_index.shape == (2, 2 * e)
    assert torch.equal(data.edge_index[:, e:], data.edge_index[:, :e].flip(0))
    assert data.edge_type.tolist() == [0] * e + [1] * e


def test_bad_configs_are_one_sentence(traced_of):
    graph = traced_of("dit")[2]
    featurizer = GraphFeaturizer(graph, ["uaq"])
    with pytest.raises(Qua2Error, match="not a quantizable layer"):
        featurizer(QuantConfig({"nope": QuantOption("uaq", 4)}), FakeCache())
    with pytest.raises(Qua2Error, match="featurizer's methods"):
        featurizer(QuantConfig({graph.layers()[0]: QuantOption("kmeans_a", 4)}), FakeCache())
    with pytest.raises(Qua2Error, match="option cache"):
        featurizer(QuantConfig({graph.layers()[0]: QuantOption("uaq", 4)}), None)


def test_round_trip_through_dict(traced_of):
    from qua2.graph import OpGraph

    graph = traced_of("flux")[2]
    again = OpGraph.from_dict(graph.to_dict())
    assert again.nodes.equals(graph.nodes)
    assert (again.edges == graph.edges).all()


def test_features_from_the_real_option_cache(traced_of, tmp_path):
    cache_module = pytest.importorskip("qua2.quant.cache")
    module, _, graph = traced_of("dit")
    space = SearchSpace.grid(["uaq"], [3, 4])
    cache = cache_module.OptionCache.build(module, space, tmp_path / "cache", progress=False,
                                           log=lambda *args, **kwargs: None)
    config = QuantConfig.uniform(graph.layers(), QuantOption("uaq", 3))
    featurizer = GraphFeaturizer(graph, space)
    x = featurizer(config, cache).x
    names = featurizer.feature_names
    rows = featurizer.layer_rows
    ratio, error = x[rows, names.index("size_ratio")], x[rows, names.index("error")]
    assert ((ratio > 3 / 16) & (ratio < 0.5)).all()  # 3 bits plus per-channel overheads
    assert (error > 0).all()
