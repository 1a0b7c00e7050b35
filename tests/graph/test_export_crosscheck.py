"""Cross-check the traced edges against ``torch.export`` (non-strict) on a few families.

``torch.export`` lowers the model to aten ops; its weight layers are the ``linear``/``conv``
calls whose weight is a lifted parameter. For every weight layer we compare the set of
*nearest upstream weight layers* (walking back through every non-layer op) in both graphs:
it checks residuals, skips, attention and embedding paths without depending on how either
graph names or contracts the ops in between.
"""

from __future__ import annotations

import time

import pytest
import torch

_LAYER_OPS = ("linear", "conv1d", "conv2d", "conv3d", "convolution")


def _export_upstream(module, example) -> dict[str, set[str]]:
    program = torch.export.export(module, example.args, example.kwargs, strict=False)
    params = program.graph_signature.inputs_to_parameters
    layer_of: dict[str, str] = {}
    for node in program.graph.nodes:
        if node.op == "call_function" and node.target.__name__.split(".")[0] in _LAYER_OPS:
            weight = node.args[1]
            if weight.name in params:
                layer_of[node.name] = params[weight.name].rsplit(".", 1)[0]
    upstream: dict[str, set[str]] = {}
    for node in program.graph.nodes:
        if node.name in layer_of:
            found = _nearest_layers(node.args[0], layer_of)
            upstream.setdefault(layer_of[node.name], set()).update(found)
    return upstream


def _nearest_layers(start, layer_of: dict[str, str]) -> set[str]:
    found, seen, stack = set(), set(), [start]
    while stack:
        node = stack.pop()
        if not isinstance(node, torch.fx.Node) or node.name in seen:
            continue
        seen.add(node.name)
        if node.name in layer_of:
            found.add(layer_of[node.name])
            continue
        stack.extend(node.all_input_nodes)
    return found


def _traced_upstream(graph) -> dict[str, set[str]]:
    quantizable = graph.nodes["quantizable"].to_numpy()
    names = graph.nodes["name"].tolist()
    preds: dict[int, list[int]] = {}
    for src, dst in graph.edges.tolist():
        preds.setdefault(dst, []).append(src)
    upstream = {}
    for row in quantizable.nonzero()[0]:
        found, seen, stack = set(), set(), list(preds.get(row, []))
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            if quantizable[node]:
                found.add(names[node])
            else:
                stack.extend(preds.get(node, []))
        upstream[names[row]] = found
    return upstream


@pytest.mark.parametrize("family", ["dit", "pixart", pytest.param("sd15", marks=pytest.mark.slow),
                                    pytest.param("flux", marks=pytest.mark.slow)])
def test_layer_connectivity_matches_torch_export(family, traced_of):
    module, example, graph = traced_of(family)
    start = time.perf_counter()
    exported = _export_upstream(module, example)
    elapsed = time.perf_counter() - start
    traced = _traced_upstream(graph)
    assert set(exported) == set(traced)
    mismatched = {k: (traced[k], exported[k]) for k in traced if traced[k] != exported[k]}
    assert not mismatched, mismatched
    print(f"{family}: torch.export took {elapsed:.1f} s for {len(traced)} layers")
