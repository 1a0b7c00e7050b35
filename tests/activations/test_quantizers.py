"""Quantizer math on small tensors, checked against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from qua2.activations.quantizers import (
    fake_quant,
    fake_quant_per_token,
    fake_quant_static,
    qparams,
)


def test_qparams_by_hand():
    # [-1, 2] at 2 bits: 3 steps of 1.0; zero point round(1 / 1) = 1.
    scale, zp = qparams(torch.tensor(-1.0), torch.tensor(2.0), 2)
    assert scale.item() == pytest.approx(1.0)
    assert zp.item() == 1.0


def test_per_token_rows_get_their_own_range():
    # Token 0 spans [0, 1.5] at 4 bits: step 0.1, values on the grid stay exact.
    # Token 1 spans [-3, 0] at 4 bits: step 0.2; -1.1 lies between -1.2 and -1.0.
    x = torch.tensor([[[0.0, 0.3, 1.5, 0.71],
                       [-3.0, -1.1, 0.0, -0.52]]])
    out = fake_quant_per_token(x, bits=4)
    expected = torch.tensor([[[0.0, 0.3, 1.5, 0.7],
                              [-3.0, -1.2, 0.0, -0.6]]])
    # -1.1 / 0.2 = -5.5 rounds half-to-even to -6 → -1.2; -0.52 / 0.2 = -2.6 → -3 → -0.6.
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_per_position_for_conv_inputs():
    # [B=1, C=3, H=1, W=2]: each spatial position is reduced over its 3 channels.
    x = torch.tensor([[[[0.0, 10.0]], [[1.0, 20.0]], [[3.0, 25.0]]]])
    out = fake_quant_per_token(x, bits=2, dim=1)
    # Position 0: [0, 3], step 1 → exact. Position 1: [10, 25], step 5; zero point
    # round(-10/5) = -2, so 20 → q = 4 - 2 = 2 → (2 + 2)·5 = 20; all exact.
    torch.testing.assert_close(out, x)
    x[0, 1, 0, 1] = 16.0  # 16/5 = 3.2 → 3 → 15
    assert fake_quant_per_token(x, bits=2, dim=1)[0, 1, 0, 1].item() == pytest.approx(15.0)


def test_static_clamps_outside_the_range():
    x = torch.tensor([-5.0, -1.0, 0.0, 0.49, 2.0, 7.0])
    out = fake_quant_static(x, -1.0, 2.0, bits=2)
    torch.testing.assert_close(out, torch.tensor([-1.0, -1.0, 0.0, 0.0, 2.0, 2.0]))


def test_zero_is_exact_and_range_ends_within_half_a_step():
    x = torch.linspace(-0.37, 1.91, 101)
    for bits in (4, 6, 8):
        out = fake_quant_static(torch.cat([x, torch.zeros(1)]), -0.37, 1.91, bits)
        step = (1.91 + 0.37) / (2**bits - 1)
        assert out[-1].item() == 0.0
        assert (out[:-1] - x).abs().max().item() <= step / 2 + 1e-6
        assert out.unique().numel() <= 2**bits


def test_degenerate_rows_pass_through():
    x = torch.tensor([[2.5, 2.5, 2.5], [0.0, 1.0, 3.0]])
    out = fake_quant_per_token(x, bits=4)
    assert torch.equal(out[0], x[0])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtype_is_kept(dtype):
    x = torch.randn(3, 5, generator=torch.Generator().manual_seed(0)).to(dtype)
    assert fake_quant_per_token(x, 8).dtype == dtype
    assert fake_quant_static(x, -1.0, 1.0, 8).dtype == dtype


def test_more_bits_means_less_error():
    x = torch.randn(64, 32, generator=torch.Generator().manual_seed(1))
    errors = [(fake_quant_per_token(x, b) - x).pow(2).mean().item() for b in (4, 6, 8)]
    assert errors[0] > errors[1] > errors[2] > 0


def test_broadcast_ranges():
    x = torch.tensor([[0.2, 0.9], [0.2, 0.9]])
    lo = torch.tensor([[0.0], [0.0]])
    hi = torch.tensor([[1.0], [3.0]])
    out = fake_quant(x, lo, hi, bits=2)  # steps 1/3 and 1
    torch.testing.assert_close(out, torch.tensor([[1 / 3, 1.0], [0.0, 1.0]]))
