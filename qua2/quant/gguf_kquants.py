"""GGUF K-quants (Q2_K … Q6_K) as vectorised torch quantizers, plus the float helpers they share
with the 32-weight block types in :mod:`qua2.quant.gguf`.

The algorithms are those of ggml's reference quantizers in ``ggml/src/ggml-quants.c``
(llama.cpp), i.e. what ``llama-quantize`` writes when no importance matrix is given:
``quantize_row_q2_K_ref`` … ``quantize_row_q6_K_ref`` with their helpers ``make_qkx2_quants``
(Q2_K, Q4_K, Q5_K), ``make_q3_quants`` (Q3_K) and ``make_qx_quants`` (Q6_K). The byte layouts
are the ``block_q*_K`` structs of ``ggml/src/ggml-common.h``. This is an independent re-statement
in torch, not a translation of that code's structure.

How bit-exactness with the C reference is kept while vectorising:

* Everything is float32, one IEEE operation per torch op, in the C expression order
  (``w*l*x`` is ``(w*l)*x``); no fused multiply-adds (torch never fuses separate eager ops).
  Two torch shortcuts are avoided because they are not one correctly rounded operation:
  ``number / tensor`` (a reciprocal then a multiply; :func:`rdiv` divides instead) and the
  float32 CPU ``sqrt`` (:func:`sqrtf` goes through float64).
* Sums over a sub-block are accumulated element by element in index order, as the C loops do
  (:func:`seq_sum`); tensors are laid out *element-major* (``[position in sub-block, sub-block]``)
  so each step of that short loop is one contiguous op over every sub-block of the matrix.
* ggml's ``nearest_int`` (add 1.5·2²³, read the mantissa) is reproduced bit for bit
  (:func:`nearest_int`), so rounding is half-to-even and even out-of-range arguments give the
  same integer as the C code; the hot search loops use ``torch.round`` where a per-sub-block
  bound proves it equal (:func:`round_codes`).
* Searches over a fixed list of candidate scales are Python loops over the candidates, with
  per-sub-block ``torch.where`` selection that keeps the C code's "first strictly better wins".
* The fixed-point passes of ``make_q3_quants`` (5 sweeps × 16 positions, stopping early when a
  sweep changes nothing) are run in full for every sub-block: a sweep that changes nothing
  leaves the state unchanged, so further sweeps are no-ops and the result is the same.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from qua2.quant.primitives import fp16_round

QK_K = 256
#: ggml's GROUP_MAX_EPS (1e-15f): sub-blocks whose largest |x| is below it are "all zero".
GROUP_MAX_EPS = float(np.float32(1e-15))


# --------------------------------------------------------------------------- shared helpers


def nearest_int(v: Tensor) -> Tensor:
    """ggml's ``nearest_int`` on a float32 tensor, bit for bit: int32 result.

    The C helper adds 12582912 (1.5·2²³) in float32 and reads the low 23 mantissa bits; for
    ``|v| < 2²²`` that is round-half-to-even, and for any other input it is reproduced exactly.
    """
    bits = (v + 12582912.0).view(torch.int32)
    return (bits & 0x007FFFFF) - 0x00400000


def rdiv(num: float, t: Tensor) -> Tensor:
    """``num / t`` as one IEEE float32 division per element, like C's ``1.f/x`` or ``63.f/x``.

    (``python_number / tensor`` in torch is ``t.reciprocal() * num``: two roundings, which
    changes the last bit and, through the scale searches, sometimes the chosen codes.)
    """
    return torch.full_like(t, num).div_(t)


def sqrtf(v: Tensor) -> Tensor:
    """C ``sqrtf``: the correctly rounded float32 square root.

    torch's vectorised float32 ``sqrt`` on CPU is not always correctly rounded (≈0.7 % of
    values differ in the last bit on an AVX-512 build); the float64 root rounded to float32 is
    exact, since 53 ≥ 2·24 + 2 bits makes the double rounding harmless for square roots.
    """
    return torch.sqrt(v.to(torch.float64)).to(torch.float32)


def f16_bytes(v: Tensor) -> Tensor:
    """float32 values ``(N,)`` → their IEEE half bytes ``(N, 2)``, little-endian (round to even)."""
    return v.to(torch.float16).reshape(-1, 1).view(torch.uint8)


def f16_from(raw: Tensor) -> Tensor:
    """Two bytes per row ``(N, 2)`` uint8 → float32 ``(N,)``."""
    return raw.contiguous().view(torch.float16).reshape(-1).to(torch.float32)


def seq_sum(t: Tensor) -> Tensor:
    """Sum over dim 0 left to right in float32, the order of a C ``for`` loop."""
    acc = t[0].clone()
    for i in range(1, t.shape[0]):
        acc += t[i]
    return acc


def first_absmax(x: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """``(amax, max)`` along ``dim``: the largest |x| and the signed value of its *first*
    occurrence, as ggml's ``if (ax > amax) { amax = ax; max = x; }`` scan (0 when all are 0)."""
    if dim == 0:  # element-major: a scan over the few rows beats a strided argmax
        amax, mx = x[0].abs(), x[0].clone()
        for row in x[1:]:
            a = row.abs()
            larger = a > amax
            amax = torch.where(larger, a, amax)
            mx = torch.where(larger, row, mx)
        return amax, torch.where(amax > 0, mx, torch.zeros_like(mx))
    a = x.abs()
    idx = a.argmax(dim, keepdim=True)
    amax = a.gather(dim, idx).squeeze(dim)
    mx = x.gather(dim, idx).squeeze(dim)
    return amax, torch.where(amax > 0, mx, torch.zeros_like(mx))


