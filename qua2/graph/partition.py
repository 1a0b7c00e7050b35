"""Cut an :class:`~qua2.graph.opgraph.OpGraph` into named sub-graphs.

Qua²SeDiMo scores every *variant* of a sub-graph (all option combinations of its weight layers)
to explain sensitivity per block and per op type, and builds configurations from the best
variant of each. Its sub-graphs are per block (self-attention, cross-attention, feed-forward …)
and global (time embedding, caption embedding, patch in/out). Here they come from the node
labels, so every family gets them without tables:

* nodes inside a block (stage ``down``/``mid``/``up``/``trunk`` with a block name) are grouped
  by ``(block, role component)``: ``transformer_blocks.3/self_attn``,
  ``down_blocks.1.resnets.0/resnet``, ``transformer_blocks.3/adaln`` …;
* all other nodes are grouped by role component alone: ``time_embed``, ``text_embed``,
  ``class_embed``, ``cond_embed``, ``pos_embed``, ``patch_in``, ``patch_out``, ``input``,
  ``output``.

Every node belongs to exactly one sub-graph. Sub-graphs without weight layers (norms, residual
adds) are kept so that the partition is complete; ``layers`` tells them apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qua2.graph.opgraph import OpGraph

_BLOCK_STAGES = frozenset({"down", "mid", "up", "trunk"})


@dataclass(frozen=True)
class SubGraph:
    """A named set of node rows of one graph."""

    name: str                 # ``block/kind`` inside blocks, ``kind`` for global parts
    kind: str                 # the role component shared by the nodes
    block: str                # the block, or '' for global sub-graphs
    nodes: tuple[int, ...]    # row indices into ``OpGraph.nodes``, ascending
    layers: tuple[str, ...]   # the quantizable layers among them, in execution order

    def __len__(self) -> int:
        return len(self.nodes)


def partition(graph: OpGraph) -> list[SubGraph]:
    """The sub-graphs of ``graph``, ordered by their first node."""
    nodes = graph.nodes
    groups: dict[tuple[str, str], list[int]] = {}
    for row, (block, stage, role) in enumerate(
            nodes[["block", "stage", "role"]].itertuples(index=False)):
        in_block = stage in _BLOCK_STAGES and "." in block
        groups.setdefault((block if in_block else "", role.split(".")[0]), []).append(row)
    names = nodes["name"].tolist()
    quantizable = nodes["quantizable"].tolist()
    out = []
    for (block, kind), rows in sorted(groups.items(), key=lambda item: item[1][0]):
        layers = tuple(names[r] for r in rows if quantizable[r])
        name = f"{block}/{kind}" if block else kind
        out.append(SubGraph(name, kind, block, tuple(rows), layers))
    return out
