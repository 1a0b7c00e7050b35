"""Paired fidelity of a quantized model to the full-precision model on the same seeds.

With common random numbers every quantized image has an FP twin (same seed, same condition),
so the difference can be measured image by image instead of distribution to distribution: far
less noisy than FID at a few hundred images (RESEARCH §6).

- MSE and PSNR of images in [-1, 1] (``data_range = 2``).
- SSIM (Wang, Bovik, Sheikh & Simoncelli, 2004, "Image Quality Assessment: From Error
  Visibility to Structural Similarity", IEEE TIP 13(4)) with a Gaussian window.
- SQNR of denoiser outputs, 10·log10(Σy² / Σ(ŷ − y)²), as MixDQ (Zhao et al., ECCV 2024) uses
  to score quality-related layers.

All functions take ``(test, reference)`` with ``reference`` the FP result; identical inputs give
PSNR = SQNR = ∞, SSIM = 1 and MSE = 0.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from qua2.errors import Qua2Error

#: Images in qua2 span [-1, 1].
DATA_RANGE = 2.0


def _pair(test: torch.Tensor, reference: torch.Tensor, what: str) -> tuple[torch.Tensor,
                                                                            torch.Tensor]:
    """Validate a pair and return both as float64 on the reference's device."""
    for t in (test, reference):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise Qua2Error(f"{what} takes two float tensors, got {type(t).__name__}.")
    if test.shape != reference.shape:
        raise Qua2Error(f"{what} compares tensors of the same shape, got {tuple(test.shape)} "
                        f"and {tuple(reference.shape)}; score the same seeds as the FP run.")
    if test.numel() == 0:
        raise Qua2Error(f"{what} got empty tensors.")
    return test.detach().double(), reference.detach().double().to(test.device)


def mse(test: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean squared error over all elements."""
    x, y = _pair(test, reference, "mse")
    return float(((x - y) ** 2).mean())


def mse_per_image(test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each image ``[N]`` (their mean is :func:`mse`: equal sizes)."""
    x, y = _pair(test, reference, "mse")
    return ((x - y) ** 2).flatten(1).mean(1)


def psnr_per_image(test: torch.Tensor, reference: torch.Tensor,
                   data_range: float = DATA_RANGE) -> torch.Tensor:
    """PSNR in dB of each image ``[N]`` (∞ where an image equals its reference)."""
    x, y = _pair(test, reference, "psnr")
    err = ((x - y) ** 2).flatten(1).mean(1)
    return 10.0 * torch.log10(data_range**2 / err)  # err = 0 → +inf, as it should


def psnr(test: torch.Tensor, reference: torch.Tensor, data_range: float = DATA_RANGE) -> float:
    """PSNR in dB of the pooled MSE over all images: 10·log10(range² / MSE); ∞ if identical.

    Pooling (rather than averaging per-image PSNRs) keeps one identical image from turning the
    mean into ∞ and weights every pixel equally.
    """
    err = mse(test, reference)
    return math.inf if err == 0.0 else 10.0 * math.log10(data_range**2 / err)


def sqnr(test: torch.Tensor, reference: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio in dB (MixDQ): 10·log10(Σy² / Σ(ŷ − y)²).

    ``reference`` is the FP denoiser output y, ``test`` the quantized output ŷ; ∞ if identical.
    """
    x, y = _pair(test, reference, "sqnr")
    noise = float(((x - y) ** 2).sum())
    signal = float((y**2).sum())
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        raise Qua2Error("sqnr is undefined for an all-zero reference output.")
    return 10.0 * math.log10(signal / noise)


# ------------------------------------------------------------------------------ SSIM
def _gaussian_window(size: int, sigma: float, dtype: torch.dtype,
                     device: torch.device) -> torch.Tensor:
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def ssim_per_image(test: torch.Tensor, reference: torch.Tensor,
                   value_range: tuple[float, float] = (-1.0, 1.0), window: int = 11,
                   sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Mean SSIM of each image ``[N]`` (Wang et al., 2004), averaged over channels.

    Standard settings: an 11×11 Gaussian window with σ = 1.5, K₁ = 0.01, K₂ = 0.03, "valid"
    filtering (no padding, so borders are not invented). For images smaller than the window
    — the 8×8 digits — the window shrinks to the largest odd size that fits (7×7 for 8×8)
    with the same σ; document that when comparing with other SSIM numbers.

    Pixels are shifted so ``value_range`` starts at 0 before scoring: SSIM's luminance term
    assumes non-negative intensities, and on signed images a negated image would score ≈ +1
    (two negative terms multiply).
    """
    x, y = _pair(test, reference, "ssim")
    low, high = value_range
    data_range = high - low
    x, y = x - low, y - low
    if x.ndim != 4:
        raise Qua2Error(f"ssim takes images [N, C, H, W], got shape {tuple(x.shape)}.")
    size = min(window, *(s if s % 2 else s - 1 for s in x.shape[-2:]))
    if size < 3:
        raise Qua2Error(f"ssim needs images of at least 3×3 pixels, got {tuple(x.shape[-2:])}.")
    g = _gaussian_window(size, sigma, x.dtype, x.device)
    c = x.shape[1]

    def blur(t: torch.Tensor) -> torch.Tensor:  # separable Gaussian, one filter per channel
        t = F.conv2d(t, g.view(1, 1, 1, -1).expand(c, 1, 1, size), groups=c)
        return F.conv2d(t, g.view(1, 1, -1, 1).expand(c, 1, size, 1), groups=c)

    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(1)


def ssim(test: torch.Tensor, reference: torch.Tensor,
         value_range: tuple[float, float] = (-1.0, 1.0), window: int = 11,
         sigma: float = 1.5) -> float:
    """Mean SSIM over images (see :func:`ssim_per_image`); 1 for identical images."""
    return float(ssim_per_image(test, reference, value_range, window, sigma).mean())