def nibble_pack(q: Tensor, half: int) -> Tensor:
    """Codes 0..15 ``(N, 2·half·m)`` → bytes ``(N, half·m)``: in each run of ``2·half`` codes,
    byte j holds code j in its low nibble and code ``j + half`` in its high nibble."""
    pairs = q.to(torch.int32).reshape(-1, 2, half)
    return (pairs[:, 0] | (pairs[:, 1] << 4)).to(torch.uint8).reshape(q.shape[0], -1)


def nibble_unpack(qs: Tensor, half: int) -> Tensor:
    """Inverse of :func:`nibble_pack`: bytes ``(N, half·m)`` → int32 codes ``(N, 2·half·m)``."""
    q = qs.to(torch.int32).reshape(-1, 1, half)
    return torch.cat([q & 15, q >> 4], 1).reshape(qs.shape[0], -1)


def int8_wrap(v: Tensor) -> Tensor:
    """The value an ``int`` has after being stored in an ``int8_t``."""
    return ((v + 128) & 255) - 128


def _unpack_crumbs(qs: Tensor, groups: int) -> Tensor:
    """2-bit fields of ``qs (S, 32·groups)``: byte ``32g + l`` holds elements
    ``128g + 32k + l`` in bits ``2k``; returns ``(S, 128·groups)`` integers 0..3."""
    s = qs.shape[0]
    shifts = torch.tensor([0, 2, 4, 6], device=qs.device, dtype=torch.uint8).reshape(1, 1, 4, 1)
    return ((qs.reshape(s, groups, 1, 32) >> shifts) & 3).reshape(s, 128 * groups)


def _pack_crumbs(q: Tensor) -> Tensor:
    """Inverse of :func:`_unpack_crumbs` for ``q (S, 256)`` in 0..3 → ``(S, 64)`` uint8."""
    s = q.shape[0]
    shifts = torch.tensor([0, 2, 4, 6], device=q.device, dtype=torch.int32).reshape(1, 1, 4, 1)
    return (q.to(torch.int32).reshape(s, 2, 4, 32) << shifts).sum(2).reshape(s, 64).to(torch.uint8)


def _bit_planes(hi: Tensor) -> Tensor:
    """0/1 ``hi (S, 256)`` → ``(S, 32)`` uint8: bit k of byte j is element ``32k + j``."""
    s = hi.shape[0]
    shifts = torch.arange(8, device=hi.device, dtype=torch.int32).reshape(1, 8, 1)
    return (hi.to(torch.int32).reshape(s, 8, 32) << shifts).sum(1).to(torch.uint8)


