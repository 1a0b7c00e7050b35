"""``OpGraph``: the traced operation graph as a nodes table plus an edge array.

Columns of :attr:`OpGraph.nodes` (one row per node, in execution order):

=============  =====================================================================
name           unique id: a module's qualified name for module calls (``…attn1.to_q``;
               ``name@k`` for the k-th later call on different inputs), ``ctx:op.k`` for
               functional ops made by module ``ctx`` (root: ``:op.k``), ``input:…``, ``output``
op_type        one of :data:`qua2.graph.vocab.OP_TYPES`
func           the torch function or module class that made the node (for debugging)
module         the module the node maps back to (weight owner, or the calling module)
block          structural unit (``transformer_blocks.7``, ``down_blocks.1.resnets.0``,
               a global module such as ``time_embedding``, or the stage for root ops)
stage          one of :data:`qua2.graph.vocab.STAGES`
role           ``component`` or ``component.part`` (components:
               :data:`qua2.graph.vocab.ROLE_COMPONENTS`), e.g. ``cross_attn.k``, ``ff.out``
params         number of parameter elements attributed to the node
param_names    the qualified parameter names attributed to the node (each exactly once)
weight_shape   shape of the layer's weight, or ``None``
quantizable    True for the one node of each Linear/Conv layer
block_index    index of the node's block in order of first execution
depth          longest path from any source (topological level)
live           the node's value reaches the output
=============  =====================================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from torch import nn

from qua2.graph import labels
from qua2.quant.layers import QUANTIZABLE_TYPES

if TYPE_CHECKING:
    import networkx as nx
    from torch_geometric.data import Data

    from qua2.graph.features import OptionStatsSource
    from qua2.graph.partition import SubGraph
    from qua2.graph.recorder import RawNode, Recorder
    from qua2.specs import QuantConfig, QuantOption

COLUMNS = ("name", "op_type", "func", "module", "block", "stage", "role", "params",
           "param_names", "weight_shape", "quantizable", "block_index", "depth", "live")


@dataclass
class OpGraph:
    """A traced denoiser: :attr:`nodes` (DataFrame, see module docs) and :attr:`edges`.

    ``edges`` is an ``int64`` array of shape ``(E, 2)`` of (source, target) row indices
    following data flow; residual and skip connections are ordinary edges. Sources always
    precede targets, so row order is a topological order.
    """

    nodes: pd.DataFrame
    edges: np.ndarray
    model: str = ""
    unused_params: tuple[str, ...] = ()
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.edges = np.asarray(self.edges, dtype=np.int64).reshape(-1, 2)
        self._index = {n: i for i, n in enumerate(self.nodes["name"])}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_recorder(cls, recorder: Recorder) -> OpGraph:
        """Label and assemble the raw nodes of a finished recording."""
        raw = _drop_unused_inputs(recorder.nodes)
        modules = recorder.modules
        blocks = [labels.block_of(n.module, modules) for n in raw]
        stage = labels.stages(raw, blocks, modules)
        blocks = [_global_block(n, b, s) for n, b, s in zip(raw, blocks, stage)]
        last = labels.last_linears(modules)
        roles = labels.refine_roles(
            raw, [labels.static_role(n, b, modules, last) for n, b in zip(raw, blocks)], stage,
            blocks)
        edges = np.array([(p, n.order) for n in raw for p in n.preds], dtype=np.int64)
        numel = {name: p.numel() for name, p in recorder.root.named_parameters()}
        table = pd.DataFrame({
            "name": [n.name for n in raw],
            "op_type": [n.op_type for n in raw],
            "func": [n.func for n in raw],
            "module": [n.module for n in raw],
            "block": blocks,
            "stage": stage,
            "role": roles,
            "params": [sum(numel[p] for p in n.params) for n in raw],
            "param_names": [tuple(n.params) for n in raw],
            "weight_shape": [n.weight_shape for n in raw],
            "quantizable": [_is_layer_node(n, modules) for n in raw],
            "block_index": pd.factorize(np.array(blocks, dtype=object))[0],  # first-seen order
            "depth": _depths(len(raw), edges),
            "live": _live(len(raw), edges),
        })
        unused = tuple(sorted(set(numel) - recorder.attributed))
        return cls(table, edges, type(recorder.root).__name__, unused)

    # ------------------------------------------------------------------ queries
    @property
    def num_nodes(self) -> int:
        return len(self.nodes)

    @property
    def num_edges(self) -> int:
        return len(self.edges)

    def __len__(self) -> int:
        return self.num_nodes

    def index(self, name: str) -> int:
        """Row index of the node called ``name``."""
        return self._index[name]

    def layers(self) -> list[str]:
        """Qualified names of the quantizable layers, in execution order."""
        return self.nodes.loc[self.nodes["quantizable"], "name"].tolist()

    def blocks(self) -> list[str]:
        """Block names in order of first execution."""
        return list(dict.fromkeys(self.nodes["block"]))

    def predecessors(self, i: int) -> np.ndarray:
        return self.edges[self.edges[:, 1] == i, 0]

    def summary(self) -> str:
        """One line: model, nodes, edges, layers, blocks."""
        return (f"{self.model}: {self.num_nodes} nodes, {self.num_edges} edges, "
                f"{len(self.layers())} quantizable layers, {len(self.blocks())} blocks")

    def subgraph(self, rows: Sequence[int] | np.ndarray) -> OpGraph:
        """The induced sub-graph on ``rows`` (kept in their original order)."""
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        remap = np.full(self.num_nodes, -1, dtype=np.int64)
        remap[rows] = np.arange(len(rows))
        edges = remap[self.edges]
        return OpGraph(self.nodes.iloc[rows].reset_index(drop=True),
                       edges[(edges >= 0).all(axis=1)], self.model, ())

    # ------------------------------------------------------------------ conversions
    def to_networkx(self) -> nx.DiGraph:
        """A ``networkx.DiGraph`` on row indices; node attributes are the table's columns."""
        import networkx as nx

        graph = nx.DiGraph(model=self.model)
        for row in self.nodes.itertuples(index=True):
            attrs = row._asdict()
            graph.add_node(attrs.pop("Index"), **attrs)
        graph.add_edges_from(map(tuple, self.edges.tolist()))
        return graph

    def to_pyg(self, config: QuantConfig | Mapping[str, QuantOption] | None = None,
               cache: OptionStatsSource | None = None, *, reverse_edges: bool = False,
               methods: Sequence[str] | None = None) -> Data:
        """A ``torch_geometric.data.Data`` for one quantization config (see ``features``)."""
        from qua2.graph.features import GraphFeaturizer

        featurizer = GraphFeaturizer(self, methods=methods, reverse_edges=reverse_edges)
        return featurizer(config, cache)

    def partition(self) -> list[SubGraph]:
        """Sub-graphs per block part and global component (see ``qua2.graph.partition``)."""
        from qua2.graph.partition import partition

        return partition(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (version 1)."""
        records = self.nodes.to_dict(orient="list")
        records["param_names"] = [list(p) for p in records["param_names"]]
        records["weight_shape"] = [list(s) if s is not None else None
                                   for s in records["weight_shape"]]
        return {"version": 1, "model": self.model, "nodes": records,
                "edges": self.edges.tolist(), "unused_params": list(self.unused_params)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OpGraph:
        from qua2.errors import Qua2Error

        if data.get("version") != 1:
            raise Qua2Error(f"cannot read an op graph of format version {data.get('version')!r}"
                            "; re-trace the model with this qua2.")
        nodes = pd.DataFrame(data["nodes"])
        nodes["param_names"] = [tuple(p) for p in nodes["param_names"]]
        nodes["weight_shape"] = [tuple(s) if s is not None else None
                                 for s in nodes["weight_shape"]]
        return cls(nodes, np.asarray(data["edges"], dtype=np.int64), data.get("model", ""),
                   tuple(data.get("unused_params", ())))


# --------------------------------------------------------------------------- helpers
def _drop_unused_inputs(nodes: list[RawNode]) -> list[RawNode]:
    """Remove input nodes nobody consumes and renumber (orders stay topological)."""
    used = {p for n in nodes for p in n.preds}
    keep = [n for n in nodes if n.op_type != "input" or n.order in used]
    remap = {n.order: i for i, n in enumerate(keep)}
    for i, node in enumerate(keep):
        node.preds = [remap[p] for p in node.preds]
        node.order = i
    return keep


def _global_block(node: RawNode, block: str, stage: str) -> str:
    if node.op_type in ("input", "output"):
        return node.op_type
    return block or stage  # ops made by the root module are named after their stage


def _is_layer_node(node: RawNode, modules: dict[str, nn.Module]) -> bool:
    """The first call of a Linear/Conv layer (its weight attributed here) is the layer node."""
    module = modules.get(node.module)
    return (isinstance(module, QUANTIZABLE_TYPES) and node.name == node.module
            and f"{node.module}.weight" in node.params)


def _depths(n: int, edges: np.ndarray) -> list[int]:
    depth = [0] * n
    for src, dst in edges[np.argsort(edges[:, 1], kind="stable")].tolist():
        depth[dst] = max(depth[dst], depth[src] + 1)
    return depth


def _live(n: int, edges: np.ndarray) -> list[bool]:
    """Nodes from which the last node (the output) is reachable."""
    live = [False] * n
    if n:
        live[n - 1] = True
    for src, dst in edges[np.argsort(-edges[:, 1], kind="stable")].tolist():
        if live[dst]:
            live[src] = True
    return live
