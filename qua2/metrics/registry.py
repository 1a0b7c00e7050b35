"""The metric registry: each metric's name, direction and inputs, declared once, as data.

The study validator (is ``metrics.primary`` a metric this study can compute?), the objective's
sign, surrogate targets and reports read these specs; nothing else restates a metric's
direction. This module imports nothing heavy, so a study file can be checked in milliseconds.
Which metrics a study can compute depends on what it has:

* ``digits`` — the embedded digits classifier (digits families only);
* ``labels`` / ``prompts`` — class-conditioned or text-conditioned images;
* ``reference_images`` — a folder of real images (``metrics.reference_images``) for FID;
* ``clip`` — a CLIP model for prompt adherence (``metrics.clip_model`` or ``$QUA2_CLIP_MODEL``).

Fidelity metrics (vs the FP images of the same seeds) need nothing and work for any model.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MetricSpec:
    """One metric: whether lower is better and which inputs it needs (see module docstring).

    ``per_image`` (optional) makes a *paired* metric computable by every study without code
    elsewhere: ``f(images, fp_images) -> [N]`` tensor of per-image values, given as
    ``"module:function"`` or the function itself; the metric is their mean, and bootstrap
    intervals resample those values.
    """

    name: str
    lower_is_better: bool
    needs: frozenset[str]
    summary: str
    per_image: str | Callable[..., Any] | None = None

    def per_image_function(self) -> Callable[..., Any]:
        if self.per_image is None or callable(self.per_image):
            return self.per_image  # type: ignore[return-value]
        module, name = self.per_image.split(":")
        return getattr(importlib.import_module(module), name)


METRICS: dict[str, MetricSpec] = {}


def register_metric(spec: MetricSpec) -> MetricSpec:
    """Add (or replace) a metric; its name is what ``metrics.primary`` and targets use."""
    METRICS[spec.name] = spec
    return spec


def _builtin(name: str, lower: bool, needs: set[str], summary: str,
             per_image: str | None = None) -> None:
    register_metric(MetricSpec(name, lower, frozenset(needs), summary, per_image))


_builtin("digits_fid", True, {"digits"}, "Fréchet distance of digits-classifier features")
_builtin("class_accuracy", False, {"digits", "labels"}, "share of images classified as their label")
_builtin("fid", True, {"reference_images"}, "Inception FID vs real images (Heusel et al., 2017)")
_builtin("clip_score", False, {"prompts", "clip"}, "CLIP score of image vs prompt (Hessel 2021)")
_builtin("psnr", False, set(), "PSNR in dB vs the FP images of the same seeds")
_builtin("ssim", False, set(), "SSIM vs the FP images of the same seeds (Wang et al., 2004)",
         "qua2.metrics.fidelity:ssim_per_image")
_builtin("mse", True, set(), "mean squared pixel error vs the FP images",
         "qua2.metrics.fidelity:mse_per_image")
#: Not a metric of images but of the study: higher is better by construction.
_builtin("objective", False, set(), "the study's objective (−primary − λ·bits, higher better)")


def get_metric(name: str) -> MetricSpec:
    """The registered metric ``name``; an unknown name raises a one-sentence error."""
    from qua2.errors import Qua2Error

    if name not in METRICS:
        raise Qua2Error(f"unknown metric {name!r}; choose one of {', '.join(sorted(METRICS))}.")
    return METRICS[name]


def higher_is_better(name: str) -> bool:
    """Direction of a recorded metric (unknown names: higher is better, e.g. sqnr)."""
    spec = METRICS.get(name)
    return True if spec is None else not spec.lower_is_better


def available_metrics(has: set[str]) -> list[str]:
    """The metric names a study with the inputs ``has`` can compute (objective excluded)."""
    return sorted(n for n, s in METRICS.items() if n != "objective" and s.needs <= has)