def _unbit_planes(plane: Tensor) -> Tensor:
    """Inverse of :func:`_bit_planes`: ``(S, 32)`` uint8 → ``(S, 256)`` 0/1 integers."""
    s = plane.shape[0]
    shifts = torch.arange(8, device=plane.device, dtype=torch.uint8).reshape(1, 8, 1)
    return ((plane.reshape(s, 1, 32) >> shifts) & 1).reshape(s, 256)


def _element_major(x: Tensor, n: int) -> Tensor:
    """Super-blocks ``(S, 256)`` → ``(n, S·256/n)``: row i holds element i of every sub-block."""
    return x.reshape(-1, n).t().contiguous()


def _block_major(t: Tensor) -> Tensor:
    """Inverse of :func:`_element_major`: ``(n, M)`` → ``(M·n/256, 256)``."""
    return t.t().reshape(-1, QK_K)


# ----------------------------------------------------------------- sub-block scale searches


def round_codes(v: Tensor, lo: int, hi: int, bound: Tensor) -> Tensor:
    """``MAX(lo, MIN(hi, nearest_int(v)))`` in place on a float tensor ``v (n, M)``.

    ``bound (M,)`` bounds ``|v|`` per sub-block. Where it is below 2²¹, ``torch.round``
    (half to even) equals ``nearest_int`` and is used; sub-blocks with a larger or non-finite
    bound (only sub-blocks of subnormal-range weights, where ``iscale`` overflows) take the bit
    emulation of :func:`nearest_int`, whose garbage for such inputs the clamp then keeps. Pass
    a ``bound`` of 0 for sub-blocks whose codes are discarded anyway.
    """
    risky = ~(bound < 2.0**21)
    if bool(risky.any()):
        exact = nearest_int(v).clamp_(lo, hi).to(v.dtype)
        return torch.where(risky, exact, v.round_().clamp_(lo, hi), out=v)
    return v.round_().clamp_(lo, hi)


def make_qkx2(x: Tensor, w: Tensor, nmax: int, rmin: float, rdelta: float, nstep: int,
              use_mad: bool) -> tuple[Tensor, Tensor, Tensor]:
    """ggml's ``make_qkx2_quants`` for every sub-block at once (asymmetric, scale and min).

    ``x``, ``w``: element-major ``(n, M)``. Starts from min/max scaling, then tries
    ``nstep + 1`` grid sizes ``nmax + rmin + rdelta·is``; for each it rounds, solves the
    weighted least-squares scale and (non-positive) min, and keeps it when the weighted error
    (squared, or absolute with ``use_mad``) is strictly lower. As in the C code, a kept
    candidate's min is used by the following candidates. The codes of the kept candidate are
    recomputed once at the end from its ``(iscale, min)``, instead of being copied every step.

    Returns ``(L (n, M) float codes, scale (M,), the_min (M,))`` with ``x ≈ scale·L − the_min``.
    """
    mx = x.amax(0)
    mn = x.amin(0)
    x_min = mn
    sum_w = seq_sum(w)
    sum_x = seq_sum(w * x)
    mn = torch.where(mn > 0, torch.zeros_like(mn), mn)
    flat = mx == mn
    mn_flat = mn
    cand = torch.empty_like(x)
    err = torch.empty_like(x)
    prods = torch.empty((x.shape[0], 3, x.shape[1]), dtype=x.dtype, device=x.device)

    def quantize(iscale: Tensor, shift: Tensor) -> Tensor:
        torch.sub(x, shift, out=cand)
        bound = iscale.abs() * torch.maximum((mx - shift).abs(), (x_min - shift).abs())
        bound = torch.where(flat, torch.zeros_like(bound), bound)
        return round_codes(cand.mul_(iscale), 0, nmax, bound)

    def weighted_error(scale: Tensor, shift: Tensor) -> Tensor:
        torch.mul(cand, scale, out=err)
        err.add_(shift).sub_(x)
        if use_mad:
            err.abs_()
        else:
            err.mul_(err)
        return seq_sum(err.mul_(w))

    iscale = rdiv(nmax, mx - mn)
    scale = rdiv(1, iscale)
    quantize(iscale, mn)
    best = weighted_error(scale, mn)
    kept_iscale, kept_shift = iscale, mn
    for step in range(nstep + 1):
        grid = float(np.float32(rmin) + np.float32(rdelta) * np.float32(step) + np.float32(nmax))
        iscale = rdiv(grid, mx - mn)
        quantize(iscale, mn)
        wl = torch.mul(w, cand, out=prods[:, 0])
        torch.mul(wl, cand, out=prods[:, 1])
        torch.mul(wl, x, out=prods[:, 2])
        sum_l, sum_l2, sum_xl = seq_sum(prods)
        det = sum_w * sum_l2 - sum_l * sum_l
        this_scale = (sum_w * sum_xl - sum_x * sum_l) / det
        this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det
        positive = this_min > 0
        this_scale = torch.where(positive, sum_xl / sum_l2, this_scale)
        this_min = torch.where(positive, torch.zeros_like(this_min), this_min)
        cur = weighted_error(this_scale, this_min)
        take = (det > 0) & (cur < best)
        kept_iscale = torch.where(take, iscale, kept_iscale)
        kept_shift = torch.where(take, mn, kept_shift)
        best = torch.where(take, cur, best)
        scale = torch.where(take, this_scale, scale)
        mn = torch.where(take, this_min, mn)
    codes = quantize(kept_iscale, kept_shift).clone()
    codes = torch.where(flat, torch.zeros_like(codes), codes)
    scale = torch.where(flat, torch.zeros_like(scale), scale)
    mn = torch.where(flat, mn_flat, mn)
    return codes, scale, -mn


