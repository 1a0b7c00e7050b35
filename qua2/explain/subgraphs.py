"""Qua²SeDiMo's quantifiable sensitivity: a score for every variant of every sub-graph.

The operation graph is cut into sub-graphs (:meth:`~qua2.graph.OpGraph.partition`: per block
self-attention, cross-attention, feed-forward, AdaLN …; globally time/caption embeddings,
patch in/out). A *variant* is one combination of options for a sub-graph's weight layers
(all of them, or a seeded random sample when there are more than ``max_variants``).

* ``embedding`` (GNN, as in Mills et al., AAAI 2025): the sub-graph alone is passed through
  the trained GNN; the norm of its mean-pooled embedding after each hop is standardised per
  hop over all variants, weighted by that hop's held-out rank correlation between embedding
  norm and target (from ``qua2 fit``), and summed.
* ``prediction`` (any surrogate): a partial-dependence score (Friedman, 2001) — the mean
  prediction over a background of evaluated configs with the sub-graph's layers set to the
  variant — standardised over all variants.

Higher scores are better variants. The spread of a sub-graph's scores says how much its
choices matter; summaries by block index and by op type (sub-graph kind) give Qua²SeDiMo's
box plots.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from qua2.errors import Qua2Error

if TYPE_CHECKING:
    from qua2.graph.opgraph import OpGraph
    from qua2.graph.partition import SubGraph
    from qua2.specs import QuantOption
    from qua2.surrogates.base import Surrogate


def variants(n_layers: int, n_options: int, max_variants: int,
             rng: np.random.Generator) -> np.ndarray:
    """All ``n_options ** n_layers`` option combinations, or ``max_variants`` distinct
    random ones when there are more."""
    total = n_options ** n_layers
    if total <= max_variants:
        return np.array(list(itertools.product(range(n_options), repeat=n_layers)),
                        dtype=np.int64).reshape(total, n_layers)
    codes = rng.choice(total, size=max_variants, replace=False)
    digits = (codes[:, None] // n_options ** np.arange(n_layers)[::-1]) % n_options
    return digits.astype(np.int64)


def quantifiable_sensitivity(model: Surrogate, graph: OpGraph,
                             background: np.ndarray | None = None, *, method: str = "auto",
                             hop_weights: Sequence[float] | None = None,
                             max_variants: int = 1296, seed: int = 0) -> pd.DataFrame:
    """One row per (sub-graph, variant): subgraph, kind, block, block_index, variant (option
    keys joined by ``|``), mean_bits, raw, score. See module docs for ``method``."""
    if method == "auto":
        method = "embedding" if hasattr(model, "subgraph_hop_norms") else "prediction"
    if method == "prediction" and (background is None or len(background) == 0):
        raise Qua2Error("prediction-based sub-graph scores need a background of evaluated "
                        "configurations.")
    if method == "embedding" and not hasattr(model, "subgraph_hop_norms"):
        raise Qua2Error(f"embedding scores need the GNN surrogate, not {model.kind!r}.")
    encoder = model.checked_encoder()
    column = {name: i for i, name in enumerate(encoder.layers)}
    rng = np.random.default_rng(seed)
    block_index = graph.nodes["block_index"].to_numpy()
    frames, raws = [], []
    for part in graph.partition():
        layers = [name for name in part.layers if name in column]
        if not layers:
            continue
        combos = variants(len(layers), len(encoder.options), max_variants, rng)
        cols = [column[name] for name in layers]
        if method == "embedding":
            full = np.full((len(combos), encoder.n_layers), -1, dtype=np.int64)
            full[:, cols] = combos
            raws.append(model.subgraph_hop_norms(np.asarray(part.nodes), full))
        else:
            if background is None:  # checked above for "prediction"; an unknown method
                raise Qua2Error(f"unknown sub-graph score method {method!r}; use auto, "
                                "embedding or prediction (with a background).")
            raws.append(_partial_dependence(model, background, cols, combos)[:, None])
        frames.append(_variant_rows(part, combos, encoder.options,
                                    int(block_index[part.nodes[0]])))
    if not frames:
        return pd.DataFrame(columns=["subgraph", "kind", "block", "block_index", "variant",
                                     "mean_bits", "raw", "score"])
    raw = np.concatenate(raws)
    frame = pd.concat(frames, ignore_index=True)
    frame["raw"] = raw.sum(axis=1) if raw.shape[1] == 1 else raw[:, -1]
    frame["score"] = _combine(raw, hop_weights)
    return frame


def _partial_dependence(model: Surrogate, background: np.ndarray, cols: list[int],
                        combos: np.ndarray) -> np.ndarray:
    """Mean prediction over ``background`` with columns ``cols`` set to each combination."""
    out = np.empty(len(combos))
    chunk = max(1, 200_000 // max(1, len(background)))
    for start in range(0, len(combos), chunk):
        block = combos[start:start + chunk]
        batch = np.repeat(background[None, :, :], len(block), axis=0)
        batch[:, :, cols] = block[:, None, :]
        pred = model.predict(batch.reshape(-1, background.shape[1]))
        out[start:start + len(block)] = pred.reshape(len(block), -1).mean(axis=1)
    return out


def _combine(raw: np.ndarray, hop_weights: Sequence[float] | None) -> np.ndarray:
    """Standardise every column over all variants; weight (hops) and sum."""
    std = raw.std(axis=0)
    z = (raw - raw.mean(axis=0)) / np.where(std > 0, std, 1.0)
    if raw.shape[1] == 1:
        return z[:, 0]
    weights = np.ones(raw.shape[1]) if hop_weights is None else \
        np.nan_to_num(np.asarray(hop_weights, dtype=float)[: raw.shape[1]])
    return z @ weights


def _variant_rows(part: SubGraph, combos: np.ndarray, options: Sequence[QuantOption],
                  block_index: int) -> pd.DataFrame:
    keys = np.array([o.key for o in options], dtype=object)
    bits = np.array([o.bits for o in options], dtype=float)
    return pd.DataFrame({"subgraph": part.name, "kind": part.kind,
                         "block": part.block or part.kind, "block_index": block_index,
                         "variant": ["|".join(keys[row]) for row in combos],
                         "mean_bits": bits[combos].mean(axis=1)})


def summarise(scores: pd.DataFrame, by: str) -> pd.DataFrame:
    """Score distribution per ``by`` (``block_index`` or ``kind``): count, mean, std,
    quartiles, and the spread (max − min) that says how much the choices matter."""
    grouped = scores.groupby(by)["score"]
    out = grouped.describe()
    out["spread"] = grouped.max() - grouped.min()
    return out.reset_index()


def best_variants(scores: pd.DataFrame) -> pd.DataFrame:
    """The top-scoring variant of every sub-graph (Qua²SeDiMo builds configs from these)."""
    best = scores.loc[scores.groupby("subgraph", sort=False)["score"].idxmax()]
    return best.reset_index(drop=True)
