"""Range search for static activation quantizers: pick the clipping range minimising an error.

PTQ4DM (Shang et al., CVPR 2023, §4.2) chooses each activation range by minimising the L_p
distance (p = 2.4) between a tensor and its quantized version, and reports that this beats
cosine distance, KL divergence and L1; all of them are offered here for that comparison.

The candidates shrink the observed range towards zero: ``(α·min, α·max)`` for
``α = 1, 1 - step, 1 - 2·step, …`` (``n_candidates`` values). One α for both ends keeps the
search one-dimensional; the asymmetric grid then still places its zero point from the
clipped range. The observed ``(min, max)`` should be the exact extremes of *all* calibration
activations, while ``values`` may be a uniform subsample of them (see ``RangeObserver``).
"""

from __future__ import annotations

import math

import torch

from qua2.activations.quantizers import fake_quant
from qua2.errors import Qua2Error

OBJECTIVES: tuple[str, ...] = ("lp", "mse", "l1", "cosine", "kl")
DEFAULT_P = 2.4
KL_BINS = 2048
_CHUNK = 16  # candidates evaluated at once (bounds memory at 16 × len(values) floats)


def candidate_ranges(lo: float, hi: float, n_candidates: int = 80,
                     step: float = 0.01) -> torch.Tensor:
    """The ``[n, 2]`` candidate ``(lo, hi)`` pairs, the full observed range first."""
    if n_candidates < 1 or step <= 0 or step * (n_candidates - 1) >= 1:
        raise Qua2Error(
            f"range search needs n_candidates ≥ 1, step > 0 and step·(n_candidates - 1) < 1, got "
            f"n_candidates={n_candidates}, step={step}."
        )
    alphas = 1.0 - step * torch.arange(n_candidates, dtype=torch.float64)
    return torch.stack([alphas * lo, alphas * hi], dim=1).float()


def _pointwise_errors(values: torch.Tensor, cands: torch.Tensor, bits: int,
                      objective: str, p: float) -> torch.Tensor:
    errors = []
    for start in range(0, len(cands), _CHUNK):
        chunk = cands[start:start + _CHUNK]
        xq = fake_quant(values[None, :], chunk[:, :1], chunk[:, 1:], bits)
        diff = xq - values[None, :]
        if objective == "cosine":
            cos = torch.nn.functional.cosine_similarity(xq, values[None, :].expand_as(xq), dim=1)
            errors.append(1.0 - cos)
        else:
            power = {"lp": p, "mse": 2.0, "l1": 1.0}[objective]
            errors.append(diff.abs().pow(power).mean(dim=1))
    return torch.cat(errors)


def _kl_errors(values: torch.Tensor, cands: torch.Tensor, bits: int) -> torch.Tensor:
    """TensorRT-style entropy calibration, generalised to asymmetric ranges.

    A fine histogram ``P`` of the values over the observed range is clipped to the candidate
    (mass outside folded into the edge bins); ``Q`` merges the clipped bins into ``2^b``
    quantization bins and spreads each one's mass back evenly over its non-empty fine bins.
    The error is KL(P ‖ Q).
    """
    lo, hi = float(cands[0, 0]), float(cands[0, 1])
    if hi <= lo:
        return torch.zeros(len(cands))
    hist = torch.histc(values.float(), bins=KL_BINS, min=lo, max=hi).double()
    width = (hi - lo) / KL_BINS
    errors = []
    for c_lo, c_hi in cands.tolist():
        i0 = max(0, min(KL_BINS - 1, math.floor((c_lo - lo) / width)))
        i1 = max(i0, min(KL_BINS - 1, math.ceil((c_hi - lo) / width) - 1))
        errors.append(_kl_one(hist, i0, i1, 1 << bits))
    return torch.tensor(errors)


def _kl_one(hist: torch.Tensor, i0: int, i1: int, n_levels: int) -> float:
    inside = hist[i0:i1 + 1].clone()
    p = inside.clone()
    p[0] += hist[:i0].sum()
    p[-1] += hist[i1 + 1:].sum()
    n = len(inside)
    which = (torch.arange(n) * min(n_levels, n)) // n  # fine bin → quantization bin
    mass = torch.zeros(min(n_levels, n), dtype=hist.dtype).index_add_(0, which, inside)
    nonzero = (inside > 0).double()
    count = torch.zeros_like(mass).index_add_(0, which, nonzero)
    q = torch.where(nonzero > 0, mass[which] / count[which].clamp_min(1), torch.zeros_like(p))
    p = p / p.sum().clamp_min(1e-12)
    q = (q + 1e-12) / (q + 1e-12).sum()  # smoothed so edge bins with folded mass stay finite
    support = p > 0
    return float((p[support] * (p[support] / q[support]).log()).sum())


def range_errors(values: torch.Tensor, cands: torch.Tensor, bits: int, objective: str = "lp",
                 p: float = DEFAULT_P) -> torch.Tensor:
    """The error of every candidate range on ``values`` (lower is better), shape ``[n]``."""
    check_objective(objective)
    values = values.detach().float().flatten().cpu()
    if objective == "kl":
        return _kl_errors(values, cands, bits)
    return _pointwise_errors(values, cands, bits, objective, p)


def search_range(values: torch.Tensor, bits: int, objective: str = "lp", p: float = DEFAULT_P,
                 lo: float | None = None, hi: float | None = None, n_candidates: int = 80,
                 step: float = 0.01) -> tuple[float, float]:
    """The clipping range ``(lo, hi)`` with the lowest ``objective`` error on ``values``.

    ``lo``/``hi`` default to ``values``' own min/max; pass the exact extremes when ``values``
    is a subsample. Ties go to the widest range (no clipping unless it helps).
    """
    check_objective(objective)
    values = values.detach().float().flatten().cpu()
    if values.numel() == 0:
        raise Qua2Error("cannot search an activation range on an empty calibration set; "
                        "collect at least one sample first.")
    lo = float(values.min()) if lo is None else float(lo)
    hi = float(values.max()) if hi is None else float(hi)
    if hi <= lo:
        return lo, hi
    cands = candidate_ranges(lo, hi, n_candidates, step)
    errors = range_errors(values, cands, bits, objective, p)
    best = int(torch.argmin(errors))  # argmin returns the first minimum: the widest range
    return float(cands[best, 0]), float(cands[best, 1])


def check_objective(objective: str) -> None:
    """Raise the one-sentence error for an unknown range-search objective."""
    if objective not in OBJECTIVES:
        raise Qua2Error(
            f"unknown range-search objective {objective!r}; choose one of {', '.join(OBJECTIVES)}."
        )