def make_q3(x: Tensor, nmax: int = 4) -> tuple[Tensor, Tensor]:
    """ggml's ``make_q3_quants(n, nmax, x, L, do_rmse=true)`` for every sub-block at once.

    Symmetric codes in ``[-nmax, nmax-1]`` from ``-nmax/max``, then up to 5 coordinate-descent
    sweeps that move one code at a time whenever the x²-weighted least-squares fit improves.
    ``x``: element-major ``(n, M)``. Returns ``(L (n, M) float codes in [0, 2·nmax), scale (M,))``;
    all-zero sub-blocks get codes 0 (not ``nmax``) and scale 0, as in the C code.
    """
    amax, mx = first_absmax(x, 0)
    zero = amax < GROUP_MAX_EPS
    iscale = rdiv(-nmax, mx)
    codes = nearest_int(iscale * x).clamp_(-nmax, nmax - 1).to(torch.float32)
    w = x * x
    wx = w * x
    sumlx = seq_sum(wx * codes)
    suml2 = seq_sum(w * codes * codes)
    for _sweep in range(5):
        for i in range(x.shape[0]):
            li, wi, wxi = codes[i], w[i], wx[i]
            slx = sumlx - wxi * li
            sl2 = suml2 - wi * li * li
            new = nearest_int(x[i] * sl2 / slx).clamp_(-nmax, nmax - 1).to(torch.float32)
            slx_new = slx + wxi * new
            sl2_new = sl2 + wi * new * new
            accept = ((slx > 0) & (new != li) & (sl2_new > 0)
                      & (slx_new * slx_new * suml2 > sumlx * sumlx * sl2_new))
            codes[i] = torch.where(accept, new, li)
            sumlx = torch.where(accept, slx_new, sumlx)
            suml2 = torch.where(accept, sl2_new, suml2)
    scale = torch.where(suml2 > 0, sumlx / suml2, torch.zeros_like(suml2))
    codes = torch.where(zero, torch.zeros_like(codes), codes + nmax)
    return codes, torch.where(zero, torch.zeros_like(scale), scale)


