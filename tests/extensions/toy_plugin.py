"""A third-party extension of qua2, written outside the package: one file, four additions.

Each object below is what a researcher writes to add a metric, a quantization method, a
surrogate or a model family; registering each takes one line (see
tests/test_extension_recipes.py and the recipes in docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from typing import Any

import torch

from qua2.surrogates.ridge import RidgeSurrogate


# ----------------------------------------------------------------------- a paired metric
def mean_abs_error(images: torch.Tensor, fp_images: torch.Tensor) -> torch.Tensor:
    """Per-image mean |x − x_fp| (the L1 sibling of qua2's ``mse``)."""
    return (images - fp_images).abs().flatten(1).mean(dim=1)


# ----------------------------------------------------------------------- a method
def absmax_quantize(rows: torch.Tensor, bits: int, shared: dict) -> tuple[torch.Tensor, dict]:
    """Symmetric per-row max-abs rounding with the zero code in the middle of 2^b levels."""
    half = 2 ** (bits - 1) - 1
    scale = rows.abs().amax(dim=1).clamp_min(1e-12) / half
    codes = (rows / scale[:, None]).round().clamp(-half, half) + half
    return codes.to(torch.uint8), {"scale": scale.half()}


def absmax_dequantize(codes: torch.Tensor, params: dict, bits: int,
                      group_size: int | None) -> torch.Tensor:
    half = 2 ** (bits - 1) - 1
    return (codes.float() - half) * params["scale"].float()[:, None]


# ----------------------------------------------------------------------- a surrogate
class ShrunkRidge(RidgeSurrogate):
    """Ridge with a stronger penalty grid: a new surrogate kind in three lines."""

    kind = "shrunk_ridge"

    def __init__(self, encoder: Any = None, alphas: tuple[float, ...] = (10.0, 100.0, 1000.0),
                 random_state: int | None = None) -> None:
        super().__init__(encoder=encoder, alphas=alphas, random_state=random_state)


# ----------------------------------------------------------------------- a family
def load_small_digits(path: Any = None, **options: Any) -> Any:
    """A 'new' family: the embedded digits DiT trained briefly (stands in for any loader)."""
    from qua2.models.digits import load_digits

    return load_digits("digits-dit", path, **options)
