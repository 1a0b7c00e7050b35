"""Pure tensor helpers shared by the quantization methods.

Everything here works on 2-D ``[rows, cols]`` float32 tensors on any device. A weight of a
Linear ``[out, in]`` or a Conv ``[out, in, *kernel]`` becomes ``[out, in·∏kernel]`` (output
channel first), so "per output channel" means "per row".

Scales, zero points and codebooks are *stored* in fp16. To make the stored artefact and the
fake-quantized weight identical, every method rounds its parameters to fp16 first and only
then computes the integer codes against those rounded parameters.
"""

from __future__ import annotations

import torch
from torch import Tensor

from qua2.errors import Qua2Error

#: Smallest positive fp16 value (subnormal); scales are clamped to it so 1/scale is finite.
FP16_TINY = 2.0**-24


def as_rows(weight: Tensor) -> Tensor:
    """``weight`` as float32 ``[out, rest]`` (a copy only where the dtype differs)."""
    if weight.dim() < 2:
        raise Qua2Error(
            f"can only quantize weights with an output-channel axis (≥ 2 dims), got shape "
            f"{tuple(weight.shape)}."
        )
    if not weight.is_floating_point():
        raise Qua2Error(f"can only quantize floating-point weights, got dtype {weight.dtype}.")
    return weight.detach().reshape(weight.shape[0], -1).float()


def fp16_round(x: Tensor) -> Tensor:
    """Round to the nearest fp16 value and return float32 (what storing as fp16 does)."""
    return x.to(torch.float16).float()


def fp16_scale(span: Tensor, levels: int) -> Tensor:
    """Step size ``span / levels`` rounded to fp16, never zero (all-zero rows stay finite)."""
    return fp16_round((span / levels).clamp_min(FP16_TINY)).clamp_min(FP16_TINY)


def affine_params(lo: Tensor, hi: Tensor, bits: int) -> tuple[Tensor, Tensor]:
    """Scale and integer zero point of asymmetric uniform quantization of ``[lo, hi]``.

    The range is widened to contain 0 so that 0 is exactly representable and the zero point
    is an integer in ``[0, 2^b − 1]`` (the UniformAffineQuantizer convention of BRECQ and
    Q-Diffusion, whose code Qua²SeDiMo builds on). Both come back as fp16-exact float32.
    """
    levels = 2**bits - 1
    lo, hi = lo.clamp(max=0.0), hi.clamp(min=0.0)
    scale = fp16_scale(hi - lo, levels)
    zero = torch.round(-lo / scale).clamp_(0, levels)
    return scale, zero


def affine_codes(x: Tensor, scale: Tensor, zero: Tensor, bits: int) -> Tensor:
    """``clamp(round(x / scale) + zero, 0, 2^b − 1)``; ``scale``/``zero`` broadcast against x."""
    q = torch.round(x / scale).add_(zero).clamp_(0, 2**bits - 1)
    return q


def affine_dequant(codes: Tensor, scale: Tensor, zero: Tensor) -> Tensor:
    """``(codes − zero) · scale`` in float32."""
    return (codes.float() - zero.float()).mul_(scale.float())


def squared_error(x: Tensor, y: Tensor) -> tuple[float, float]:
    """``(mse, relative)``: mean squared error and ``‖x − y‖² / ‖x‖²`` (1.0 for a zero x).

    Differences are taken in float32 and summed in float64 (no float64 copies of x and y).
    """
    diff = x.float() - y.float()
    sse = float(torch.sum(diff.square_(), dtype=torch.float64))
    xf = x.float()
    energy = float(torch.sum(xf * xf, dtype=torch.float64))
    mse = sse / max(x.numel(), 1)
    relative = sse / energy if energy > 0 else (0.0 if sse == 0 else 1.0)
    return mse, relative


def pad_columns(x: Tensor, multiple: int) -> Tensor:
    """Pad ``[rows, cols]`` on the right to a multiple of ``multiple`` columns.

    Padding repeats each row's last value, so the padded tail never changes the min/max of the
    last (short) group it belongs to.
    """
    cols = x.shape[1]
    extra = (-cols) % multiple
    if extra == 0:
        return x
    return torch.cat([x, x[:, -1:].expand(-1, extra)], dim=1)