def make_qx(x: Tensor, nmax: int = 32) -> tuple[Tensor, Tensor]:
    """ggml's ``make_qx_quants(n, nmax, x, L, rmse_type=1, NULL)`` for every sub-block at once.

    Symmetric codes from ``-nmax/max``, x²-weighted least-squares scale, then 18 more grid sizes
    ``nmax + 0.1·is`` (is = −9…9, is ≠ 0), keeping one when ``Σwxl² / Σwl²`` strictly improves.
    ``x``: element-major ``(n, M)``. Returns ``(L float codes in [0, 2·nmax), scale (M,))``;
    all-zero sub-blocks get codes 0 and scale 0.
    """
    amax, mx = first_absmax(x, 0)
    zero = amax < GROUP_MAX_EPS
    w = x * x
    wx = w * x
    q = torch.empty_like(x)
    prods = torch.empty((x.shape[0], 2, x.shape[1]), dtype=x.dtype, device=x.device)

    live_amax = torch.where(zero, torch.zeros_like(amax), amax)

    def trial(iscale: Tensor) -> tuple[Tensor, Tensor]:
        round_codes(torch.mul(x, iscale, out=q), -nmax, nmax - 1, iscale.abs() * live_amax)
        torch.mul(wx, q, out=prods[:, 0])
        torch.mul(w, q, out=prods[:, 1]).mul_(q)
        sums = seq_sum(prods)
        return sums[0], sums[1]

    iscale = rdiv(-nmax, mx)
    sumlx, suml2 = trial(iscale)
    kept_iscale = iscale
    scale = torch.where(suml2 != 0, sumlx / suml2, torch.zeros_like(suml2))
    best = scale * sumlx
    for step in range(-9, 10):
        if step == 0:
            continue
        iscale = rdiv(float(-(np.float32(nmax) + np.float32(0.1) * np.float32(step))), mx)
        sumlx, suml2 = trial(iscale)
        take = (suml2 > 0) & (sumlx * sumlx > best * suml2)
        kept_iscale = torch.where(take, iscale, kept_iscale)
        scale = torch.where(take, sumlx / suml2, scale)
        best = torch.where(take, scale * sumlx, best)
    codes = round_codes(torch.mul(x, kept_iscale), -nmax, nmax - 1,
                        kept_iscale.abs() * live_amax).add_(nmax)
    codes = torch.where(zero, torch.zeros_like(codes), codes)
    return codes, torch.where(zero, torch.zeros_like(scale), scale)


# ------------------------------------------------------------------------- super-block scales


def _positive_max(v: Tensor) -> Tensor:
    """Row max of ``v (S, j)`` floored at 0 (ggml's ``if (v > max) max = v`` from ``max = 0``)."""
    m = v.amax(1)
    return torch.where(m > 0, m, torch.zeros_like(m))


def _quantize_scale_min_6bit(scales: Tensor, mins: Tensor):
    """Q4_K/Q5_K: sub-block scales and mins → 6-bit integers, fp16 ``d``/``dmin`` values and the
    12 packed bytes (layout of ggml's ``get_scale_min_k4``)."""
    max_scale = _positive_max(scales)
    max_min = _positive_max(mins)
    inv_scale = torch.where(max_scale > 0, rdiv(63, max_scale), torch.zeros_like(max_scale))
    inv_min = torch.where(max_min > 0, rdiv(63, max_min), torch.zeros_like(max_min))
    ls = (nearest_int(inv_scale[:, None] * scales) & 255).clamp_(max=63)  # uint8_t, then MIN 63
    lm = (nearest_int(inv_min[:, None] * mins) & 255).clamp_(max=63)
    d = max_scale / 63.0
    dmin = max_min / 63.0
    packed = torch.cat([
        ls[:, :4] | ((ls[:, 4:] >> 4) << 6),
        lm[:, :4] | ((lm[:, 4:] >> 4) << 6),
        (ls[:, 4:] & 15) | ((lm[:, 4:] & 15) << 4),
    ], 1).to(torch.uint8)
    return ls, lm, d, dmin, packed


def _unpack_scale_min_6bit(packed: Tensor) -> tuple[Tensor, Tensor]:
    """12 bytes ``(S, 12)`` → 6-bit scales and mins ``(S, 8)`` (int32)."""
    p = packed.to(torch.int32)
    a, b, c = p[:, 0:4], p[:, 4:8], p[:, 8:12]
    sc = torch.cat([a & 63, (c & 15) | ((a >> 6) << 4)], 1)
    mn = torch.cat([b & 63, (c >> 4) | ((b >> 6) << 4)], 1)
    return sc, mn


