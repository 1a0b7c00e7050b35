"""One adapter over every denoiser family.

A :class:`DenoiserAdapter` wraps a diffusers denoiser module (a ``*Transformer2DModel`` or
``UNet*Model``) together with what it takes to *use* it: a scheduler, how conditions become
model inputs, how latents become images. Everything that differs between families is a small
override (:meth:`encode_conditions`, :meth:`null_conditions`, :meth:`denoise`, :meth:`decode`);
the sampling loop, the fixed per-seed initial noise and the list of quantizable layers are
shared. The denoiser's own ``forward`` is never rewritten (docs/ARCHITECTURE.md, Conventions).

Common random numbers: the initial noise of seed ``s`` is drawn on the CPU from
``torch.Generator().manual_seed(s)`` whatever the device, so the same seeds give the same
noise everywhere and bit-identical FP images on the same machine.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast

import torch
from torch import nn

# What counts as a weight layer is decided by qua2.quant (the layer below).
from qua2.quant.layers import quantizable_layers

Conditioning = Literal["class", "text"]
CondBatch = dict[str, Any]
_Adapter = TypeVar("_Adapter", bound="DenoiserAdapter")


@dataclass
class ExampleInputs:
    """Positional and keyword arguments that one forward call of the denoiser accepts."""

    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


class DenoiserAdapter:
    """Base adapter: a denoiser module plus scheduler, conditioning and decoding.

    Subclasses set ``family`` and ``conditioning`` and implement :meth:`encode_conditions`,
    :meth:`denoise` and :meth:`example_inputs`; :meth:`decode` defaults to the identity (pixel
    space models) and :meth:`null_conditions` is needed only for classifier-free guidance.
    """

    family: str = "base"
    conditioning: Conditioning = "class"
    #: Guidance used by :meth:`generate` when the caller passes none (1.0 = no CFG).
    default_guidance: float = 1.0

    def __init__(
        self,
        module: nn.Module,
        scheduler: Any,
        latent_shape: Sequence[int],
        name: str | None = None,
    ) -> None:
        self.module = module.eval()
        self.scheduler = scheduler
        self.latent_shape = tuple(int(s) for s in latent_shape)
        self.name = name or self.family

    # ----------------------------------------------------------------- device and layers
    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.module.parameters()).dtype

    def to(self: _Adapter, device: torch.device | str) -> _Adapter:
        self.module.to(device)
        return self

    def place(self, device: torch.device, dtype: torch.dtype) -> None:
        """Put the model where a study runs it: the denoiser on ``device`` in ``dtype``."""
        self.module.to(device=device, dtype=dtype)

    def quantizable_layers(self) -> list[str]:
        """Qualified names of every Linear/Conv weight layer of the denoiser."""
        return quantizable_layers(self.module)

    # ----------------------------------------------------------------- family hooks
    def encode_conditions(self, conditions: Sequence[Any]) -> CondBatch:
        """Turn class labels or prompts into batch-first model inputs (a dict of tensors)."""
        raise NotImplementedError

    def null_conditions(self, n: int) -> CondBatch:
        """The unconditional inputs for classifier-free guidance."""
        raise NotImplementedError(f"{self.family} has no unconditional branch for guidance")

    def denoise(self, latents: torch.Tensor, t: torch.Tensor, cond: CondBatch) -> torch.Tensor:
        """One denoiser call: the model output the scheduler expects (noise, v or flow)."""
        raise NotImplementedError

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents → images in [-1, 1], shape [N, C, H, W]; identity for pixel-space models."""
        return latents

    def example_inputs(self, batch_size: int = 1) -> ExampleInputs:
        """Arguments for one forward call (for tracing); on the module's device."""
        raise NotImplementedError

    # ----------------------------------------------------------------- sampling
    def set_timesteps(self, scheduler: Any, steps: int) -> None:
        """Prepare ``scheduler`` (a per-call copy) for ``steps`` steps; flow models add a shift."""
        scheduler.set_timesteps(steps, device=self.device)

    def initial_noise(self, seeds: Sequence[int]) -> torch.Tensor:
        """Fixed initial latents, one per seed, drawn on the CPU (device-independent)."""
        draws = [
            torch.randn(self.latent_shape, generator=torch.Generator().manual_seed(int(s)))
            for s in seeds
        ]
        return torch.stack(draws)

    def _guided(self, latents: torch.Tensor, t: torch.Tensor, cond: CondBatch,
                uncond: CondBatch | None, scale: float) -> torch.Tensor:
        if uncond is None:
            return self.denoise(latents, t, cond)
        both = {k: _cat(uncond[k], cond[k]) for k in cond}
        out_uncond, out_cond = self.denoise(torch.cat([latents, latents]), t, both).chunk(2)
        return out_uncond + scale * (out_cond - out_uncond)

    @torch.no_grad()
    def generate(
        self,
        conditions: Sequence[Any],
        seeds: Sequence[int],
        steps: int = 20,
        guidance_scale: float | None = None,
        batch_size: int = 256,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Sample one image per (condition, seed) pair with a deterministic sampler.

        Returns float32 images on the CPU in [-1, 1], shape [N, C, H, W]. ``noise`` may be
        passed to reuse already drawn initial latents (common random numbers across configs).
        """
        if len(conditions) != len(seeds):
            raise ValueError(f"got {len(conditions)} conditions for {len(seeds)} seeds")
        scale = self.default_guidance if guidance_scale is None else guidance_scale
        noise = self.initial_noise(seeds) if noise is None else noise
        images = []
        for start in range(0, len(seeds), batch_size):
            chunk = slice(start, start + batch_size)
            images.append(self._sample(list(conditions[chunk]), noise[chunk], steps, scale))
        return torch.cat(images)

    def _sample(self, conditions: list[Any], noise: torch.Tensor, steps: int,
                scale: float) -> torch.Tensor:
        scheduler = copy.deepcopy(self.scheduler)
        self.set_timesteps(scheduler, steps)
        cond = self.encode_conditions(conditions)
        uncond = self.null_conditions(len(conditions)) if scale != 1.0 else None
        latents = noise.to(self.device, self.dtype) * getattr(scheduler, "init_noise_sigma", 1.0)
        for t in scheduler.timesteps:
            model_in = latents
            if hasattr(scheduler, "scale_model_input"):
                model_in = scheduler.scale_model_input(latents, t)
            out = self._guided(model_in, t, cond, uncond, scale)
            latents = scheduler.step(out, t, latents, return_dict=False)[0]
        return self.decode(latents).float().clamp(-1, 1).cpu()


def config_of(module: nn.Module) -> Any:
    """The diffusers config of ``module``: a ``FrozenDict`` whose keys are also attributes.

    (``nn.Module.__getattr__`` is typed ``Tensor | Module``, which hides that.)
    """
    return cast(Any, module).config


def _cat(a: Any, b: Any) -> Any:
    """Concatenate two condition values along the batch (tensors) or keep shared values."""
    if isinstance(a, torch.Tensor):
        return torch.cat([a, b])
    if isinstance(a, dict):
        return {k: _cat(a[k], b[k]) for k in a}
    return a
