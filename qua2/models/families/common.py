"""What every diffusers family shares: latents, VAE decoding, schedulers, construction.

:class:`DiffusersAdapter` turns one diffusers denoiser plus its scheduler (and optionally its
VAE and whole pipeline) into a :class:`~qua2.models.base.DenoiserAdapter`. A family subclass
says how conditions become forward arguments (:meth:`~DiffusersAdapter.forward_inputs`); the
same method feeds both :meth:`denoise` and :meth:`example_inputs`, so what a tracer sees is
exactly what sampling runs.

Three ways to build one:

* ``Adapter.from_directory(path, **options)`` — a local diffusers pipeline folder (what the
  registry calls);
* ``Adapter.from_pipeline(pipe, **options)`` — an already built pipeline object;
* ``Adapter.from_components(denoiser, scheduler, vae=None, **options)`` — bare modules (no
  VAE: :meth:`generate` returns the final latents; no text encoder: conditions must be
  precomputed :class:`~qua2.models.families.conditions.PromptEmbedding` objects).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from qua2.errors import Qua2Error
from qua2.models.base import CondBatch, DenoiserAdapter, ExampleInputs, config_of
from qua2.models.families.loading import load_pipeline

#: Schedulers that draw fresh noise inside ``step`` (breaking fixed-noise comparisons).
STOCHASTIC_SCHEDULERS = frozenset({
    "DDPMScheduler", "EulerAncestralDiscreteScheduler", "KDPM2AncestralDiscreteScheduler",
    "DPMSolverSDEScheduler", "LCMScheduler", "TCDScheduler", "DDPMWuerstchenScheduler",
})

_Adapter = TypeVar("_Adapter", bound="DiffusersAdapter")


class DiffusersAdapter(DenoiserAdapter):
    """Shared base of the diffusers families (latent diffusion with an optional VAE)."""

    #: Pipeline attribute holding the denoiser: ``"transformer"`` or ``"unet"``.
    denoiser_component: ClassVar[str] = "transformer"
    #: Deterministic scheduler that replaces a stochastic one (DDPM …) of the same config.
    fallback_scheduler: ClassVar[str] = "DDIMScheduler"
    #: Image side in pixels when neither the caller nor the denoiser config gives one.
    default_resolution: ClassVar[int] = 1024

    def __init__(
        self,
        module: nn.Module,
        scheduler: Any,
        *,
        vae: nn.Module | None = None,
        pipeline: Any | None = None,
        resolution: int | Sequence[int] | None = None,
        guidance_scale: float | None = None,
        sampler: str | Any | None = None,
        name: str | None = None,
    ) -> None:
        self.vae = vae.eval() if vae is not None else None
        self.pipeline = pipeline
        self.vae_scale_factor = _vae_scale_factor(vae)
        self.height, self.width = self._resolution(module, resolution)
        if self.height % self.vae_scale_factor or self.width % self.vae_scale_factor:
            raise Qua2Error(
                f"resolution {self.height}×{self.width} is not a multiple of the VAE's "
                f"downscale factor {self.vae_scale_factor}; choose a multiple."
            )
        scheduler = pick_scheduler(scheduler, sampler, self.fallback_scheduler)
        super().__init__(module, scheduler, self._latent_shape(module), name=name)
        if guidance_scale is not None:
            self.default_guidance = float(guidance_scale)

    # ------------------------------------------------------------------- construction
    @classmethod
    def from_components(cls: type[_Adapter], denoiser: nn.Module, scheduler: Any,
                        vae: nn.Module | None = None, **options: Any) -> _Adapter:
        """Wrap already built modules (a denoiser, its scheduler and optionally a VAE)."""
        _check_options(cls, options)
        return cls(denoiser, scheduler, vae=vae, **options)

    @classmethod
    def from_pipeline(cls: type[_Adapter], pipeline: Any, **options: Any) -> _Adapter:
        """Wrap an already built diffusers pipeline (its text encoders are used for prompts)."""
        _check_options(cls, options)
        denoiser = getattr(pipeline, cls.denoiser_component, None)
        if denoiser is None:
            raise Qua2Error(
                f"{type(pipeline).__name__} has no {cls.denoiser_component}; wrap a "
                f"{cls.family} pipeline."
            )
        return cls(denoiser, pipeline.scheduler, vae=getattr(pipeline, "vae", None),
                   pipeline=pipeline, **options)

    @classmethod
    def from_directory(cls: type[_Adapter], path: str | Path | None, *,
                       dtype: torch.dtype | str | None = None,
                       device: torch.device | str | None = None, text_encoders: bool = True,
                       **options: Any) -> _Adapter:
        """Load the ``cls.family`` pipeline saved under ``path`` (a local directory).

        ``dtype`` casts every component (e.g. ``"float16"``), ``device`` moves them (CUDA when
        present), ``text_encoders=False`` skips the text encoders; the remaining ``options``
        go to the adapter (``resolution``, ``guidance_scale``, ``sampler`` …).
        """
        _check_options(cls, options, _DIRECTORY_OPTIONS)
        pipeline = load_pipeline(path, cls.family, dtype=dtype, text_encoders=text_encoders)
        adapter = cls.from_pipeline(pipeline, name=options.pop("name", str(path)), **options)
        return adapter.to(device) if device is not None else adapter

    # ------------------------------------------------------------------- geometry
    def _resolution(self, module: nn.Module,
                    resolution: int | Sequence[int] | None) -> tuple[int, int]:
        if resolution is None:
            sample = getattr(config_of(module), "sample_size", None)
            if sample is None:
                return self.default_resolution, self.default_resolution
            sample = sample if isinstance(sample, (list, tuple)) else (sample, sample)
            return int(sample[0]) * self.vae_scale_factor, int(sample[1]) * self.vae_scale_factor
        if isinstance(resolution, int):
            return resolution, resolution
        height, width = (int(v) for v in resolution)
        return height, width

    def _latent_shape(self, module: nn.Module) -> tuple[int, int, int]:
        """``[C, h, w]`` of the latents the scheduler steps on."""
        channels = int(config_of(module).in_channels)
        return channels, self.height // self.vae_scale_factor, self.width // self.vae_scale_factor

    # ------------------------------------------------------------------- device
    def to(self: _Adapter, device: torch.device | str) -> _Adapter:
        """Move the denoiser, the VAE and any text encoders to ``device``."""
        if self.pipeline is not None:
            self.pipeline.to(device)
        self.module.to(device)
        if self.vae is not None:
            self.vae.to(device)
        return self

    # ------------------------------------------------------------------- the family hook
    def forward_inputs(self, latents: torch.Tensor, t: torch.Tensor,
                       cond: CondBatch) -> ExampleInputs:
        """The denoiser's forward arguments for ``latents`` at timestep ``t`` under ``cond``."""
        raise NotImplementedError

    def model_output(self, raw: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """Turn the raw forward output into what the scheduler expects.

        Denoisers that learn the variance (PixArt, DiT, Hunyuan-DiT) output ``2·C`` channels;
        the sampler uses the first ``C`` (the noise prediction) as the pipelines do.
        """
        if raw.dim() == 4 and raw.shape[1] == 2 * latents.shape[1]:
            return raw[:, : latents.shape[1]]
        return raw

    def example_conditions(self, batch_size: int) -> CondBatch:
        """Valid conditioning for ``batch_size`` samples (used by :meth:`example_inputs`)."""
        raise NotImplementedError

    # ------------------------------------------------------------------- DenoiserAdapter
    def denoise(self, latents: torch.Tensor, t: torch.Tensor, cond: CondBatch) -> torch.Tensor:
        """One denoiser call at timestep ``t``: the output the scheduler steps with."""
        inputs = self.forward_inputs(latents, t, cond)
        raw = self.module(*inputs.args, **inputs.kwargs, return_dict=False)[0]
        return self.model_output(raw, latents)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents → images in [-1, 1] through the VAE; without a VAE the latents themselves."""
        if self.vae is None:
            return latents
        config = config_of(self.vae)
        # The VAE may sit elsewhere than the denoiser (e.g. only the module was moved or cast).
        weight = next(self.vae.parameters())
        z = latents.to(device=weight.device, dtype=weight.dtype) / config.scaling_factor
        if getattr(config, "shift_factor", None) is not None:
            z = z + config.shift_factor
        vae: Any = self.vae  # a diffusers autoencoder (``decode`` is not an nn.Module method)
        return vae.decode(z, return_dict=False)[0]

    @torch.no_grad()
    def example_inputs(self, batch_size: int = 1) -> ExampleInputs:
        """Forward arguments of one mid-schedule denoiser call, on the module's device."""
        latents = self.initial_noise(range(batch_size)).to(self.device, self.dtype)
        scheduler = copy.deepcopy(self.scheduler)
        self.set_timesteps(scheduler, 10)
        t = scheduler.timesteps[len(scheduler.timesteps) // 2]
        return self.forward_inputs(latents, t, self.example_conditions(batch_size))

    @property
    def scheduler_device(self) -> torch.device:
        """Where scheduler tensors live: the module's device, or the CPU for a ``meta`` module
        (full-size architectures traced without weights; some schedulers copy to the CPU)."""
        device = self.device
        return torch.device("cpu") if device.type == "meta" else device

    def set_timesteps(self, scheduler: Any, steps: int) -> None:
        """Prepare ``scheduler`` (a per-call copy) for ``steps`` sampling steps."""
        scheduler.set_timesteps(steps, device=self.scheduler_device)

    def timesteps_for(self, t: torch.Tensor, batch: int) -> torch.Tensor:
        """Scheduler timestep ``t`` as one value per sample, on the module's device."""
        t = torch.as_tensor(t, device=self.device)
        return t.reshape(-1)[:1].expand(batch)


# -------------------------------------------------------------------------- schedulers
def choose_scheduler(scheduler: Any, fallback: str) -> Any:
    """A deterministic copy of ``scheduler``; stochastic ones become ``fallback`` (same config).

    qua2 compares every quantization config against the same initial noise, so the sampler
    must not draw fresh noise at each step (DDPM, ancestral and SDE samplers do).
    """
    if _is_stochastic(scheduler):
        import diffusers

        config = dict(scheduler.config)
        config.pop("stochastic_sampling", None)
        return getattr(diffusers, fallback).from_config(config)
    return copy.deepcopy(scheduler)


def scheduler_named(name: str, like: Any) -> Any:
    """The diffusers scheduler class ``name``, built from the config of scheduler ``like``."""
    import diffusers

    scheduler_class = getattr(diffusers, name, None)
    if scheduler_class is None or not hasattr(scheduler_class, "from_config"):
        raise Qua2Error(
            f"unknown scheduler {name!r}; give a diffusers scheduler class name such as "
            "DDIMScheduler or FlowMatchEulerDiscreteScheduler."
        )
    return scheduler_class.from_config(like.config)


def _is_stochastic(scheduler: Any) -> bool:
    config = getattr(scheduler, "config", {})
    return (
        type(scheduler).__name__ in STOCHASTIC_SCHEDULERS
        or str(config.get("algorithm_type", "")).startswith("sde-")
        or bool(config.get("stochastic_sampling", False))
    )


def pick_scheduler(scheduler: Any, sampler: str | Any | None, fallback: str) -> Any:
    """The sampling scheduler: ``sampler`` (a class name or an object) if given, else a
    deterministic copy of ``scheduler``."""
    if sampler is None:
        return choose_scheduler(scheduler, fallback)
    chosen = scheduler_named(sampler, scheduler) if isinstance(sampler, str) else sampler
    if _is_stochastic(chosen):
        raise Qua2Error(
            f"{type(chosen).__name__} draws fresh noise at every step, which breaks qua2's "
            "fixed-noise comparisons; choose a deterministic scheduler such as DDIMScheduler."
        )
    return chosen


# -------------------------------------------------------------------------- helpers
def _vae_scale_factor(vae: nn.Module | None) -> int:
    """Pixels per latent pixel: 2^(VAE levels − 1); 8 (every SD/PixArt/Flux VAE) without one."""
    if vae is None:
        return 8
    return 2 ** (len(config_of(vae).block_out_channels) - 1)


_DIRECTORY_OPTIONS = frozenset({"dtype", "device", "text_encoders"})
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def _check_options(cls: type[DiffusersAdapter], options: dict[str, Any],
                   extra: frozenset[str] = frozenset()) -> None:
    """Unknown keyword options fail with the list of valid ones (not a TypeError)."""
    valid: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            params = inspect.signature(init).parameters.values()
            valid |= {p.name for p in params if p.kind not in _VARIADIC}
    valid -= {"self", "module", "scheduler", "vae", "pipeline"}
    valid |= extra
    unknown = sorted(set(options) - valid)
    if unknown:
        raise Qua2Error(
            f"unknown option(s) {', '.join(unknown)} for the {cls.family} adapter; valid options: "
            f"{', '.join(sorted(valid))}."
        )