def _requantize_asym(xt: Tensor, codes: Tensor, d: Tensor, ls: Tensor, dmin: Tensor, lm: Tensor,
                     nmax: int) -> Tensor:
    """Final codes of Q2_K/Q4_K/Q5_K: ``nearest_int((x + dm)/dl)`` with the stored, quantized
    sub-block scale ``dl`` and min ``dm``; sub-blocks whose ``dl`` is 0 keep the search's codes."""
    dl = (fp16_round(d)[:, None] * ls.to(torch.float32)).reshape(-1)
    dm = (fp16_round(dmin)[:, None] * lm.to(torch.float32)).reshape(-1)
    new = nearest_int((xt + dm) / dl).clamp_(0, nmax).to(torch.float32)
    return torch.where(dl != 0, new, codes)


def _requantize_sym(xt: Tensor, codes: Tensor, d: Tensor, sc: Tensor, nmax: int) -> Tensor:
    """Final codes of Q3_K/Q6_K: ``nearest_int(x/dl) + nmax`` with the stored sub-block scale."""
    dl = (fp16_round(d)[:, None] * sc.to(torch.float32)).reshape(-1)
    new = (nearest_int(xt / dl).clamp_(-nmax, nmax - 1) + nmax).to(torch.float32)
    return torch.where(dl != 0, new, codes)


# ------------------------------------------------------------------------------- encoders


def _encode_q45k(x: Tensor, nmax: int, rmin: float, nstep: int) -> tuple[Tensor, Tensor]:
    """Shared part of Q4_K and Q5_K: returns (header bytes d|dmin|scales ``(S, 16)``, codes
    ``(S, 256)`` int32). ``x``: super-blocks ``(S, 256)``."""
    s = x.shape[0]
    xt = _element_major(x, 32)
    av_x = sqrtf(seq_sum(xt * xt) / 32)
    w = av_x + xt.abs()
    codes, scales, mins = make_qkx2(xt, w, nmax, rmin, 0.1, nstep, use_mad=False)
    ls, lm, d, dmin, packed = _quantize_scale_min_6bit(scales.reshape(s, 8), mins.reshape(s, 8))
    codes = _requantize_asym(xt, codes, d, ls, dmin, lm, nmax)
    header = torch.cat([f16_bytes(d), f16_bytes(dmin), packed], 1)
    return header, _block_major(codes).to(torch.int32)


def encode_q4_k(x: Tensor) -> Tensor:
    """``quantize_row_q4_K_ref``: 8 sub-blocks of 32, 4-bit codes, 6-bit scales and mins."""
    header, q = _encode_q45k(x, 15, -1.0, 20)
    return torch.cat([header, nibble_pack(q, 32)], 1)


def encode_q5_k(x: Tensor) -> Tensor:
    """``quantize_row_q5_K_ref``: as Q4_K with 5-bit codes; bit 4 of element ``32k + j`` is
    bit k of ``qh[j]``."""
    header, q = _encode_q45k(x, 31, -0.5, 15)
    return torch.cat([header, _bit_planes(q >> 4), nibble_pack(q & 15, 32)], 1)


def encode_q2_k(x: Tensor) -> Tensor:
    """``quantize_row_q2_K_ref``: 16 sub-blocks of 16, 2-bit codes, 4-bit scales and mins,
    |x|-weighted absolute-error search."""
    s = x.shape[0]
    xt = _element_major(x, 16)
    codes, scales, mins = make_qkx2(xt, xt.abs(), 3, -0.5, 0.1, 15, use_mad=True)
    scales, mins = scales.reshape(s, 16), mins.reshape(s, 16)
    max_scale = _positive_max(scales)
    max_min = _positive_max(mins)
    has_scale = (max_scale > 0)[:, None]
    has_min = (max_min > 0)[:, None]
    ls = nearest_int(rdiv(15, max_scale)[:, None] * scales)
    lm = nearest_int(rdiv(15, max_min)[:, None] * mins)
    byte = torch.where(has_scale, ls, torch.zeros_like(ls))
    byte = torch.where(has_min, byte | (lm << 4), byte) & 255  # uint8_t stores
    d = torch.where(max_scale > 0, max_scale / 15.0, torch.zeros_like(max_scale))
    dmin = torch.where(max_min > 0, max_min / 15.0, torch.zeros_like(max_min))
    codes = _requantize_asym(xt, codes, d, byte & 15, dmin, byte >> 4, 3)
    qs = _pack_crumbs(_block_major(codes))
    return torch.cat([byte.to(torch.uint8), qs, f16_bytes(d), f16_bytes(dmin)], 1)


