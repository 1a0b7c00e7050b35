"""Activation quantization and calibration for diffusion denoisers.

* Quantizers (pure functions): :func:`fake_quant_per_token` (dynamic, Qua²SeDiMo's A6/A8),
  :func:`fake_quant_static` (calibrated per-tensor ranges, PTQ4DM).
* :class:`ActivationSetting` — bits, dynamic/static, calibration method, range objective,
  keep-FP layers, Q/K/V and softmax bit-widths, timestep groups, MixDQ's BOS-aware K/V.
* :func:`quantized_activations` — context manager installing hooks (and a wrapping attention
  processor for the softmax output); removes everything on exit. Composes with
  ``qua2.quant`` weight quantization.
* Calibration: :func:`calibration_set` (NDTC, single-step, uniform, real data; cached as
  safetensors) and :func:`calibrate_ranges` (L_p / MSE / L1 / cosine / KL range search).
* Files by what they do: ``calibration_sets`` (drawing and storing calibration inputs),
  ``range_fitting`` (observing a set and fitting static ranges), ``range_search`` (the range
  criterion), ``ranges`` (fitted ranges on disk), ``quantizers``, ``sites``, ``hooks``,
  ``attention``, ``setting``, ``prepare``.
* :func:`prepare_activations` — what a study calls once: calibrate (cached) and get a
  context to apply on top of every weight configuration.

Timestep convention: ``t`` is the scheduler's training timestep as the denoiser receives it,
``t = 0`` clean (x₀), ``t = T - 1`` pure noise. See docs/activations.md.
"""

from qua2.activations.calibration_sets import (
    NDTC_MEAN,
    NDTC_STD,
    CalibrationSet,
    build_calibration_set,
    calibration_set,
    draw_step_indices,
)
from qua2.activations.hooks import ActivationHandle, observing, quantized_activations
from qua2.activations.prepare import PreparedActivations, first_last_layers, prepare_activations
from qua2.activations.quantizers import fake_quant, fake_quant_per_token, fake_quant_static
from qua2.activations.range_fitting import RangeObserver, calibrate_module, calibrate_ranges
from qua2.activations.range_search import OBJECTIVES, range_errors, search_range
from qua2.activations.ranges import ActivationRanges, group_edges, timestep_group
from qua2.activations.setting import CALIBRATION_METHODS, MODES, ActivationSetting
from qua2.activations.sites import Site, attention_modules, plan_sites

__all__ = [
    "CALIBRATION_METHODS",
    "MODES",
    "NDTC_MEAN",
    "NDTC_STD",
    "OBJECTIVES",
    "ActivationHandle",
    "ActivationRanges",
    "ActivationSetting",
    "CalibrationSet",
    "PreparedActivations",
    "RangeObserver",
    "Site",
    "attention_modules",
    "build_calibration_set",
    "calibrate_module",
    "calibrate_ranges",
    "calibration_set",
    "draw_step_indices",
    "fake_quant",
    "fake_quant_per_token",
    "fake_quant_static",
    "first_last_layers",
    "group_edges",
    "observing",
    "plan_sites",
    "prepare_activations",
    "quantized_activations",
    "range_errors",
    "search_range",
    "timestep_group",
]
