"""The graph network behind :class:`~qua2.surrogates.gnn.GNNSurrogate`, and its losses.

Architecture after the Qua²SeDiMo predictor (Mills et al., AAAI 2025): node features →
BatchNorm → linear embedding (hop 0), then ``layers`` message-passing layers, each
``conv → BatchNorm → ReLU`` with a residual connection, where ``conv`` is GATv2 (Brody et al.,
ICLR 2022; attention that depends on both endpoints, edge-type aware) or GIN (Xu et al., ICLR
2019). Node embeddings are mean-pooled after every hop ``m``; the concatenated hop embeddings
feed an MLP head that predicts the target. The pooled hop embeddings are also what
Qua²SeDiMo's hop-level ranking loss and its quantifiable-sensitivity scores use (their norms).

Ranking losses are differentiable surrogates of rank correlation:

* ``spearman``: 1 − Pearson correlation between *soft ranks* of the scores, where
  ``soft_rank_i = Σ_j σ((s_i − s_j)/τ)`` (a pairwise-sigmoid relaxation, simpler than the
  projection-based soft ranks of Blondel et al., ICML 2020, and exact as τ → 0), and the ranks
  of the target;
* ``pairwise``: RankNet's logistic loss over all ordered pairs (Burges et al., ICML 2005).
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import GATv2Conv, GINConv, global_mean_pool

RANK_LOSSES = ("spearman", "pairwise", "none")
CONVS = ("gatv2", "gin")


class HopGNN(nn.Module):
    """Message-passing encoder with per-hop mean pooling and an MLP head."""

    def __init__(self, in_dim: int, hidden: int = 64, layers: int = 4, conv: str = "gatv2",
                 heads: int = 4, edge_types: int = 2) -> None:
        super().__init__()
        self.edge_types = edge_types
        self.norm_in = nn.BatchNorm1d(in_dim)
        self.embed = nn.Linear(in_dim, hidden)
        self.convs = nn.ModuleList(_conv(conv, hidden, heads, edge_types) for _ in range(layers))
        self.norms = nn.ModuleList(nn.BatchNorm1d(hidden) for _ in range(layers))
        self.head = nn.Sequential(nn.Linear(hidden * (layers + 1), hidden), nn.ReLU(),
                                  nn.Linear(hidden, 1))
        self.is_gat = conv == "gatv2"

    def hops(self, x: torch.Tensor, edge_index: torch.Tensor, edge_type: torch.Tensor,
             batch: torch.Tensor, num_graphs: int) -> list[torch.Tensor]:
        """Mean-pooled graph embeddings after every hop: ``layers + 1`` tensors ``[B, H]``."""
        h = self.embed(self.norm_in(x))
        pooled = [global_mean_pool(h, batch, num_graphs)]
        edge_attr = nn.functional.one_hot(edge_type, self.edge_types).to(h.dtype)
        for conv, norm in zip(self.convs, self.norms):
            update = conv(h, edge_index, edge_attr) if self.is_gat else conv(h, edge_index)
            h = h + torch.relu(norm(update))  # residual: deep stacks keep the hop-0 signal
            pooled.append(global_mean_pool(h, batch, num_graphs))
        return pooled

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_type: torch.Tensor,
                batch: torch.Tensor, num_graphs: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        pooled = self.hops(x, edge_index, edge_type, batch, num_graphs)
        return self.head(torch.cat(pooled, dim=1)).squeeze(1), pooled


def _conv(kind: str, hidden: int, heads: int, edge_types: int) -> nn.Module:
    if kind == "gatv2":
        return GATv2Conv(hidden, hidden, heads=heads, concat=False, edge_dim=edge_types)
    if kind == "gin":
        mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        return GINConv(mlp, train_eps=True)
    raise ValueError(f"unknown convolution {kind!r}; choose one of {CONVS}")


# --------------------------------------------------------------------------- losses
def _ranks(y: torch.Tensor) -> torch.Tensor:
    return torch.argsort(torch.argsort(y)).to(y.dtype)


def soft_ranks(scores: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """Differentiable ranks: ``Σ_j σ((s_i − s_j)/τ)`` (0-based up to the ½ self-term)."""
    diff = (scores[:, None] - scores[None, :]) / tau
    return torch.sigmoid(diff).sum(dim=1) - 0.5


def _pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a - a.mean(), b - b.mean()
    return (a * b).sum() / (a.norm() * b.norm() + 1e-8)


def spearman_loss(scores: torch.Tensor, y: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """1 − soft Spearman ρ between ``scores`` and ``y`` (scores standardised first, so τ is
    relative to their spread)."""
    z = (scores - scores.mean()) / (scores.std() + 1e-8)
    return 1.0 - _pearson(soft_ranks(z, tau), _ranks(y))


def pairwise_loss(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """RankNet: mean ``log(1 + exp(−(s_i − s_j)))`` over pairs with ``y_i > y_j``."""
    better = (y[:, None] > y[None, :]).to(scores.dtype)
    margin = scores[:, None] - scores[None, :]
    losses = nn.functional.softplus(-margin) * better
    return losses.sum() / better.sum().clamp(min=1.0)


def rank_loss(kind: str, scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if kind == "spearman":
        return spearman_loss(scores, y)
    if kind == "pairwise":
        return pairwise_loss(scores, y)
    return scores.new_zeros(())