def encode_q3_k(x: Tensor) -> Tensor:
    """``quantize_row_q3_K_ref``: 16 sub-blocks of 16, 3-bit codes (2 low bits in ``qs``, the
    high bit in ``hmask``), signed 6-bit sub-block scales."""
    s = x.shape[0]
    xt = _element_major(x, 16)
    codes, scales = make_q3(xt, 4)
    scales = scales.reshape(s, 16)
    _, max_scale = first_absmax(scales, 1)
    nonzero = (max_scale != 0)[:, None]
    iscale = rdiv(-32, max_scale)
    l6 = int8_wrap(nearest_int(iscale[:, None] * scales)).clamp_(-32, 31) + 32
    l6 = torch.where(nonzero, l6, torch.zeros_like(l6))
    d = torch.where(max_scale != 0, rdiv(1, iscale), torch.zeros_like(iscale))
    shifts = torch.tensor([0, 2, 4, 6], device=x.device, dtype=torch.int32).reshape(1, 4, 1)
    packed = torch.cat([
        (l6[:, :8] & 15) | ((l6[:, 8:] & 15) << 4),
        ((l6 >> 4).reshape(s, 4, 4) << shifts).sum(1),
    ], 1).to(torch.uint8)
    codes = _requantize_sym(xt, codes, d, torch.where(nonzero, l6 - 32, l6), 4)
    q = _block_major(codes).to(torch.int32)
    high = q > 3
    hmask = _bit_planes(high)
    qs = _pack_crumbs(torch.where(high, q - 4, q))
    return torch.cat([hmask, qs, packed, f16_bytes(d)], 1)


def encode_q6_k(x: Tensor) -> Tensor:
    """``quantize_row_q6_K_ref``: 16 sub-blocks of 16, 6-bit codes (4 low bits in ``ql``, 2 high
    bits in ``qh``), signed 8-bit sub-block scales."""
    s = x.shape[0]
    xt = _element_major(x, 16)
    codes, scales = make_qx(xt, 32)
    scales = scales.reshape(s, 16)
    amax, max_scale = first_absmax(scales, 1)
    live = amax >= GROUP_MAX_EPS
    iscale = rdiv(-128, max_scale)
    d = torch.where(live, rdiv(1, iscale), torch.zeros_like(iscale))
    sc = int8_wrap(nearest_int(iscale[:, None] * scales).clamp_(max=127))
    sc = torch.where(live[:, None], sc, torch.zeros_like(sc))
    codes = _requantize_sym(xt, codes, d, sc, 32)
    q = _block_major(codes).to(torch.int32)
    q = torch.where(live[:, None], q, torch.zeros_like(q)).reshape(s, 2, 4, 32)
    lo = q & 15
    ql = torch.cat([lo[:, :, 0] | (lo[:, :, 2] << 4), lo[:, :, 1] | (lo[:, :, 3] << 4)], 2)
    shifts = torch.tensor([0, 2, 4, 6], device=x.device, dtype=torch.int32).reshape(1, 1, 4, 1)
    qh = ((q >> 4) << shifts).sum(2)
    return torch.cat([ql.reshape(s, 128).to(torch.uint8), qh.reshape(s, 64).to(torch.uint8),
                      sc.to(torch.int8).view(torch.uint8), f16_bytes(d)], 1)


# ------------------------------------------------------------------------------- decoders
# Each computes in float32 in the order of ggml's dequantize_row_* (and of gguf-py's decoder):
# (d·sc)·q − (dmin·m).


