"""Pictures of an :class:`~qua2.graph.opgraph.OpGraph`: the whole graph or one block.

A layered layout reads best for a DAG: a node's column is its topological depth (longest path
from an input), and the order within a column minimises crossings by the barycentre heuristic
(a node sits near the mean row of its predecessors, then of its successors). Nodes are
coloured by op type; weight layers (the quantizable nodes) are squares. The whole-graph view
marks blocks with alternating bands and their names; the block view labels every node and
shows the block's neighbours outside it in grey.

Figure builders return a :class:`matplotlib.figure.Figure` and never call ``plt.show()``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np

from qua2.errors import Qua2Error
from qua2.graph.vocab import OP_TYPES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from qua2.graph.opgraph import OpGraph

_PALETTE = ("#bdbdbd", "#212121", "#1f77b4", "#17becf", "#ff7f0e", "#8c564b", "#2ca02c",
            "#d62728", "#e377c2", "#f7b6d2", "#bcbd22", "#9467bd", "#ffd700", "#c49c94",
            "#7f7f7f", "#dbdb8d", "#ffbb78", "#aec7e8", "#000000")
#: Colour of every op type (fixed, so pictures of different models compare).
OP_COLORS = dict(zip(OP_TYPES, _PALETTE))


def layered_layout(num_nodes: int, edges: np.ndarray, sweeps: int = 4) -> np.ndarray:
    """``[num_nodes, 2]`` positions: column = layer, row = barycentre-ordered place in it.

    Layers are "as late as possible": a node sits just before its first consumer, so side
    branches (time embedding, AdaLN tables, K/V of the caption) appear next to where they
    are used rather than all at the start.
    """
    preds: dict[int, list[int]] = defaultdict(list)
    succs: dict[int, list[int]] = defaultdict(list)
    for src, dst in edges.tolist():
        preds[dst].append(src)
        succs[src].append(dst)
    column = _alap_columns(num_nodes, preds, succs)
    columns: dict[int, list[int]] = defaultdict(list)
    for node in range(num_nodes):
        columns[int(column[node])].append(node)
    row = np.zeros(num_nodes, dtype=np.float64)
    for nodes in columns.values():
        row[nodes] = _centred(len(nodes))
    order = sorted(columns)
    for sweep in range(sweeps):
        forward = sweep % 2 == 0
        neighbours = preds if forward else succs
        for col in order if forward else reversed(order):
            nodes = columns[col]
            keys = [np.mean(row[neighbours[n]]) if neighbours[n] else row[n] for n in nodes]
            ranked = [n for _, n in sorted(zip(keys, nodes), key=lambda kv: kv[0])]
            row[ranked] = _centred(len(ranked))
    return np.stack([column.astype(np.float64), row], axis=1)


def _centred(n: int) -> np.ndarray:
    """Rows ``0 … n − 1`` shifted to be centred on 0."""
    return np.arange(n) - (n - 1) / 2


def _alap_columns(num_nodes: int, preds: dict[int, list[int]],
                  succs: dict[int, list[int]]) -> np.ndarray:
    """Longest-path depth, then every node moved right to just before its first consumer."""
    column = np.zeros(num_nodes, dtype=np.int64)
    for node in range(num_nodes):  # rows are topologically ordered
        if preds[node]:
            column[node] = max(column[p] for p in preds[node]) + 1
    for node in reversed(range(num_nodes)):
        if succs[node]:
            column[node] = min(column[s] for s in succs[node]) - 1
    return column


def _short(name: str, block: str) -> str:
    """Node label inside a block view: the name relative to the block."""
    if block and name.startswith(block):
        rest = name[len(block):].lstrip(".")
        return rest or name
    return name


def draw_graph(graph: OpGraph, block: str | None = None, title: str | None = None) -> Figure:
    """A picture of ``graph`` (or of one ``block``, with its outside neighbours in grey)."""
    if block is None:
        return _draw_wrapped(graph.subgraph(np.arange(graph.num_nodes)), title or graph.summary())
    rows = select_block(graph, block)
    title = title or f"{graph.model}: {block} ({len(rows)} nodes)"
    rows, outside = _with_neighbours(graph, rows)
    return _draw_block(graph.subgraph(rows), np.isin(rows, outside), block, title)


def select_block(graph: OpGraph, block: str) -> np.ndarray:
    """Rows of a block name (``block`` column) or of a partition sub-graph name."""
    rows = np.flatnonzero(graph.nodes["block"].to_numpy() == block)
    if len(rows) == 0:
        parts = {p.name: p for p in graph.partition()}
        if block in parts:
            rows = np.asarray(parts[block].nodes)
    if len(rows) == 0:
        known = graph.blocks()
        sample = ", ".join(known[:6])
        raise Qua2Error(f"the graph of {graph.model} has no block {block!r}; blocks include "
                        f"{sample} … ({len(known)} in all; list them with --list-blocks).")
    return rows


def _with_neighbours(graph: OpGraph, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    inside = np.zeros(graph.num_nodes, dtype=bool)
    inside[rows] = True
    src, dst = graph.edges[:, 0], graph.edges[:, 1]
    touching = inside[src] ^ inside[dst]
    outside = np.unique(np.concatenate([src[touching & ~inside[src]],
                                        dst[touching & ~inside[dst]]]))
    return np.union1d(rows, outside), outside


#: Whole-graph view: inches per layer column and columns per wrapped panel.
_COLUMN_INCHES, _PANEL_COLUMNS = 0.11, 220


def _draw_wrapped(sub: OpGraph, title: str) -> Figure:
    """Left to right, wrapped into stacked panels like lines of text; blocks as bands."""
    from matplotlib.figure import Figure

    pos = layered_layout(sub.num_nodes, sub.edges)
    columns = int(pos[:, 0].max()) + 1
    panels = max(1, -(-columns // _PANEL_COLUMNS))
    span = -(-columns // panels)  # balanced panels: no nearly empty last line
    panel_height = float(np.clip(np.ptp(pos[:, 1]) * 0.13 + 1.6, 2.2, 12))
    fig = Figure(figsize=(span * _COLUMN_INCHES + 4, panels * panel_height + 0.6), dpi=90)
    axes = fig.subplots(panels, 1, squeeze=False)[:, 0]
    grey = np.zeros(sub.num_nodes, dtype=bool)
    for i, ax in enumerate(axes):
        _draw_nodes(ax, sub, pos, grey, labelled=False)
        _block_bands(ax, sub, pos)
        ax.set_xlim(i * span - 0.5, (i + 1) * span - 0.5)
        ax.set_ylim(pos[:, 1].min() - 1.6, pos[:, 1].max() + 0.6)
        ax.set_axis_off()
    _legend(axes[0], sub, outside=False)
    axes[0].set_title(title, loc="left", fontsize=11)
    width = fig.get_figwidth()
    fig.subplots_adjust(left=0.2 / width, right=1 - 1.8 / width, top=1 - 0.5 / fig.get_figheight(),
                        bottom=0.02, hspace=0.08)
    return fig


def _draw_block(sub: OpGraph, grey: np.ndarray, block: str, title: str) -> Figure:
    """Top to bottom, every node labelled, the block's outside neighbours in grey."""
    from matplotlib.figure import Figure

    layout = layered_layout(sub.num_nodes, sub.edges)
    pos = np.stack([layout[:, 1] * 2.2, -layout[:, 0]], axis=1)
    width = float(np.clip(np.ptp(pos[:, 0]) * 1.1 + 8, 8, 60))
    height = float(np.clip(np.ptp(pos[:, 1]) * 0.42 + 2, 4, 80))
    fig = Figure(figsize=(width, height), dpi=100)
    ax = fig.add_subplot()
    _draw_nodes(ax, sub, pos, grey, labelled=True)
    _label_nodes(ax, sub, pos, block)
    _legend(ax, sub, outside=True)
    ax.set_title(title, loc="left", fontsize=11)
    ax.set_axis_off()
    # Room on the right for the labels of the rightmost column (text is not auto-scaled).
    ax.set_xlim(pos[:, 0].min() - 0.6, pos[:, 0].max() + 4.5)
    ax.set_ylim(pos[:, 1].min() - 0.6, pos[:, 1].max() + 0.6)
    fig.tight_layout()
    return fig


