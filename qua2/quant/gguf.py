"""GGUF block types as pure tensor quantizers: weight → the exact GGUF on-disk bytes, and back.

Public API::

    GGUF_TYPES                                   # ("q8_0", "q5_0", …, "q6_k")
    quantize_gguf(weight, type_name) -> Tensor   # uint8 (rows, row_bytes), the file's block bytes
    dequantize_gguf(raw, type_name, shape) -> Tensor   # float32, own decoder
    gguf_block_size(type_name) -> int            # 32 or 256 weights per block
    gguf_bits_per_weight(type_name) -> float     # 8 · type_size / block_size (Q4_K: 4.5)

A weight is quantized as a matrix whose rows are its output channels (``weight.shape[0]``) and
whose row length is everything else flattened (``in_features``, or ``in·kh·kw`` for a conv);
blocks run along the row, so the row length must be a multiple of the type's block size. The
bytes are row-major, one ``block_*`` struct after another, exactly as a GGUF file stores a
tensor of that 2-D shape (and what ``gguf.quants.quantize`` returns: shape ``(rows, row_bytes)``).

Algorithms: ggml's reference quantizers in ``ggml/src/ggml-quants.c`` (llama.cpp), i.e. what
``llama-quantize`` produces without an importance matrix — ``quantize_row_q8_0_ref``,
``quantize_row_q{4,5}_{0,1}_ref`` here, the K-quants in :mod:`qua2.quant.gguf_kquants`, and for
IQ4_NL ``quantize_iq4_nl`` (the function ``ggml_quantize_chunk`` calls; its per-block scale search
over 15 grid offsets, ``ntry = 7``, x²-weighted). Block layouts: ``ggml/src/ggml-common.h``.
Everything runs on the weight's device (CPU or CUDA), vectorised over every block of the matrix;
see :mod:`qua2.quant.gguf_kquants` for how float32 operation order is kept equal to the C code.

Importable without the ``gguf`` package: block sizes are part of the formats implemented here;
:func:`gguf_bits_per_weight` reads ``gguf.GGML_QUANT_SIZES`` when ``gguf`` is installed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from qua2.errors import Qua2Error
from qua2.quant import gguf_kquants as kq
from qua2.quant.gguf_kquants import (
    GROUP_MAX_EPS,
    f16_bytes,
    f16_from,
    first_absmax,
    int8_wrap,
    nibble_pack,
    nibble_unpack,
    rdiv,
    seq_sum,
)

#: Supported GGUF tensor types (lower-case ggml names).
GGUF_TYPES: tuple[str, ...] = (
    "q8_0", "q5_0", "q5_1", "q4_0", "q4_1", "iq4_nl", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k",
)

#: (weights per block, bytes per block) of each layout written here; equal to
#: ``gguf.GGML_QUANT_SIZES`` (checked in the tests).
_LAYOUT: dict[str, tuple[int, int]] = {
    "q8_0": (32, 34), "q5_0": (32, 22), "q5_1": (32, 24), "q4_0": (32, 18), "q4_1": (32, 20),
    "iq4_nl": (32, 18),
    "q2_k": (256, 84), "q3_k": (256, 110), "q4_k": (256, 144), "q5_k": (256, 176),
    "q6_k": (256, 210),
}

#: The 16 IQ4_NL levels (ggml's ``kvalues_iq4nl``).
IQ4_NL_VALUES = (-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113)

#: Weights quantized per vectorised pass (whole rows); bounds the temporaries' memory.
_CHUNK = 1 << 23


def _type(type_name: str) -> str:
    name = str(type_name).lower()
    if name not in _LAYOUT:
        raise Qua2Error(f"unknown GGUF type {type_name!r}; supported: {', '.join(GGUF_TYPES)}.")
    return name


def gguf_block_size(type_name: str) -> int:
    """Weights per block of ``type_name`` (32, or 256 for the K-quants)."""
    return _LAYOUT[_type(type_name)][0]


def gguf_bits_per_weight(type_name: str) -> float:
    """Storage bits per weight, scales included: ``8 · type_size / block_size``.

    From ``gguf.GGML_QUANT_SIZES`` when ``gguf`` is installed (else the same built-in table):
    Q8_0 8.5, Q5_0 5.5, Q5_1 6, Q4_0 4.5, Q4_1 5, IQ4_NL 4.5, Q2_K 2.625, Q3_K 3.4375,
    Q4_K 4.5, Q5_K 5.5, Q6_K 6.5625.
    """
    name = _type(type_name)
    try:
        import gguf

        block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[name.upper()]]
    except ImportError:
        block, size = _LAYOUT[name]
    return 8.0 * size / block


# ------------------------------------------------------------------------ 32-weight blocks


def _high_bits(q: Tensor) -> Tensor:
    """Bit 4 of each of 32 codes as the little-endian uint32 ``qh`` (4 bytes)."""
    shifts = torch.arange(8, device=q.device, dtype=torch.int32)
    bits = ((q.to(torch.int32) >> 4) & 1).reshape(-1, 4, 8)
    return (bits << shifts).sum(-1).to(torch.uint8)


def _unhigh_bits(qh: Tensor) -> Tensor:
    shifts = torch.arange(8, device=qh.device, dtype=torch.int32)
    return ((qh.to(torch.int32)[:, :, None] >> shifts) & 1).reshape(qh.shape[0], 32)


def _symmetric_d(x: Tensor, levels: int) -> tuple[Tensor, Tensor]:
    """``d = max / -levels`` from the signed value of largest magnitude, and ``id = 1/d`` (0
    when d is 0), as ``quantize_row_q4_0_ref``/``q5_0``."""
    _, mx = first_absmax(x, 1)
    d = mx / -levels
    return d, torch.where(d != 0, rdiv(1, d), torch.zeros_like(d))


def _affine_d(x: Tensor, levels: int) -> tuple[Tensor, Tensor, Tensor]:
    """``d = (max - min) / levels``, ``id`` and ``min``, as ``quantize_row_q4_1_ref``/``q5_1``."""
    mn, mx = x.amin(1), x.amax(1)
    d = (mx - mn) / levels
    return d, torch.where(d != 0, rdiv(1, d), torch.zeros_like(d)), mn


def _c_int(v: Tensor) -> Tensor:
    """A C float → integer conversion as x86-64 compiles it (``cvttss2si``): truncation toward
    zero, and INT_MIN (low byte 0) for NaN, ±inf or out-of-range values (these only occur for
    blocks of subnormal weights, whose ``1/d`` overflows). Returns int32."""
    ok = v.abs() < 2147483648.0
    return torch.where(ok, v, torch.full_like(v, -2147483648.0)).to(torch.int32)


def _encode_q4_0(x: Tensor) -> Tensor:
    d, inv = _symmetric_d(x, 8)
    q = int8_wrap(_c_int(x * inv[:, None] + 8.5)).clamp_(max=15) & 255
    return torch.cat([f16_bytes(d), nibble_pack(q, 16)], 1)


def _encode_q4_1(x: Tensor) -> Tensor:
    d, inv, mn = _affine_d(x, 15)
    q = int8_wrap(_c_int((x - mn[:, None]) * inv[:, None] + 0.5)).clamp_(max=15) & 255
    return torch.cat([f16_bytes(d), f16_bytes(mn), nibble_pack(q, 16)], 1)


def _encode_q5_0(x: Tensor) -> Tensor:
    d, inv = _symmetric_d(x, 16)
    q = int8_wrap(_c_int(x * inv[:, None] + 16.5)).clamp_(max=31) & 255
    return torch.cat([f16_bytes(d), _high_bits(q), nibble_pack(q & 15, 16)], 1)


def _encode_q5_1(x: Tensor) -> Tensor:
    d, inv, mn = _affine_d(x, 31)
    q = _c_int((x - mn[:, None]) * inv[:, None] + 0.5) & 255  # (uint8_t), no MIN in ggml
    return torch.cat([f16_bytes(d), f16_bytes(mn), _high_bits(q), nibble_pack(q & 15, 16)], 1)


def _roundf(v: Tensor) -> Tensor:
    """C ``roundf``: nearest, halves away from zero (exact: ``v - trunc(v)`` is exact)."""
    t = torch.trunc(v)
    return t + torch.sign(v) * ((v - t).abs() >= 0.5)


def _encode_q8_0(x: Tensor) -> Tensor:
    d = x.abs().amax(1) / 127
    inv = torch.where(d != 0, rdiv(1, d), torch.zeros_like(d))
    q = int8_wrap(_c_int(_roundf(x * inv[:, None]))).to(torch.int8)
    return torch.cat([f16_bytes(d), q.view(torch.uint8)], 1)


#: Twice the midpoints between neighbouring IQ4_NL levels (odd integers, -231 … 202).
_IQ4_MID2 = tuple(a + b for a, b in itertools.pairwise(IQ4_NL_VALUES))


def _iq4_table(device: torch.device) -> tuple[int, int, Tensor]:
    """Level index for every ``n = floor(2·x)`` in ``[lo, hi]`` (clamped outside).

    ggml's ``best_index_int8`` picks level k or k+1 by ``x - v[k] < v[k+1] - x`` in float32,
    i.e. the nearest level, the upper one on a tie. Wherever the two sides are within rounding
    of each other (x near the midpoint, |x − v| ≥ 4.5) both differences are exact in float32, so
    the test equals ``x < (v[k] + v[k+1]) / 2``: the index is the number of midpoints ≤ x. The
    midpoints are half-integers, so that count depends only on ``floor(2x)``.
    """
    lo, hi = _IQ4_MID2[0] - 1, _IQ4_MID2[-1]
    counts = [sum(m <= n for m in _IQ4_MID2) for n in range(lo, hi + 1)]
    return lo, hi, torch.tensor(counts, dtype=torch.int64, device=device)


def _encode_iq4_nl(x: Tensor, ntry: int = 7) -> Tensor:
    """``quantize_iq4_nl`` without importance (``quantize_row_iq4_nl_impl`` with block 32,
    weights x², ``ntry = 7``): start from ``d = max/127``, least-squares scale on the nearest
    levels, then try ``id = (o - 127)/max`` for o = −7…7 keeping strict improvements of
    ``(Σwqx)²/Σwq²``; the stored codes are the nearest levels under the final (float32) scale."""
    values = torch.tensor(IQ4_NL_VALUES, dtype=torch.float32, device=x.device)
    lo, hi, table = _iq4_table(x.device)
    levels = values[table]
    xt = x.t().contiguous()  # (32, N): element-major, for in-order sums
    w = xt * xt
    amax, mx = first_absmax(xt, 0)
    zero = amax < GROUP_MAX_EPS
    mx = torch.where(zero, torch.ones_like(mx), mx)  # no inf/NaN in discarded all-zero blocks
    prods = torch.empty((xt.shape[0], 2, xt.shape[1]), dtype=torch.float32, device=x.device)

    def slot(inv: Tensor) -> Tensor:
        """Flat int32 table positions of ``floor(2·inv·x)``; (2·inv)·x == 2·(inv·x) exactly."""
        t = ((2 * inv) * xt).clamp_(lo, hi).floor_().sub_(lo)
        return t.to(torch.int32).reshape(-1)

    def fit(inv: Tensor) -> tuple[Tensor, Tensor]:
        q = levels.index_select(0, slot(inv)).reshape(xt.shape)
        wq = w * q
        torch.mul(wq, xt, out=prods[:, 0])
        torch.mul(wq, q, out=prods[:, 1])
        sums = seq_sum(prods)
        return sums[0], sums[1]

    sumqx, sumq2 = fit(rdiv(1, -mx / IQ4_NL_VALUES[0]))
    d = torch.where(sumq2 > 0, sumqx / sumq2, torch.zeros_like(sumq2))
    best = d * sumqx
    for offset in range(-ntry, ntry + 1):
        sumqx, sumq2 = fit(rdiv(offset + IQ4_NL_VALUES[0], mx))
        take = (sumq2 > 0) & (sumqx * sumqx > best * sumq2)
        d = torch.where(take, sumqx / sumq2, d)
        best = torch.where(take, d * sumqx, best)
    d = torch.where(zero, torch.zeros_like(d), d)
    inv = torch.where(d != 0, rdiv(1, d), torch.zeros_like(d))
    codes = table.index_select(0, slot(inv)).reshape(xt.shape).t()
    return torch.cat([f16_bytes(d), nibble_pack(codes, 16)], 1)


def _decode_q8_0(raw: Tensor) -> Tensor:
    d = f16_from(raw[:, :2])
    return d[:, None] * raw[:, 2:].contiguous().view(torch.int8).to(torch.float32)


def _decode_q4_0(raw: Tensor) -> Tensor:
    return f16_from(raw[:, :2])[:, None] * (nibble_unpack(raw[:, 2:], 16) - 8).to(torch.float32)


def _decode_q4_1(raw: Tensor) -> Tensor:
    d, m = f16_from(raw[:, :2]), f16_from(raw[:, 2:4])
    return d[:, None] * nibble_unpack(raw[:, 4:], 16).to(torch.float32) + m[:, None]


def _decode_q5_0(raw: Tensor) -> Tensor:
    q = nibble_unpack(raw[:, 6:], 16) | (_unhigh_bits(raw[:, 2:6]) << 4)
    return f16_from(raw[:, :2])[:, None] * (q - 16).to(torch.float32)


def _decode_q5_1(raw: Tensor) -> Tensor:
    d, m = f16_from(raw[:, :2]), f16_from(raw[:, 2:4])
    q = nibble_unpack(raw[:, 8:], 16) | (_unhigh_bits(raw[:, 4:8]) << 4)
    return d[:, None] * q.to(torch.float32) + m[:, None]


def _decode_iq4_nl(raw: Tensor) -> Tensor:
    values = torch.tensor(IQ4_NL_VALUES, dtype=torch.float32, device=raw.device)
    return f16_from(raw[:, :2])[:, None] * values[nibble_unpack(raw[:, 2:], 16).long()]


_ENCODERS = {"q8_0": _encode_q8_0, "q5_0": _encode_q5_0, "q5_1": _encode_q5_1,
             "q4_0": _encode_q4_0, "q4_1": _encode_q4_1, "iq4_nl": _encode_iq4_nl,
             **kq.ENCODERS}
_DECODERS = {"q8_0": _decode_q8_0, "q5_0": _decode_q5_0, "q5_1": _decode_q5_1,
             "q4_0": _decode_q4_0, "q4_1": _decode_q4_1, "iq4_nl": _decode_iq4_nl,
             **kq.DECODERS}


# -------------------------------------------------------------------------------- public API


def _check_rows(type_name: str, shape: Sequence[int]) -> tuple[str, int, int, int, int]:
    """(type, block, type size, rows, row length) of a weight of ``shape`` stored as
    ``type_name``: rows are ``shape[0]`` (a 1-D weight is one row), the row length the rest."""
    name = _type(type_name)
    block, size = _LAYOUT[name]
    shape = tuple(int(s) for s in shape)
    rows, k = (1, math.prod(shape)) if len(shape) < 2 else (shape[0], math.prod(shape[1:]))
    if k == 0 or k % block:
        raise Qua2Error(
            f"GGUF type {name} stores rows in blocks of {block} weights, but this weight "
            f"(shape {shape}) has rows of length {k}, not a multiple of {block}; "
            f"pick a type whose block size divides {k} or keep the layer unquantized.")
    return name, block, size, rows, k


def quantize_gguf(weight: Tensor, type_name: str) -> Tensor:
    """Quantize ``weight`` to GGUF type ``type_name``; returns the file's block bytes.

    Rows are ``weight.shape[0]`` (a 1-D weight is one row), row length the product of the other
    dimensions, which must be a multiple of :func:`gguf_block_size` (:class:`Qua2Error` names
    the type, the row length and the multiple otherwise). The weight is read as float32. Result:
    uint8 tensor ``(rows, row_length / block_size · type_size)`` on the weight's device; its
    flattened bytes are the GGUF tensor data for a ``(rows, row_length)`` tensor.
    """
    name, block, size, rows, k = _check_rows(type_name, weight.shape)
    w = weight.detach().reshape(rows, k).to(torch.float32)
    if not bool(torch.isfinite(w).all()):
        raise Qua2Error(f"cannot quantize a weight with NaN or infinite values to GGUF {name}.")
    row_bytes = k // block * size
    out = torch.empty((rows, row_bytes), dtype=torch.uint8, device=w.device)
    step = max(1, _CHUNK // k)
    encode = _ENCODERS[name]
    for r0 in range(0, rows, step):
        part = w[r0:r0 + step]
        out[r0:r0 + step] = encode(part.reshape(-1, block)).reshape(part.shape[0], row_bytes)
    return out


def dequantize_gguf(raw: Tensor, type_name: str, shape: Sequence[int]) -> Tensor:
    """Decode GGUF block bytes ``raw`` (any uint8 tensor holding them in order) of type
    ``type_name`` into a float32 tensor of ``shape`` (the weight's shape, as given to
    :func:`quantize_gguf`), on ``raw``'s device. Computes ``d·q (+ m)`` in float32 in ggml's order.
    """
    name, block, size, rows, k = _check_rows(type_name, shape)
    if raw.dtype != torch.uint8:
        raise Qua2Error(f"GGUF {name} data must be a uint8 tensor, got {raw.dtype}.")
    n_blocks = rows * k // block
    if raw.numel() != n_blocks * size:
        raise Qua2Error(
            f"GGUF {name} data for shape {tuple(shape)} must have {n_blocks * size} bytes "
            f"({n_blocks} blocks of {size}), got {raw.numel()}.")
    blocks = raw.reshape(n_blocks, size)
    out = torch.empty((n_blocks, block), dtype=torch.float32, device=raw.device)
    step = max(1, _CHUNK // block)
    decode = _DECODERS[name]
    for b0 in range(0, n_blocks, step):
        out[b0:b0 + step] = decode(blocks[b0:b0 + step])
    return out.reshape(tuple(int(s) for s in shape))
