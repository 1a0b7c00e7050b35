"""Structural invariants of the traced graph, checked for every tiny diffusers family."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from qua2.graph import OP_TYPES, ROLE_COMPONENTS, STAGES, trace
from qua2.models.architectures import full_size_denoiser
from qua2.quant.layers import quantizable_layers


def test_single_weakly_connected_component(graph):
    assert nx.number_weakly_connected_components(graph.to_networkx()) == 1


def test_acyclic_and_rows_are_topological(graph):
    assert nx.is_directed_acyclic_graph(graph.to_networkx())
    assert (graph.edges[:, 0] < graph.edges[:, 1]).all()
    assert len({tuple(e) for e in graph.edges.tolist()}) == graph.num_edges  # no duplicates


def test_every_parameter_attributed_exactly_once(traced):
    module, _, graph = traced
    attributed = [p for names in graph.nodes["param_names"] for p in names]
    assert len(attributed) == len(set(attributed))
    assert set(attributed) == {name for name, _ in module.named_parameters()}
    assert graph.unused_params == ()
    assert graph.nodes["params"].sum() == sum(p.numel() for p in module.parameters())


def test_every_quantizable_layer_exactly_once(traced):
    module, _, graph = traced
    layers = graph.layers()
    assert len(layers) == len(set(layers))
    assert sorted(layers) == sorted(quantizable_layers(module))
    rows = graph.nodes[graph.nodes["quantizable"]]
    assert rows["op_type"].isin(["linear", "conv"]).all()
    assert all(tuple(module.get_submodule(n).weight.shape) == s
               for n, s in zip(rows["name"], rows["weight_shape"]))


def test_names_unique_and_map_back_to_modules(traced):
    module, _, graph = traced
    assert not graph.nodes["name"].duplicated().any()
    for name, owner, op_type in graph.nodes[["name", "module", "op_type"]].itertuples(
            index=False):
        module.get_submodule(owner)  # raises if the name does not map back
        if op_type in ("input", "output"):
            continue
        if ":" in name:
            assert name.split(":")[0] == owner
        else:
            assert name.split("@")[0] == owner


def test_labels_come_from_fixed_vocabularies(graph):
    nodes = graph.nodes
    assert nodes["op_type"].isin(OP_TYPES).all()
    assert nodes["stage"].isin(STAGES).all()
    assert nodes["role"].str.split(".").str[0].isin(ROLE_COMPONENTS).all()
    assert not (nodes["op_type"] == "other").any(), nodes.loc[nodes.op_type == "other", "func"]


def test_every_weight_layer_has_a_meaningful_role(graph):
    layers = graph.nodes[graph.nodes["quantizable"]]
    assert not layers["role"].str.contains("other").any(), layers.loc[
        layers["role"].str.contains("other"), ["name", "role"]]
    assert layers["block"].ne("").all()


def test_every_node_feeds_the_output_and_depth_is_consistent(graph):
    assert graph.nodes["live"].all()
    depth = graph.nodes["depth"].to_numpy()
    assert (depth[graph.edges[:, 1]] > depth[graph.edges[:, 0]]).all()
    assert graph.nodes["name"].iloc[-1] == "output"
    assert np.array_equal(graph.nodes.index, np.arange(graph.num_nodes))


@pytest.mark.parametrize("family", [
    "pixart", "sdxl", "flux", *(pytest.param(f, marks=pytest.mark.slow)
                                for f in ("dit", "hunyuan", "sd15", "sd3"))])
def test_full_size_architectures_on_meta(family):
    module, example = full_size_denoiser(family)
    graph = trace(module, *example.args, **example.kwargs)
    assert sorted(graph.layers()) == sorted(quantizable_layers(module))
    assert graph.unused_params == ()
    assert nx.number_weakly_connected_components(graph.to_networkx()) == 1
    assert graph.nodes["params"].sum() == sum(p.numel() for p in module.parameters())
    layers = graph.nodes[graph.nodes["quantizable"]]
    assert not layers["role"].str.contains("other").any()
