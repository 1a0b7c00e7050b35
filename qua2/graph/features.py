"""Node features of an :class:`~qua2.graph.opgraph.OpGraph` for a GNN, per quantization config.

A node's feature vector is a *static* part, fixed by the architecture, followed by a
*quantization* part that depends on the config (Qua²SeDiMo: method id, bit id — 16 for nodes
kept in FP — FP/quantized size ratio and quantization error)::

    static:  one-hot op_type (vocab.OP_TYPES) | one-hot role component (vocab.ROLE_COMPONENTS)
             | one-hot stage (vocab.STAGES) | block position | depth position | log params
             | quantizable
    quant:   one-hot method (["fp", *methods]) | bits / 16 | log2(group size) / 8
             | size ratio (nbytes / fp16 nbytes) | reconstruction error

Only the quant part of the quantizable nodes changes between configs, so
:class:`GraphFeaturizer` builds the static matrix and the edge index once, and a batch of
configs costs one dictionary look-up per (layer, option) plus a few tensor copies. Option
statistics come from ``cache.option_stats(layer, option)``, which returns an object with
``nbytes``, ``fp16_nbytes`` and ``error``; they are memoised per featurizer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from qua2.errors import Qua2Error
from qua2.graph import vocab
from qua2.graph.opgraph import OpGraph
from qua2.specs import FP_BITS

if TYPE_CHECKING:
    from qua2.specs import QuantConfig, QuantOption

class OptionSizes(Protocol):
    """Size and error of one (layer, option), as an option-statistics source gives them."""

    @property
    def nbytes(self) -> float: ...
    @property
    def fp16_nbytes(self) -> float: ...
    @property
    def error(self) -> float: ...


class OptionStatsSource(Protocol):
    """Where option sizes and errors come from: an :class:`~qua2.quant.OptionCache` or
    :class:`~qua2.surrogates.encoding.OptionStats`."""

    def option_stats(self, layer: str, option: QuantOption) -> OptionSizes: ...



def _one_hot(values: Sequence[str], vocabulary: Sequence[str]) -> np.ndarray:
    index = {v: i for i, v in enumerate(vocabulary)}
    return np.eye(len(vocabulary), dtype=np.float32)[[index[v] for v in values]]


def _normalised(values: np.ndarray) -> np.ndarray:
    top = float(values.max()) if len(values) else 0.0
    return (values / top if top > 0 else values * 0).astype(np.float32)


class GraphFeaturizer:
    """Turns (graph, config, option cache) into ``torch_geometric`` data, cheaply per config.

    ``methods`` fixes the method one-hot (a sequence of names or a ``SearchSpace``); every
    config featurized by one featurizer gets the same feature layout. ``reverse_edges`` adds
    every edge reversed too, with ``edge_type`` 1 (forward edges have 0), so messages can flow
    against the data flow as well.
    """

    def __init__(self, graph: OpGraph, methods: Any = None, *,
                 reverse_edges: bool = False) -> None:
        if methods is None:  # qua2.quant's method registry, in registration order
            from qua2.quant.methods import METHODS

            methods = tuple(METHODS)
        self.graph = graph
        self.methods: tuple[str, ...] = tuple(getattr(methods, "methods", methods))
        self.reverse_edges = reverse_edges
        self.static = torch.from_numpy(self._static_features())
        self.edge_index, self.edge_type = self._edges()
        rows = np.flatnonzero(graph.nodes["quantizable"].to_numpy())
        self.layer_rows = torch.from_numpy(rows)
        self.layer_names: list[str] = graph.nodes["name"].to_numpy()[rows].tolist()
        self._layer_set = set(self.layer_names)
        self._rows: dict[tuple[str, Any], np.ndarray] = {}
        self._method_col = {m: i + 1 for i, m in enumerate(self.methods)}
        self.quant_names = ["method=fp", *(f"method={m}" for m in self.methods),
                            "bits", "group_size", "size_ratio", "error"]
        self.fp_row = torch.zeros(len(self.quant_names))
        self.fp_row[0] = 1.0
        self.fp_row[-4] = 1.0  # 16 bits / 16
        self.fp_row[-2] = 1.0  # FP size / FP size
        self._fp_row_np = self.fp_row.numpy()

    # ------------------------------------------------------------------ static part
    @property
    def feature_names(self) -> list[str]:
        """Names of the feature columns, static part first."""
        return [*(f"op={o}" for o in vocab.OP_TYPES),
                *(f"role={r}" for r in vocab.ROLE_COMPONENTS),
                *(f"stage={s}" for s in vocab.STAGES),
                "block_position", "depth_position", "log_params", "quantizable",
                *self.quant_names]

    def _static_features(self) -> np.ndarray:
        nodes = self.graph.nodes
        params = np.log1p(nodes["params"].to_numpy(dtype=np.float64))
        return np.concatenate([
            _one_hot(nodes["op_type"].tolist(), vocab.OP_TYPES),
            _one_hot(nodes["role"].str.split(".").str[0].tolist(), vocab.ROLE_COMPONENTS),
            _one_hot(nodes["stage"].tolist(), vocab.STAGES),
            _normalised(nodes["block_index"].to_numpy(dtype=np.float64))[:, None],
            _normalised(nodes["depth"].to_numpy(dtype=np.float64))[:, None],
            _normalised(params)[:, None],
            nodes["quantizable"].to_numpy(dtype=np.float32)[:, None],
        ], axis=1)

    def _edges(self) -> tuple[torch.Tensor, torch.Tensor]:
        forward = torch.from_numpy(self.graph.edges.T.copy())
        kinds = torch.zeros(forward.shape[1], dtype=torch.long)
        if not self.reverse_edges:
            return forward, kinds
        return (torch.cat([forward, forward.flip(0)], dim=1),
                torch.cat([kinds, torch.ones_like(kinds)]))

    # ------------------------------------------------------------------ quant part
    def _option_row(self, cache: OptionStatsSource, layer: str,
                    option: QuantOption) -> np.ndarray:
        """The quant features of one (layer, option), memoised (one cache look-up each)."""
        key = (layer, option)
        row = self._rows.get(key)
        if row is None:
            if option.method not in self._method_col:
                raise Qua2Error(f"method {option.method!r} of layer {layer!r} is not among the "
                                f"featurizer's methods {list(self.methods)}; pass methods=.")
            stats = cache.option_stats(layer, option)
            row = np.zeros(len(self.quant_names), dtype=np.float32)
            row[self._method_col[option.method]] = 1.0
            row[-4] = option.bits / FP_BITS
            row[-3] = math.log2(option.group_size) / 8 if option.group_size else 0.0
            row[-2] = float(stats.nbytes) / float(stats.fp16_nbytes)
            row[-1] = float(stats.error)
            self._rows[key] = row
        return row

    def quant_features(self, config: QuantConfig | Mapping[str, QuantOption] | None,
                       cache: OptionStatsSource | None) -> torch.Tensor:
        """The quant part of the layer nodes, shape ``[num layers, len(quant_names)]``."""
        choices = dict(config.items()) if config is not None else {}
        if not choices.keys() <= self._layer_set:
            unknown = sorted(set(choices) - self._layer_set)[0]
            raise Qua2Error(f"the config names layer {unknown!r}, which is not a "
                            f"quantizable layer of the traced {self.graph.model}.")
        if choices and cache is None:
            raise Qua2Error("featurizing a quantization config needs the option cache "
                            "(for each option's size ratio and error).")
        fp = self._fp_row_np
        # (cache is None only when choices is empty, checked above)
        rows = [fp if (option := choices.get(layer)) is None or cache is None
                else self._option_row(cache, layer, option) for layer in self.layer_names]
        if not rows:
            return torch.zeros(0, len(self.quant_names))
        return torch.from_numpy(np.stack(rows))

    # ------------------------------------------------------------------ data objects
    def node_features(self, config: QuantConfig | Mapping[str, QuantOption] | None = None,
                      cache: OptionStatsSource | None = None) -> torch.Tensor:
        """The full feature matrix ``[num nodes, num features]`` for one config."""
        quant = self.fp_row.repeat(self.graph.num_nodes, 1)
        quant[self.layer_rows] = self.quant_features(config, cache)
        return torch.cat([self.static, quant], dim=1)

    def __call__(self, config: QuantConfig | Mapping[str, QuantOption] | None = None,
                 cache: OptionStatsSource | None = None, y: float | None = None):
        """One ``torch_geometric.data.Data`` (``x``, ``edge_index``, ``edge_type``, ``y``)."""
        from torch_geometric.data import Data

        data = Data(x=self.node_features(config, cache), edge_index=self.edge_index,
                    edge_type=self.edge_type, num_nodes=self.graph.num_nodes)
        if y is not None:
            data.y = torch.tensor([float(y)])
        return data

    def batch(self, configs: Sequence[QuantConfig | Mapping[str, QuantOption] | None],
              cache: OptionStatsSource | None, y: Sequence[float] | None = None):
        """A ``torch_geometric.data.Batch`` of many configs of this graph, built directly.

        Equivalent to ``Batch.from_data_list([self(c, cache) for c in configs])`` (also for
        ``to_data_list()``), without collating the shared structure graph by graph.
        """
        from torch_geometric.data import Batch

        n, e, b = self.graph.num_nodes, self.edge_index.shape[1], len(configs)
        x = torch.cat([self.static, self.fp_row.repeat(n, 1)], dim=1).repeat(b, 1, 1)
        width = self.static.shape[1]
        for i, config in enumerate(configs):
            x[i, self.layer_rows, width:] = self.quant_features(config, cache)
        offsets = torch.arange(b) * n
        batch = Batch(x=x.reshape(b * n, -1),
                      edge_index=(self.edge_index.repeat(1, b)
                                  + offsets.repeat_interleave(e)),
                      edge_type=self.edge_type.repeat(b),
                      batch=torch.arange(b).repeat_interleave(n),
                      ptr=torch.arange(b + 1) * n)
        slices = {"x": torch.arange(b + 1) * n, "edge_index": torch.arange(b + 1) * e,
                  "edge_type": torch.arange(b + 1) * e}
        incs = {"x": torch.zeros(b, dtype=torch.long), "edge_index": offsets,
                "edge_type": torch.zeros(b, dtype=torch.long)}
        if y is not None:
            batch.y = torch.as_tensor(list(y), dtype=torch.float32)
            slices["y"] = torch.arange(b + 1)
            incs["y"] = torch.zeros(b, dtype=torch.long)
        batch._num_graphs = b
        batch._slice_dict, batch._inc_dict = slices, incs
        return batch
