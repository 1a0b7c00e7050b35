"""Activation quantization and calibration for diffusion denoisers.

:class:`ActivationSetting` says what to quantize (bits, dynamic or static, calibration method,
range objective, keep-FP layers, Q/K/V and softmax bit-widths, timestep groups, MixDQ's
BOS-aware K/V); :func:`quantized_activations` installs the hooks (and a wrapping attention
processor for the softmax output) and removes everything on exit, composing with ``qua2.quant``
weight quantization. :func:`calibration_set` / :func:`build_calibration_set` draw calibration
inputs (NDTC, single-step, uniform, real data; cached as safetensors), :func:`calibrate_ranges`
fits static ranges (L_p / MSE / L1 / cosine / KL range search) into :class:`ActivationRanges`,
and :func:`prepare_activations` is what a study calls once: calibrate (cached) and get a context
to apply on top of every weight configuration.

Modules by what they do: ``quantizers`` (the pure fake-quant functions), ``sites``, ``hooks``,
``attention``, ``setting``, ``calibration_sets``, ``range_fitting``, ``range_search``,
``ranges``, ``prepare``.

Timestep convention: ``t`` is the scheduler's training timestep as the denoiser receives it,
``t = 0`` clean (x₀), ``t = T - 1`` pure noise. See docs/activations.md.
"""

from __future__ import annotations

from qua2.lazy import lazy_exports

#: The package's public names → their defining modules, each imported on first use.
_EXPORTS = {
    "ActivationSetting": "qua2.activations.setting",
    "quantized_activations": "qua2.activations.hooks",
    "CalibrationSet": "qua2.activations.calibration_sets",
    "calibration_set": "qua2.activations.calibration_sets",
    "build_calibration_set": "qua2.activations.calibration_sets",
    "calibrate_ranges": "qua2.activations.range_fitting",
    "ActivationRanges": "qua2.activations.ranges",
    "PreparedActivations": "qua2.activations.prepare",
    "prepare_activations": "qua2.activations.prepare",
    "first_last_layers": "qua2.activations.prepare",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
