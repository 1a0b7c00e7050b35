import math

import pytest
import torch

from qua2.errors import Qua2Error
from qua2.metrics.fidelity import mse, psnr, psnr_per_image, sqnr, ssim, ssim_per_image


@pytest.fixture
def digits(real_digits):
    return real_digits[0][:128]


def test_identical_images(digits):
    assert psnr(digits, digits) == math.inf
    assert torch.isinf(psnr_per_image(digits, digits)).all()
    assert ssim(digits, digits) == 1.0
    assert mse(digits, digits) == 0.0
    assert sqnr(digits, digits) == math.inf


def test_psnr_known_value():
    x = torch.zeros(2, 3, 16, 16, dtype=torch.float64)
    # MSE 0.01 on a range of 2: 10·log10(4 / 0.01) = 26.0206 dB.
    assert psnr(x + 0.1, x) == pytest.approx(10 * math.log10(400), abs=1e-9)
    assert mse(x + 0.1, x) == pytest.approx(0.01)


def test_sqnr_known_value():
    y = torch.ones(4, 100, dtype=torch.float64)
    assert sqnr(y + 0.1, y) == pytest.approx(20.0, abs=1e-9)  # Σy²/Σe² = 1/0.01
    assert sqnr(2 * y, y) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(Qua2Error, match="all-zero"):
        sqnr(y, torch.zeros_like(y))


def test_ssim_bounds_and_direction(digits):
    gen = torch.Generator().manual_seed(0)
    noisy = [(digits + s * torch.randn(digits.shape, generator=gen)).clamp(-1, 1)
             for s in (0.05, 0.2, 0.6)]
    scores = [ssim(n, digits) for n in noisy]
    assert scores == sorted(scores, reverse=True)
    assert all(-1 <= s < 1 for s in scores)
    per = ssim_per_image(-digits, digits)
    assert (per >= -1).all() and (per <= 1).all() and per.mean() < 0  # negation is anti-similar
    rgb = torch.rand(3, 3, 40, 40, generator=gen) * 2 - 1
    assert abs(ssim(rgb, torch.rand(3, 3, 40, 40, generator=gen) * 2 - 1)) < 0.1
    assert psnr(noisy[0], digits) > psnr(noisy[2], digits)


def test_ssim_window_fits_small_images():
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    assert ssim(x, x) == 1.0
    with pytest.raises(Qua2Error, match="3×3"):
        ssim(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))


def test_bad_pairs():
    with pytest.raises(Qua2Error, match="same shape"):
        psnr(torch.zeros(2, 1, 8, 8), torch.zeros(3, 1, 8, 8))
    with pytest.raises(Qua2Error, match="float"):
        mse(torch.zeros(2, dtype=torch.long), torch.zeros(2))
    with pytest.raises(Qua2Error, match=r"\[N, C, H, W\]"):
        ssim(torch.zeros(8, 8), torch.zeros(8, 8))
