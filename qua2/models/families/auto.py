"""``family: auto`` — any diffusers image pipeline, driven through its own ``__call__``.

A hand-written adapter per family re-implements what the pipeline already does (prompt
encoding, latent geometry, timestep shifts, guidance, decoding) and falls behind every time
diffusers adds a family. :class:`PipelineAdapter` instead *calls the pipeline*, and learns
everything it needs from the pipeline object:

* **the denoiser** is the diffusers model among the pipeline's components that is not an
  autoencoder; when there are several (a prior, a second expert), the one called most often
  during a short probe call (:func:`find_denoiser`);
* **what the call takes** comes from the signature of ``__call__``: ``prompt`` (text) or
  ``class_labels`` (class-conditional), ``generator`` (required: it is how the noise is fixed),
  ``height``/``width``, ``guidance_scale``, ``max_sequence_length`` (:class:`CallSignature`);
* **common random numbers**: image ``i`` gets its own ``torch.Generator().manual_seed(seed_i)``
  on the CPU, passed as a list, so diffusers' ``randn_tensor`` draws each sample's initial noise
  (and any noise a stochastic scheduler draws later) from its own seed, on the CPU, whatever the
  batch or the device — the very image a diffusers user gets with that generator;
* **tracing**: a forward pre-hook captures the denoiser's real arguments from the first step of
  a one-image call (:meth:`PipelineAdapter.example_inputs`), so the tracer needs no family code;
* **prompts are encoded once per study**: the pipeline's ``encode_prompt`` is wrapped in a
  bounded cache keyed by its arguments (:class:`PromptCache`), so text encoders run on the
  first configuration only and every later configuration reuses the same embeddings — exactly
  what the pipeline would have computed, without a per-family mapping of ``encode_prompt``'s
  outputs to ``prompt_embeds``-style arguments. Pipelines that encode prompts elsewhere simply
  encode them every time (correct, only slower);
* **activation calibration** captures the denoiser's calls at the sampler steps a calibration
  method draws (:meth:`PipelineAdapter.calls_at_step`, used by
  :mod:`qua2.activations.prepare`), so static activation ranges need no family code either;
* **video** (pipelines that take ``num_frames``; ``frames`` option): a video is scored as the
  strip of its frames side by side, so fidelity metrics cover every frame.

What it does not do: noise real images for ``real`` calibration (that needs the VAE encoder).
"""

from __future__ import annotations

import contextlib
import inspect
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from qua2.errors import Qua2Error
from qua2.models.base import CondBatch, DenoiserAdapter, ExampleInputs
from qua2.models.families.loading import load_any_pipeline

#: Prompt used to probe a text pipeline (tracing, finding the denoiser, checking determinism).
PROBE_PROMPT = "a photograph"
#: Largest total size of cached prompt embeddings before the oldest are dropped.
PROMPT_CACHE_BYTES = 2 * 1024**3


# ----------------------------------------------------------------------------- the signature
@dataclass(frozen=True)
class CallSignature:
    """What a pipeline's ``__call__`` accepts, read from its signature."""

    pipeline: str
    parameters: frozenset[str]
    default_guidance: float | None

    @classmethod
    def of(cls, pipeline: Any) -> CallSignature:
        params = inspect.signature(pipeline.__call__).parameters
        guidance = params.get("guidance_scale")
        default = guidance.default if guidance is not None else None
        return cls(type(pipeline).__name__, frozenset(params),
                   float(default) if isinstance(default, (int, float)) else None)

    @property
    def conditioning(self) -> str:
        """``"text"`` (takes ``prompt``) or ``"class"`` (takes ``class_labels``)."""
        if "prompt" in self.parameters:
            return "text"
        if "class_labels" in self.parameters:
            return "class"
        raise Qua2Error(f"{self.pipeline}.__call__ takes neither prompt nor class_labels, so qua2 "
                        "cannot condition its images; use a text-to-image or class-conditional "
                        "pipeline.")

    def check(self) -> None:
        """Refuse pipelines whose call cannot give fixed, comparable images."""
        for needed, why in (("generator", "fix each image's noise with its own seed"),
                            ("num_inference_steps", "set the number of sampling steps"),
                            ("output_type", "return image tensors")):
            if needed not in self.parameters:
                raise Qua2Error(f"{self.pipeline}.__call__ takes no {needed}, which qua2 needs to "
                                f"{why}; this pipeline cannot be studied with family auto.")
        _ = self.conditioning

    @property
    def video(self) -> bool:
        """Whether the pipeline generates video (it takes ``num_frames``)."""
        return "num_frames" in self.parameters


