"""Bit packing round trips for every width 2–8 and odd sizes; exact byte counts."""

from __future__ import annotations

import pytest
import torch

from qua2.errors import Qua2Error
from qua2.quant.packing import CHUNK, pack_codes, packed_nbytes, unpack_codes


@pytest.mark.parametrize("bits", range(2, 9))
@pytest.mark.parametrize("numel", [0, 1, 3, 7, 8, 9, 13, 255, 1001])
def test_round_trip(bits, numel):
    g = torch.Generator().manual_seed(bits * 1000 + numel)
    codes = torch.randint(0, 2**bits, (numel,), generator=g, dtype=torch.uint8)
    packed = pack_codes(codes, bits)
    assert packed.dtype == torch.uint8
    assert packed.numel() == packed_nbytes(numel, bits) == (numel * bits + 7) // 8
    assert torch.equal(unpack_codes(packed, bits, numel), codes)


def test_round_trip_across_chunks():
    codes = torch.randint(0, 8, (CHUNK * 2 + 5,), dtype=torch.uint8)
    assert torch.equal(unpack_codes(pack_codes(codes, 3), 3, codes.numel()), codes)


def test_layout_is_lsb_first_bitstream():
    # codes 1, 2, 3 at 3 bits: 001 | 010 | 011 (LSB first) -> bits 0..8 = 1,0,0,0,1,0,1,1,0
    packed = pack_codes(torch.tensor([1, 2, 3], dtype=torch.uint8), 3)
    assert packed.tolist() == [0b11010001, 0b0]
    # 2-bit codes 0,1,2,3 fill one byte as 3<<6 | 2<<4 | 1<<2 | 0
    assert pack_codes(torch.tensor([0, 1, 2, 3]), 2).tolist() == [0b11100100]


def test_accepts_any_shape_and_int_dtype():
    codes = torch.randint(0, 16, (5, 7), dtype=torch.int64)
    flat = unpack_codes(pack_codes(codes, 4), 4, 35)
    assert torch.equal(flat.reshape(5, 7).long(), codes)


def test_rejects_codes_out_of_range():
    with pytest.raises(Qua2Error, match=r"\[0, 7\]"):
        pack_codes(torch.tensor([0, 8]), 3)


def test_rejects_bad_bits_and_truncated_data():
    with pytest.raises(Qua2Error, match="bits=9"):
        pack_codes(torch.tensor([1]), 9)
    packed = pack_codes(torch.arange(10) % 4, 2)
    with pytest.raises(Qua2Error, match="truncated"):
        unpack_codes(packed[:-1], 2, 10)
