"""One call for a study: turn an :class:`ActivationSetting` into a reusable quantization context.

A study applies the same activation setting on top of every weight configuration, so the
(static) ranges are calibrated once on the FP model and reused::

    acts = prepare_activations(adapter, setting, conditions=labels, cache_dir=study / "calib")
    with qua2.quant.quantized(adapter.module, config, cache), acts.apply(adapter.module):
        images = adapter.generate(labels, seeds)

Calibrating once on the FP model, not per weight configuration (PTQ4DM's reconstruction-based
pipeline calibrates with quantized weights), keeps a 500-configuration study at one
calibration. Both the calibration set and the ranges are cached in ``cache_dir`` (safetensors),
keyed by everything they depend on.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from qua2.activations.calibration_sets import (
    calibration_set,
    content_digest,
    draw_step_indices,
    module_fingerprint,
)
from qua2.activations.hooks import ActivationHandle, quantized_activations
from qua2.activations.range_fitting import calibrate_module, calibrate_ranges
from qua2.activations.ranges import ActivationRanges
from qua2.activations.setting import ActivationSetting
from qua2.errors import Qua2Error
from qua2.models.base import DenoiserAdapter, ExampleInputs

if TYPE_CHECKING:
    from qua2.models.families.auto import PipelineAdapter


@dataclass
class PreparedActivations:
    """A setting with its layers and (static) ranges, ready to apply to the module."""

    setting: ActivationSetting
    layers: list[str] | None = None
    ranges: ActivationRanges | None = None

    @property
    def label(self) -> str:
        return self.setting.label

    def apply(self, module: nn.Module) -> AbstractContextManager[ActivationHandle]:
        """The context that quantizes ``module``'s activations (see ``quantized_activations``)."""
        return quantized_activations(module, self.layers, self.setting, self.ranges)


def prepare_activations(adapter: DenoiserAdapter, setting: ActivationSetting, *,
                        layers: Sequence[str] | None = None,
                        conditions: Sequence[Any] | None = None,
                        cache_dir: str | Path | None = None, steps: int = 20, seed: int = 0,
                        real_images: torch.Tensor | None = None,
                        batch_size: int = 64) -> PreparedActivations:
    """Calibrate ``setting`` for ``adapter`` if it is static (cached); dynamic needs nothing.

    ``conditions`` are the class labels or prompts the calibration samples use (for
    ``"real"``: the labels of ``real_images``); ``steps`` is the sampler's step count.
    """
    layers = None if layers is None else list(layers)
    if setting.mode == "dynamic":
        return PreparedActivations(setting, layers)
    if not conditions:
        raise Qua2Error("static activation calibration needs conditions (class labels or "
                        "prompts) for its calibration samples.")
    key: dict[str, Any] = {"setting": setting.to_dict(), "layers": layers, "seed": seed}
    if hasattr(adapter, "calls_at_step"):  # pipeline-driven adapters (diffusers families)
        # Static ranges from the denoiser calls the pipeline makes.
        key.update(steps=steps, conditions=[str(c) for c in conditions])

        pipe = cast("PipelineAdapter", adapter)

        def calibrate() -> ActivationRanges:
            calls = pipeline_calibration_calls(pipe, setting.calibration or "", conditions,
                                               size=setting.calibration_size, seed=seed,
                                               steps=steps)
            return calibrate_module(pipe.module, setting, calls, layers,
                                    num_train_timesteps=pipe.num_train_timesteps, seed=seed)
    else:
        calib = calibration_set(adapter, setting.calibration or "", conditions,
                                cache_dir=cache_dir, size=setting.calibration_size, seed=seed,
                                steps=steps, real_images=real_images, batch_size=batch_size)
        key["calib"] = content_digest(calib.inputs)

        def calibrate() -> ActivationRanges:
            return calibrate_ranges(adapter, calib, setting, layers, batch_size=batch_size,
                                    seed=seed)
    path = None
    if cache_dir is not None:
        key["model"] = module_fingerprint(adapter.module)
        path = Path(cache_dir) / f"ranges-{setting.label}-{content_digest(key)}.safetensors"
        if path.exists():
            return PreparedActivations(setting, layers, ActivationRanges.load(path))
    ranges = calibrate()
    if path is not None:
        ranges.save(path)
    return PreparedActivations(setting, layers, ranges)


@torch.no_grad()
def pipeline_calibration_calls(adapter: PipelineAdapter, method: str, conditions: Sequence[Any], *,
                               size: int, seed: int, steps: int) -> list[ExampleInputs]:
    """Denoiser calls of ``size`` FP samples of a pipeline-driven adapter, each captured at the
    sampler step ``method`` draws for it.

    The steps are drawn as for replayed calibration sets (PTQ4DM's NDTC, 2406.11100's first
    step, or uniform: :func:`~qua2.activations.calibration_sets.draw_step_indices`), but the
    inputs are what the pipeline really feeds its denoiser — both guidance branches included.
    Each sample has its own seed drawn from ``seed``, apart from the study's image seeds.
    """
    if method == "real":
        raise Qua2Error("diffusers pipelines calibrate on their own sampling trajectories; "
                        "noising real images needs the VAE encoder, so choose ndtc, uniform or "
                        "single_step as activations.calibration.")
    gen = torch.Generator().manual_seed(int(seed))
    picks = draw_step_indices(method, size, adapter.sampler_timesteps(steps),
                              adapter.num_train_timesteps, gen)
    seeds = torch.randint(0, 2**31 - 1, (size,), generator=gen).tolist()
    calls: list[ExampleInputs] = []
    for i, (sample_seed, step) in enumerate(zip(seeds, picks.tolist())):
        calls += adapter.calls_at_step(conditions[i % len(conditions)], sample_seed, steps, step)
    return calls


@torch.no_grad()
def first_last_layers(module: nn.Module, example: ExampleInputs) -> list[str]:
    """The input and output layers of the denoiser, by execution on ``example``.

    PTQ4DM keeps these at high precision; pass the result as ``keep_fp``. The *input* layer is
    the first Linear/Conv that consumes the latent itself (``conv_in``, DiT's patch embedding)
    — not simply the first one executed, since U-Nets run their timestep MLP before
    ``conv_in``; the *output* layer is the last one executed.
    """
    from qua2.quant.layers import QUANTIZABLE_TYPES

    latent = example.args[0] if example.args else example.kwargs.get(
        "sample", example.kwargs.get("hidden_states"))
    order: list[tuple[str, bool]] = []

    def record(name: str) -> Any:
        return lambda _m, args: order.append((name, bool(args) and args[0] is latent))

    handles = [sub.register_forward_pre_hook(record(name))
               for name, sub in module.named_modules() if isinstance(sub, QUANTIZABLE_TYPES)]
    try:
        module(*example.args, **example.kwargs)
    finally:
        for handle in handles:
            handle.remove()
    if not order:
        raise Qua2Error("the module ran no Linear/Conv layer on the example inputs.")
    first = next((name for name, on_latent in order if on_latent), order[0][0])
    return list(dict.fromkeys([first, order[-1][0]]))
