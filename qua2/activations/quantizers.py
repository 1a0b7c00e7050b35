"""Activation fake-quantizers as pure tensor functions (no modules, no state).

Both quantizers are *asymmetric uniform* ("affine") with an integer zero point, the scheme
Qua²SeDiMo (arXiv 2412.14628) uses for its A6/A8 activations and PTQ4DM (Shang et al., CVPR
2023) calibrates:

    scale = (hi - lo) / (2^b - 1),   zp = round(-lo / scale)
    q     = clamp(round(x / scale) + zp, 0, 2^b - 1),   x̂ = (q - zp) · scale

* :func:`fake_quant_per_token` — *dynamic* ("online"): ``lo``/``hi`` are the min and max of
  every token, i.e. reduced over the channel axis (the last axis of ``[B, N, C]`` Linear
  inputs; axis 1 of ``[B, C, H, W]`` Conv inputs, one range per spatial position).
* :func:`fake_quant_static` — *static*: one calibrated ``(lo, hi)`` per tensor.

The zero point is an integer (as a real int8/uint8 kernel needs), so ``lo``/``hi`` themselves
are reproduced only up to half a step; zero is always exact. A degenerate range (``hi == lo``)
leaves the values unchanged: a constant row is representable exactly by its own offset.
Arithmetic runs in float32 even for half-precision inputs so that rounding is not itself
perturbed by fp16 resolution; the result has the input's dtype.
"""

from __future__ import annotations

import torch

MIN_ACT_BITS, MAX_ACT_BITS = 4, 8


def levels(bits: int) -> int:
    """Number of integer levels of a ``bits``-bit unsigned code (``2**bits``)."""
    return 1 << int(bits)


def qparams(lo: torch.Tensor, hi: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and integer zero point of the asymmetric ``bits``-bit grid covering ``[lo, hi]``.

    ``lo``/``hi`` broadcast; where ``hi <= lo`` the scale is 0 (callers pass such values
    through unchanged).
    """
    lo, hi = lo.float(), hi.float()
    scale = (hi - lo).clamp_min(0) / (levels(bits) - 1)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    zero_point = torch.round(-lo / safe)
    return scale, zero_point


def fake_quant(x: torch.Tensor, lo: float | torch.Tensor, hi: float | torch.Tensor,
               bits: int) -> torch.Tensor:
    """Quantize-dequantize ``x`` on the asymmetric grid of ``[lo, hi]`` (broadcast to ``x``)."""
    scale, zero_point = qparams(torch.as_tensor(lo, device=x.device),
                                torch.as_tensor(hi, device=x.device), bits)
    xf = x.float()
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.clamp(torch.round(xf / safe) + zero_point, 0, levels(bits) - 1)
    out = (q - zero_point) * safe
    # A zero-width range carries no grid: leave those values (a constant row) untouched.
    out = torch.where(scale > 0, out, xf)
    return out.to(x.dtype)


def fake_quant_per_token(x: torch.Tensor, bits: int, dim: int = -1) -> torch.Tensor:
    """Dynamic per-token min-max fake quantization: one ``(min, max)`` per slice along ``dim``.

    ``dim`` is the *channel* axis reduced over: ``-1`` for ``[..., tokens, C]`` Linear inputs
    (every token gets its own range), ``1`` for ``[B, C, H, W]`` Conv inputs (every spatial
    position gets its own range). Qua²SeDiMo's online A6/A8 quantizer.
    """
    if x.numel() == 0:
        return x
    lo = x.detach().amin(dim=dim, keepdim=True)
    hi = x.detach().amax(dim=dim, keepdim=True)
    return fake_quant(x, lo, hi, bits)


def fake_quant_static(x: torch.Tensor, lo: float | torch.Tensor, hi: float | torch.Tensor,
                      bits: int) -> torch.Tensor:
    """Static per-tensor fake quantization with a calibrated range ``[lo, hi]`` (PTQ4DM)."""
    return fake_quant(x, lo, hi, bits)