# ----------------------------------------------------------------------------- prompt cache
class PromptCache:
    """``encode_prompt`` with memory: the same arguments return the embeddings computed first.

    Keys are built from the call's plain arguments (strings, numbers, devices, dtypes, ``None``
    and lists of them); a call that passes tensors (precomputed embeddings) is not cached.
    Values are cloned on the way out, so a pipeline that edits them in place cannot corrupt the
    cache. ``max_bytes`` bounds the memory (least recently used dropped first).
    """

    def __init__(self, encode: Callable[..., Any], max_bytes: int = PROMPT_CACHE_BYTES) -> None:
        self.encode = encode
        self.max_bytes = max_bytes
        self.entries: OrderedDict[str, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        key = _plain_key((args, sorted(kwargs.items())))
        if key is None:
            return self.encode(*args, **kwargs)
        if key in self.entries:
            self.hits += 1
            self.entries.move_to_end(key)
            return _map_tensors(self.entries[key], torch.Tensor.clone)
        self.misses += 1
        value = _map_tensors(self.encode(*args, **kwargs), torch.Tensor.detach)
        self.entries[key] = value
        while len(self.entries) > 1 and sum(map(_nbytes, self.entries.values())) > self.max_bytes:
            self.entries.popitem(last=False)
        return _map_tensors(value, torch.Tensor.clone)


def _plain_key(value: Any) -> str | None:
    """A text key for plain arguments, or ``None`` when a tensor (or other object) is among them."""
    if value is None or isinstance(value, (str, int, float, bool, torch.device, torch.dtype)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        parts = [_plain_key(v) for v in value]
        return None if any(p is None for p in parts) else "(" + ",".join(map(str, parts)) + ")"
    return None


def _map_tensors(value: Any, function: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        return function(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_map_tensors(v, function) for v in value)
    if isinstance(value, dict):
        return {k: _map_tensors(v, function) for k, v in value.items()}
    return value


def _nbytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (list, tuple)):
        return sum(map(_nbytes, value))
    if isinstance(value, dict):
        return sum(map(_nbytes, value.values()))
    return 0


# ----------------------------------------------------------------------------- the denoiser
class _CapturedError(Exception):
    """Raised by the capture hook to stop a probe call once the denoiser's inputs are known."""


def denoiser_candidates(pipeline: Any) -> dict[str, nn.Module]:
    """The pipeline's diffusers models that are not autoencoders (those have ``decode``)."""
    from diffusers import ModelMixin

    # (diffusers' many-mixin bases hide nn.Module from mypy; every ModelMixin is one.)
    return {name: cast(nn.Module, component) for name, component in pipeline.components.items()
            if isinstance(component, ModelMixin) and not hasattr(component, "decode")}


def find_denoiser(pipeline: Any, probe: Callable[[], Any], choice: str | None = None) -> str:
    """The component name of the denoiser: ``choice``, the only candidate, or the most-called."""
    candidates = denoiser_candidates(pipeline)
    name = type(pipeline).__name__
    if choice is not None:
        if choice not in candidates:
            raise Qua2Error(f"{name} has no denoiser component {choice!r}; choose one of "
                            f"{', '.join(sorted(candidates)) or 'none'}.")
        return choice
    if not candidates:
        raise Qua2Error(f"{name} has no diffusers denoiser model among its components "
                        f"({', '.join(sorted(pipeline.components))}); point to a diffusion "
                        "pipeline with a transformer or UNet.")
    if len(candidates) == 1:
        return next(iter(candidates))
    calls = dict.fromkeys(candidates, 0)
    handles = [module.register_forward_pre_hook(_counter(calls, key))
               for key, module in candidates.items()]
    try:
        probe()
    finally:
        for handle in handles:
            handle.remove()
    ranked = sorted(calls, key=lambda key: -calls[key])
    if calls[ranked[0]] == calls[ranked[1]]:
        raise Qua2Error(f"{name} has several denoiser candidates called equally often "
                        f"({', '.join(ranked)}); choose one with model.options.denoiser.")
    return ranked[0]


def _counter(calls: dict[str, int], key: str) -> Callable[..., None]:
    def count(*_: Any) -> None:
        calls[key] += 1
    return count


# ----------------------------------------------------------------------------- the adapter
class PipelineAdapter(DenoiserAdapter):
    """A denoiser adapter that samples by calling its diffusers pipeline (see module docs)."""

    family = "auto"

    def __init__(self, pipeline: Any, *, resolution: int | Sequence[int] | None = None,
                 guidance_scale: float | None = None, sampler: str | None = None,
                 max_sequence_length: int | None = None, denoiser: str | None = None,
                 frames: int | None = None, call_options: dict[str, Any] | None = None,
                 name: str | None = None) -> None:
        self.pipeline = pipeline
        self.signature = CallSignature.of(pipeline)
        self.signature.check()
        self.conditioning = self.signature.conditioning  # type: ignore[assignment]
        if sampler is not None:  # otherwise the pipeline's own scheduler, as published
            pipeline.scheduler = scheduler_named(sampler, pipeline.scheduler)
        self.size = _resolution(resolution)
        self.max_sequence_length = max_sequence_length
        if frames is not None and not self.signature.video:
            raise Qua2Error(f"{self.signature.pipeline} generates images, not video; remove "
                            "model.options.frames.")
        self.frames = frames
        self.call_options = dict(call_options or {})
        if guidance_scale is not None:
            self.default_guidance = float(guidance_scale)
        elif self.signature.default_guidance is not None:
            self.default_guidance = self.signature.default_guidance
        pipeline.set_progress_bar_config(disable=True)
        self.prompt_cache = _install_prompt_cache(pipeline)
        self.denoiser_name = find_denoiser(pipeline, self._probe, denoiser)
        super().__init__(getattr(pipeline, self.denoiser_name), pipeline.scheduler, (),
                         name=name)

    @classmethod
    def from_directory(cls, path: str | Path | None, *, dtype: torch.dtype | str | None = None,
                       device: torch.device | str | None = None, family: str = "auto",
                       expected: str | None = None, **options: Any) -> PipelineAdapter:
        """Load the diffusers pipeline saved under ``path`` (local files only).

        ``family``/``expected``: a named family (the registry passes them) and the pipeline
        class its directory must hold; ``auto`` takes any pipeline class.
        """
        _check_options(options, family)
        pipeline = load_any_pipeline(path, dtype=dtype, family=family, expected=expected)
        if device is not None:
            pipeline.to(device)
        adapter = cls(pipeline, name=options.pop("name", str(path)), **options)
        adapter.family = family
        adapter.check_fixed_noise()
        return adapter

    # ------------------------------------------------------------------ placement
    def to(self, device: torch.device | str) -> PipelineAdapter:
        """Move every component of the pipeline (they must sit together for ``__call__``)."""
        self.pipeline.to(device)
        return self

    def place(self, device: torch.device, dtype: torch.dtype) -> None:
        """Move and cast the whole pipeline (the VAE and text encoders run inside ``__call__``);
        loaded in ``dtype`` already, it is only moved (diffusers warns about casting loaded
        pipelines whose modules must stay in float32)."""
        self.pipeline.to(device)
        if self.dtype != dtype:
            self.pipeline.to(dtype=dtype)

    # ------------------------------------------------------------------ sampling
    def initial_noise(self, seeds: Sequence[int]) -> torch.Tensor:
        """The seeds themselves, ``[N, 1]`` int64: the pipeline draws each image's noise from a
        CPU generator seeded with its seed, so the seed *is* the noise (common random numbers)."""
        return torch.tensor([int(s) for s in seeds], dtype=torch.int64).reshape(-1, 1)

    @torch.no_grad()
    def generate(self, conditions: Sequence[Any], seeds: Sequence[int], steps: int = 20,
                 guidance_scale: float | None = None, batch_size: int = 256,
                 noise: torch.Tensor | None = None) -> torch.Tensor:
        """One image per (condition, seed) through the pipeline; ``[N, C, H, W]`` in [-1, 1]."""
        if len(conditions) != len(seeds):
            raise ValueError(f"got {len(conditions)} conditions for {len(seeds)} seeds")
        if noise is not None and noise.reshape(-1).tolist() != [int(s) for s in seeds]:
            raise ValueError("family auto's noise is the seeds themselves (initial_noise); "
                             "pass the noise made for these seeds")
        scale = self.default_guidance if guidance_scale is None else guidance_scale
        images = [self._call(list(conditions[i:i + batch_size]), list(seeds[i:i + batch_size]),
                             steps, scale) for i in range(0, len(seeds), batch_size)]
        return torch.cat(images)

    def _call(self, conditions: list[Any], seeds: list[int], steps: int,
              scale: float | None) -> torch.Tensor:
        kwargs = self._call_kwargs(conditions, seeds, steps, scale)
        output = self.pipeline(**kwargs)
        return _images_of(output, self.signature.pipeline)

    def _call_kwargs(self, conditions: list[Any], seeds: list[int], steps: int,
                     scale: float | None) -> dict[str, Any]:
        params = self.signature.parameters
        key = "prompt" if self.conditioning == "text" else "class_labels"
        kwargs: dict[str, Any] = {
            key: [str(c) if key == "prompt" else int(c) for c in conditions],
            "num_inference_steps": int(steps), "output_type": "pt",
            "generator": [torch.Generator().manual_seed(int(s)) for s in seeds],
        }
        if scale is not None and "guidance_scale" in params:
            kwargs["guidance_scale"] = float(scale)
        if self.size is not None and "height" in params:
            kwargs["height"], kwargs["width"] = self.size
        if "clean_caption" in params:  # caption cleaning needs bs4 and ftfy, which qua2 lacks
            kwargs["clean_caption"] = False
        if self.frames is not None:
            kwargs["num_frames"] = int(self.frames)
        if self.max_sequence_length is not None and "max_sequence_length" in params:
            kwargs["max_sequence_length"] = self.max_sequence_length
        return {**kwargs, **self.call_options}

    def _probe(self, seed: int = 0, steps: int = 2) -> torch.Tensor:
        """One image of a short call (finding the denoiser, checking the noise is fixed)."""
        condition = PROBE_PROMPT if self.conditioning == "text" else 0
        try:
            return self._call([condition], [seed], steps, self.default_guidance)
        except (ValueError, TypeError, RuntimeError) as error:  # the pipeline refused our call
            reason = str(error).strip().splitlines()[0][:300] if str(error).strip() else \
                type(error).__name__
            raise Qua2Error(f"a one-image call of {self.signature.pipeline} failed ({reason}); "
                            "adjust model.options (resolution, call_options such as "
                            "use_resolution_binning: false).") from error

    def check_fixed_noise(self) -> None:
        """Refuse a pipeline whose images are not a function of their seeds (a sampler that
        draws noise without the generator would make every comparison noisy)."""
        if not torch.equal(self._probe(), self._probe()):
            raise Qua2Error(f"{self.signature.pipeline} gives different images for the same seed, "
                            "so configurations cannot be compared on fixed noise; choose a "
                            "deterministic scheduler with model.options.sampler (e.g. "
                            "DDIMScheduler).")

    # ------------------------------------------------------------------ tracing
    @torch.no_grad()
    def example_inputs(self, batch_size: int = 1) -> ExampleInputs:
        """The denoiser's arguments at the first step of a real pipeline call."""
        captured: list[ExampleInputs] = []

        def capture(_: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            captured.append(ExampleInputs(args, dict(kwargs)))
            raise _CapturedError

        condition = PROBE_PROMPT if self.conditioning == "text" else 0
        handle = self.module.register_forward_pre_hook(capture, with_kwargs=True)
        try:
            with contextlib.suppress(_CapturedError):
                self._call([condition] * batch_size, list(range(batch_size)), 2,
                           self.default_guidance)
        finally:
            handle.remove()
        if not captured:
            raise Qua2Error(f"{self.signature.pipeline} never called its {self.denoiser_name} "
                            "during a sampling call, so it cannot be traced; choose the "
                            "denoiser with model.options.denoiser.")
        return captured[0]

    # ------------------------------------------------------------------ calibration
    @property
    def num_train_timesteps(self) -> int:
        """``T`` of the pipeline's scheduler (1000 when its config does not say)."""
        return int(getattr(self.pipeline.scheduler.config, "num_train_timesteps", 1000))

    def calls_at_step(self, condition: Any, seed: int, steps: int,
                      step: int) -> list[ExampleInputs]:
        """The denoiser's calls during sampler step ``step`` (0 = noisiest) of a one-image
        ``steps``-step FP run; the run stops right after that step.

        Steps are counted on the scheduler's ``step`` (every pipeline calls it once per step,
        however many denoiser calls — e.g. separate guidance branches — a step makes).
        """
        scheduler = self.pipeline.scheduler
        taken = [0]
        captured: list[ExampleInputs] = []
        original = scheduler.step

        def capture(_: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if taken[0] == step:
                captured.append(ExampleInputs(args, dict(kwargs)))

        def counting_step(*args: Any, **kwargs: Any) -> Any:
            out = original(*args, **kwargs)
            taken[0] += 1
            if taken[0] > step:
                raise _CapturedError
            return out

        handle = self.module.register_forward_pre_hook(capture, with_kwargs=True)
        scheduler.step = counting_step  # an instance attribute shadows the method for this run
        try:
            with contextlib.suppress(_CapturedError):
                self._call([condition], [seed], steps, self.default_guidance)
        finally:
            handle.remove()
            del scheduler.step
        return captured

    def sampler_timesteps(self, steps: int) -> torch.Tensor:
        """The timesteps (noisiest first) the pipeline samples ``steps`` steps with."""
        condition = PROBE_PROMPT if self.conditioning == "text" else 0
        self.calls_at_step(condition, 0, steps, 0)  # the call sets the scheduler's timesteps
        return self.pipeline.scheduler.timesteps.detach().cpu().clone()

    # ------------------------------------------------------------------ not available
    def denoise(self, latents: torch.Tensor, t: torch.Tensor, cond: CondBatch) -> torch.Tensor:
        raise Qua2Error("family auto samples through the pipeline's own __call__ and does not "
                        "replay single denoiser calls; capture them with calls_at_step().")


# ----------------------------------------------------------------------------- helpers
_OPTIONS = frozenset({"resolution", "guidance_scale", "sampler", "max_sequence_length",
                      "denoiser", "frames", "call_options", "name"})


def _check_options(options: dict[str, Any], family: str) -> None:
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise Qua2Error(f"unknown option(s) {', '.join(unknown)} for family {family}; valid "
                        f"options: {', '.join(sorted(_OPTIONS | {'dtype', 'device'}))}.")


def _resolution(resolution: int | Sequence[int] | None) -> tuple[int, int] | None:
    if resolution is None:
        return None  # the pipeline's default size
    if isinstance(resolution, int):
        return resolution, resolution
    height, width = (int(v) for v in resolution)
    return height, width


def scheduler_named(name: str, like: Any) -> Any:
    """The diffusers scheduler class ``name``, built from the config of scheduler ``like``.

    Stochastic samplers are fine: they draw their noise from each image's own generator, and
    :meth:`PipelineAdapter.check_fixed_noise` refuses a pipeline where that does not hold.
    """
    import diffusers

    scheduler_class = getattr(diffusers, name, None)
    if scheduler_class is None or not hasattr(scheduler_class, "from_config"):
        raise Qua2Error(f"unknown scheduler {name!r}; give a diffusers scheduler class name such "
                        "as DDIMScheduler or FlowMatchEulerDiscreteScheduler.")
    return scheduler_class.from_config(like.config)


def _install_prompt_cache(pipeline: Any) -> PromptCache | None:
    """Wrap the pipeline's ``encode_prompt`` (an instance attribute shadows the method)."""
    encode = getattr(pipeline, "encode_prompt", None)
    if not callable(encode):
        return None
    if isinstance(encode, PromptCache):
        return encode
    cache = PromptCache(encode)
    pipeline.encode_prompt = cache
    return cache


def _images_of(output: Any, pipeline: str) -> torch.Tensor:
    """The images of a pipeline output as float32 ``[N, C, H, W]`` in [-1, 1] on the CPU.

    A video ``[N, F, C, H, W]`` becomes the strip of its frames side by side, ``[N, C, H, F·W]``,
    so that every per-image metric scores all frames of a video (MSE and PSNR exactly over the
    frames; SSIM's windows straddle the seams between frames, a few columns of each).
    """
    images = getattr(output, "images", None)
    if images is None:
        images = getattr(output, "frames", None)
    if images is None and isinstance(output, (tuple, list)):
        images = output[0]
    if isinstance(images, np.ndarray):  # some pipelines return channels-last arrays for "pt"
        images = torch.from_numpy(images)
        images = images.permute(0, 3, 1, 2) if images.dim() == 4 else images.permute(0, 1, 4, 2, 3)
    if isinstance(images, torch.Tensor) and images.dim() == 5:
        images = torch.cat(images.unbind(1), dim=-1)
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise Qua2Error(f"{pipeline} returned no image batch for output_type='pt' (got "
                        f"{type(images).__name__}); family auto needs a pipeline that returns "
                        "images.")
    return (images.float().cpu() * 2 - 1).clamp(-1, 1)