def decode_q2_k(raw: Tensor) -> Tensor:
    s = raw.shape[0]
    sc = raw[:, :16].to(torch.int32)
    q = _unpack_crumbs(raw[:, 16:80], 2).reshape(s, 16, 16).to(torch.float32)
    d, dmin = f16_from(raw[:, 80:82]), f16_from(raw[:, 82:84])
    dl = d[:, None] * (sc & 15).to(torch.float32)
    ml = dmin[:, None] * (sc >> 4).to(torch.float32)
    return (dl[..., None] * q - ml[..., None]).reshape(s, QK_K)


def decode_q3_k(raw: Tensor) -> Tensor:
    s = raw.shape[0]
    high = _unbit_planes(raw[:, :32]).to(torch.int32)
    low = _unpack_crumbs(raw[:, 32:96], 2).to(torch.int32)
    p = raw[:, 96:108].to(torch.int32)
    shifts = torch.tensor([0, 2, 4, 6], device=raw.device, dtype=torch.int32).reshape(1, 4, 1)
    hi2 = ((p[:, 8:12].reshape(s, 1, 4) >> shifts) & 3).reshape(s, 16)
    lo4 = torch.cat([p[:, :8] & 15, p[:, :8] >> 4], 1)
    sc = ((lo4 | (hi2 << 4)) - 32).to(torch.float32)
    d = f16_from(raw[:, 108:110])
    q = (low - 4 * (1 - high)).reshape(s, 16, 16).to(torch.float32)
    return ((d[:, None] * sc)[..., None] * q).reshape(s, QK_K)


def _decode_q45k_scales(raw: Tensor) -> tuple[Tensor, Tensor]:
    d, dmin = f16_from(raw[:, 0:2]), f16_from(raw[:, 2:4])
    sc, mn = _unpack_scale_min_6bit(raw[:, 4:16])
    return ((d[:, None] * sc.to(torch.float32))[..., None],
            (dmin[:, None] * mn.to(torch.float32))[..., None])


def decode_q4_k(raw: Tensor) -> Tensor:
    dl, ml = _decode_q45k_scales(raw)
    q = nibble_unpack(raw[:, 16:144], 32).reshape(-1, 8, 32).to(torch.float32)
    return (dl * q - ml).reshape(raw.shape[0], QK_K)


def decode_q5_k(raw: Tensor) -> Tensor:
    s = raw.shape[0]
    dl, ml = _decode_q45k_scales(raw)
    high = _unbit_planes(raw[:, 16:48]).to(torch.int32).reshape(s, 8, 32)
    q = (nibble_unpack(raw[:, 48:176], 32).reshape(s, 8, 32) | (high << 4)).to(torch.float32)
    return (dl * q - ml).reshape(s, QK_K)


def decode_q6_k(raw: Tensor) -> Tensor:
    s = raw.shape[0]
    ql = raw[:, :128].to(torch.int32).reshape(s, 2, 2, 32)
    lo = torch.stack([ql[:, :, 0] & 15, ql[:, :, 1] & 15, ql[:, :, 0] >> 4, ql[:, :, 1] >> 4], 2)
    shifts = torch.tensor([0, 2, 4, 6], device=raw.device, dtype=torch.int32).reshape(1, 1, 4, 1)
    hi = (raw[:, 128:192].to(torch.int32).reshape(s, 2, 1, 32) >> shifts) & 3
    q = ((lo | (hi << 4)) - 32).reshape(s, 16, 16).to(torch.float32)
    sc = raw[:, 192:208].contiguous().view(torch.int8).to(torch.float32)
    d = f16_from(raw[:, 208:210])
    return ((d[:, None] * sc)[..., None] * q).reshape(s, QK_K)


ENCODERS = {"q2_k": encode_q2_k, "q3_k": encode_q3_k, "q4_k": encode_q4_k,
            "q5_k": encode_q5_k, "q6_k": encode_q6_k}
DECODERS = {"q2_k": decode_q2_k, "q3_k": decode_q3_k, "q4_k": decode_q4_k,
            "q5_k": decode_q5_k, "q6_k": decode_q6_k}