def _legend(ax, sub: OpGraph, outside: bool) -> None:
    from matplotlib.lines import Line2D

    present = set(sub.nodes["op_type"])
    handles = [Line2D([], [], marker="o", ls="", color=OP_COLORS[op], mec="black", mew=0.3,
                      label=op) for op in OP_TYPES if op in present]
    handles.append(Line2D([], [], marker="s", ls="", color="white", mec="black",
                          label="weight layer"))
    if outside:
        handles.append(Line2D([], [], marker="o", ls="", color="#dddddd", mec="black",
                              mew=0.3, label="outside the block"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9,
              frameon=False)


def _draw_edges(ax, pos: np.ndarray, edges: np.ndarray, grey: np.ndarray) -> None:
    """Edges as straight segments; long ones (residual streams, conditioning) fainter."""
    from matplotlib.collections import LineCollection

    if not len(edges):
        return
    segments = np.stack([pos[edges[:, 0]], pos[edges[:, 1]]], axis=1)
    length = np.abs(segments[:, 1] - segments[:, 0]).max(axis=1)
    faint = grey[edges[:, 0]] | grey[edges[:, 1]]
    alpha = np.where(length > 30, 0.12, 0.4)
    colors = np.zeros((len(edges), 4))
    colors[:, :3] = np.where(faint[:, None], 0.7, 0.2)
    colors[:, 3] = np.where(faint, 0.5, alpha)
    ax.add_collection(LineCollection(list(segments), colors=colors, linewidths=0.6, zorder=1))


def _draw_nodes(ax, sub: OpGraph, pos: np.ndarray, grey: np.ndarray, labelled: bool) -> None:
    """The edges, then the nodes: circles coloured by op type, weight layers as squares."""
    _draw_edges(ax, pos, sub.edges, grey)
    op = sub.nodes["op_type"].to_numpy()
    layer = sub.nodes["quantizable"].to_numpy()
    size = 60 if labelled else 14
    for marker, mask in (("o", ~layer), ("s", layer)):
        colors = [("#dddddd" if g else OP_COLORS[o]) for o, g in zip(op[mask], grey[mask])]
        ax.scatter(pos[mask, 0], pos[mask, 1], c=colors, marker=marker, s=size * (1.6 if
                   marker == "s" else 1), edgecolors="black", linewidths=0.3, zorder=2)


def _label_nodes(ax, sub: OpGraph, pos: np.ndarray, block: str) -> None:
    for (x, y), name, op in zip(pos, sub.nodes["name"], sub.nodes["op_type"]):
        label = _short(name, block)
        if ":" in label and not label.startswith(":"):
            label = label.replace(":", " : ")
        ax.annotate(label, (x, y), xytext=(8, 0), textcoords="offset points", ha="left",
                    va="center", fontsize=8, zorder=3,
                    fontweight="bold" if op in ("linear", "conv") else "normal")


def _block_bands(ax, sub: OpGraph, pos: np.ndarray) -> None:
    """Alternating bands behind consecutive blocks, with their names underneath."""
    blocks = sub.nodes["block"].to_numpy()
    bottom = pos[:, 1].min() - 0.4
    spans: dict[str, tuple[float, float]] = {}
    for name, x in zip(blocks, pos[:, 0]):
        lo, hi = spans.get(name, (x, x))
        spans[name] = (min(lo, x), max(hi, x))
    ordered = sorted((s for s in spans.items() if "." in s[0]), key=lambda s: s[1][0])
    for i, (name, (lo, hi)) in enumerate(ordered):
        ax.axvspan(lo - 0.5, hi + 0.5, color="#4a90d9" if i % 2 else "#f5a623", alpha=0.08,
                   zorder=0)
        ax.text((lo + hi) / 2, bottom, _abbreviate(name), rotation=90, fontsize=7,
                ha="center", va="top", color="#333333", clip_on=True)


def _abbreviate(block: str) -> str:
    """``transformer_blocks.7`` → ``tb.7``, ``down_blocks.1.attentions.0`` → ``d1.attn0``."""
    for long, short in (("single_transformer_blocks.", "stb."), ("transformer_blocks.", "tb."),
                        ("down_blocks.", "d"), ("up_blocks.", "u"), ("mid_block.", "mid."),
                        (".attentions.", ".attn"), (".resnets.", ".res"),
                        (".downsamplers.", ".down"), (".upsamplers.", ".up")):
        block = block.replace(long, short)
    return block
