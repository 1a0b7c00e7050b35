"""Which submodules of a denoiser are weight layers qua2 quantizes: Linear and Conv."""

from __future__ import annotations

from torch import nn

QUANTIZABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def quantizable_layers(module: nn.Module) -> list[str]:
    """Qualified names of every Linear/Conv layer of ``module``, in registration order."""
    return [name for name, sub in module.named_modules() if isinstance(sub, QUANTIZABLE_TYPES)]
