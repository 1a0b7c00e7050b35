"""Bit packing of integer codes: ``b`` bits per code, 2 ≤ b ≤ 8, into a flat uint8 stream.

Layout (format version 1): code ``t`` occupies bits ``[t·b, (t+1)·b)`` of the stream,
least-significant bit first, and stream bit ``i`` is bit ``i mod 8`` of byte ``i // 8``. The last
byte is zero-padded. A tensor of n codes therefore takes exactly ``ceil(n·b / 8)`` bytes.

Vectorised by packing 8 codes (``8·b ≤ 56`` bits for b ≤ 7) into one int64 and splitting it into
``b`` bytes; 8-bit codes are their own bytes.
"""

from __future__ import annotations

import torch
from torch import Tensor

from qua2.errors import Qua2Error
from qua2.specs import MAX_BITS, MIN_BITS

#: Codes handled per vectorised chunk (a multiple of 8, so every chunk starts on a byte).
CHUNK = 1 << 22


def packed_nbytes(numel: int, bits: int) -> int:
    """Bytes that ``numel`` codes of ``bits`` bits take when packed."""
    return (numel * bits + 7) // 8


def _check_bits(bits: int) -> None:
    if not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise Qua2Error(f"can only pack {MIN_BITS}- to {MAX_BITS}-bit codes, got bits={bits!r}.")


def pack_codes(codes: Tensor, bits: int) -> Tensor:
    """Pack integer codes in ``[0, 2^bits)`` (any shape, flattened) into a uint8 stream."""
    _check_bits(bits)
    flat = codes.reshape(-1)
    if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= 2**bits):
        raise Qua2Error(f"codes must lie in [0, {2**bits - 1}] to be packed in {bits} bits.")
    if bits == 8:
        return flat.to(torch.uint8).clone()
    out = [_regroup(flat[i:i + CHUNK], 8, bits, bits, 8) for i in range(0, flat.numel(), CHUNK)]
    packed = torch.cat(out) if out else flat.new_empty(0, dtype=torch.uint8)
    return packed[: packed_nbytes(flat.numel(), bits)]


def _regroup(chunk: Tensor, n_in: int, in_bits: int, n_out: int, out_bits: int) -> Tensor:
    """Little-endian bit fields: each ``n_in`` of ``in_bits`` → ``n_out`` of ``out_bits``."""
    n = chunk.numel()
    padded = torch.zeros((n + n_in - 1) // n_in * n_in, dtype=torch.int64, device=chunk.device)
    padded[:n] = chunk
    in_shifts = torch.arange(n_in, device=chunk.device, dtype=torch.int64) * in_bits
    words = (padded.view(-1, n_in) << in_shifts).sum(dim=1)
    out_shifts = torch.arange(n_out, device=chunk.device, dtype=torch.int64) * out_bits
    return ((words[:, None] >> out_shifts) & (2**out_bits - 1)).to(torch.uint8).reshape(-1)


def unpack_codes(packed: Tensor, bits: int, numel: int) -> Tensor:
    """Inverse of :func:`pack_codes`: the first ``numel`` codes as a flat uint8 tensor."""
    _check_bits(bits)
    if packed.dtype != torch.uint8 or packed.dim() != 1:
        raise Qua2Error("packed codes must be a flat uint8 tensor.")
    if packed.numel() != packed_nbytes(numel, bits):
        raise Qua2Error(
            f"packed codes hold {packed.numel()} bytes, but {numel} codes of {bits} bits need "
            f"{packed_nbytes(numel, bits)}; the file is truncated or mislabelled."
        )
    if bits == 8:
        return packed.clone()
    step = CHUNK // 8 * bits  # bytes per chunk of CHUNK codes
    out = [_regroup(packed[i:i + step], bits, 8, 8, bits) for i in range(0, packed.numel(), step)]
    codes = torch.cat(out) if out else packed.new_empty(0)
    return codes[:numel]
