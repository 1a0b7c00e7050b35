"""Cross-key rules of a study file, checked when it is read, before any work starts.

:mod:`qua2.study.config` checks each key's type; this module checks what needs more than one
key or a registry: the family, the method names and the primary metric against their
registries, label ranges, seed ranges that must not overlap, devices, thread counts. A study
that passes here does not fail hours later on a name or a range (issue: bad input is validated
once, up front). Checks that need the file system (model directory, prompt file, metric
weights) are in :func:`check_study_paths`, run by ``qua2 run`` before its first stage, so that
``qua2 status`` still opens a study whose inputs moved.
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING

from qua2.errors import Qua2Error

if TYPE_CHECKING:
    from qua2.study.config import ExecutorSection, StudyConfig

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def validate_study_config(config: StudyConfig) -> None:
    """Every registry name and cross-key rule of ``config``; one sentence on the first error."""
    _check_family(config)
    _check_methods(config)
    _check_metrics(config)
    _check_conditions(config)
    _check_seeds(config)
    _check_runtime(config)
    _check_surrogates(config)
    _check_design(config)


def _check_design(config: StudyConfig) -> None:
    """``design`` and ``images``: counts that fit the study, shares and rates in range."""
    images, design = config.images, config.design
    if images.racing and not 2 <= images.min <= config.images_per_config:
        raise Qua2Error(f"'images.min' must be between 2 and images_per_config "
                        f"({config.images_per_config}), got {images.min}.")
    if not 0.0 < images.error_rate < 0.5:
        raise Qua2Error(f"'images.error_rate' must be between 0 and 0.5 (the chance of stopping "
                        f"a configuration that is not beaten), got {images.error_rate}.")
    if design.kind != "sequential":
        return
    total = config.config_sampler.num_configs
    if design.initial is not None and not 2 <= design.initial <= total:
        raise Qua2Error(f"'design.initial' must be between 2 and config_sampler.num_configs "
                        f"({total}), got {design.initial}.")
    if design.batch < 1:
        raise Qua2Error(f"'design.batch' must be at least 1, got {design.batch}.")
    if not 0.0 < design.random_share <= 1.0:
        raise Qua2Error(f"'design.random_share' must be in (0, 1] (random rows keep the "
                        f"explanations and held-out ρ unbiased), got {design.random_share}.")
    if not (math.isfinite(design.optimism) and design.optimism >= 0):
        raise Qua2Error(f"'design.optimism' must be a finite number ≥ 0, got "
                        f"{design.optimism}.")


def _check_surrogates(config: StudyConfig) -> None:
    from qua2.surrogates.registry import SURROGATES

    kinds = config.pipeline.surrogates
    if not kinds:
        raise Qua2Error(f"'pipeline.surrogates' must name at least one of "
                        f"{', '.join(SURROGATES)}.")
    unknown = [k for k in kinds if k not in SURROGATES]
    if unknown:
        raise Qua2Error(f"unknown surrogate {unknown[0]!r} in pipeline.surrogates; choose from "
                        f"{', '.join(SURROGATES)}.")
    members = config.pipeline.search_ensemble
    if members < 0 or members == 1:  # one member has no spread: say 0 for the surrogate alone
        raise Qua2Error(f"'pipeline.search_ensemble' must be 0 (the fitted surrogate alone) or "
                        f"at least 2 members, got {members}.")
    pessimism = config.pipeline.search_pessimism
    if not (math.isfinite(pessimism) and pessimism >= 0):
        raise Qua2Error(f"'pipeline.search_pessimism' must be a finite number ≥ 0 (standard "
                        f"deviations of the ensemble subtracted), got {pessimism}.")


def _check_family(config: StudyConfig) -> None:
    from qua2.models.registry import FAMILIES

    family = config.model.family
    if family not in FAMILIES:
        raise Qua2Error(f"unknown model family {family!r} in model.family; choose one of "
                        f"{', '.join(sorted(FAMILIES))}.")
    if not _DEVICE.match(config.model.device):
        raise Qua2Error(f"model.device {config.model.device!r} is not a device; use auto, cpu, "
                        "cuda or cuda:N.")


def _check_methods(config: StudyConfig) -> None:
    from qua2.quant.methods import METHODS

    for method in config.search_space.methods or []:
        if method not in METHODS:
            raise Qua2Error(f"unknown quantization method {method!r} in search_space.methods; "
                            f"choose from {', '.join(sorted(METHODS))}.")


def _study_inputs(config: StudyConfig) -> set[str]:
    """What the study has for its metrics (see :mod:`qua2.metrics.registry`)."""
    has = {"labels" if config.conditions.kind == "class" else "prompts"}
    from qua2.models.registry import get_family

    if get_family(config.model.family).scoring == "embedded":
        has.add("digits")
    if config.metrics.reference_images:
        has.add("reference_images")
    if config.conditions.kind == "text":
        has.add("clip")  # a CLIP path may also come from $QUA2_CLIP_MODEL at scoring time
    return has


def _check_metrics(config: StudyConfig) -> None:
    from qua2.metrics.registry import METRICS, available_metrics
    from qua2.models.registry import get_family

    section = config.metrics
    if section.primary is None:
        default = get_family(config.model.family).default_primary(
            bool(section.reference_images))
        object.__setattr__(section, "primary", default)
    primary = section.primary
    if primary not in METRICS or primary == "objective":
        known = ", ".join(n for n in sorted(METRICS) if n != "objective")
        raise Qua2Error(f"unknown metric {primary!r} in metrics.primary; choose one of {known}.")
    usable = available_metrics(_study_inputs(config))
    if primary not in usable:
        missing = ", ".join(sorted(METRICS[primary].needs - _study_inputs(config)))
        raise Qua2Error(f"metrics.primary {primary!r} needs {missing}, which this study lacks; "
                        f"use one of {', '.join(usable)}.")
    lower = METRICS[primary].lower_is_better
    if section.lower_is_better is None:
        object.__setattr__(section, "lower_is_better", lower)
    elif section.lower_is_better != lower:
        word = "lower" if lower else "higher"
        raise Qua2Error(f"metrics.lower_is_better is {section.lower_is_better} but {word} "
                        f"{primary} is better; remove the key or set it to {lower}.")
    if not math.isfinite(section.bits_penalty):
        raise Qua2Error(f"metrics.bits_penalty must be a finite number, "
                        f"got {section.bits_penalty}.")


def _check_conditions(config: StudyConfig) -> None:
    section = config.conditions
    if section.kind == "text" and not section.prompts_file:
        raise Qua2Error("conditions.kind is 'text' but conditions.prompts_file is not set; "
                        "give a file with one prompt per line.")
    if section.num_classes < 1:
        raise Qua2Error(f"conditions.num_classes must be at least 1, got {section.num_classes}.")
    if section.labels is not None:
        if not section.labels:
            raise Qua2Error("conditions.labels is an empty list; remove it to use every class.")
        bad = [label for label in section.labels if not 0 <= label < section.num_classes]
        if bad:
            raise Qua2Error(f"conditions.labels has {bad[0]}, outside 0 … "
                            f"{section.num_classes - 1} (conditions.num_classes).")


def _check_seeds(config: StudyConfig) -> None:
    """Sampling, selection and verification seeds must be three disjoint ranges.

    Choosing among candidates on the images that then verify the choice reports the winner of
    a noisy contest as if it were measured fresh: an optimistic bias (issue 19).
    """
    seeds = config.seeds
    counts = {"sampling": config.images_per_config, "selection": config.selection_images,
              "verification": config.verification_images}
    starts = {f"seeds.{name}": getattr(seeds, name) for name in counts}
    for key, value in {**starts, "config_sampler.seed": config.config_sampler.seed}.items():
        if value < 0:
            raise Qua2Error(f"{key} must be ≥ 0, got {value}.")
    if config.selection_images < 0:
        raise Qua2Error(f"'selection_images' must be ≥ 0 (0: the surrogate chooses), got "
                        f"{config.selection_images}.")
    ranges = {name: range(getattr(seeds, name), getattr(seeds, name) + count)
              for name, count in counts.items()}
    for (first, a), (second, b) in itertools.combinations(ranges.items(), 2):
        if a and b and a.start < b.stop and b.start < a.stop:
            raise Qua2Error(
                f"the {first} seeds {a.start}…{a.stop - 1} overlap the {second} seeds "
                f"{b.start}…{b.stop - 1}; move seeds.{second} past them (sampling, "
                "selection and verification must use different images).")


def _check_runtime(config: StudyConfig) -> None:
    check_executor(config.executor)
    scale = config.sampler.guidance_scale
    if scale is not None and not (math.isfinite(scale) and scale >= 0):
        raise Qua2Error(f"sampler.guidance_scale must be a number ≥ 0 (or null), got {scale}.")
    if not config.name.strip():
        raise Qua2Error("'name' must not be empty; give the study a label.")


_RAY_ADDRESS = re.compile(r"^(auto|(ray://)?[A-Za-z0-9.\-\[\]:]+:\d+)$")


def check_executor(executor: ExecutorSection) -> None:
    """The ``executor`` section's rules (also applied to command-line overrides)."""
    cpus = executor.cpus_per_worker
    if cpus is not None and cpus < 1:
        raise Qua2Error(f"executor.cpus_per_worker must be at least 1 (or null), got {cpus}.")
    gpus = executor.gpus_per_worker
    if gpus is not None and not (math.isfinite(gpus) and gpus >= 0):
        raise Qua2Error(f"executor.gpus_per_worker must be a number ≥ 0 (or null), got {gpus}.")
    if executor.kind == "local":
        for key in ("address", "gpus_per_worker"):
            if getattr(executor, key) is not None:
                raise Qua2Error(f"executor.{key} is used only by the Ray executor; remove it or "
                                "set executor.kind: ray (--executor ray).")
    if executor.address is not None and not _RAY_ADDRESS.match(executor.address):
        raise Qua2Error(f"executor.address {executor.address!r} is not a Ray address; use auto, "
                        "HOST:PORT or ray://HOST:PORT (or null for a Ray instance here).")


def check_study_paths(config: StudyConfig) -> None:
    """Files and loader options a study needs, checked before ``qua2 run`` starts working."""
    model = config.model
    if model.path is not None and not Path(model.path).exists():
        raise Qua2Error(f"model.path {model.path} does not exist; point it at a local "
                        "diffusers directory.")
    from qua2.models.registry import get_family

    if model.path is None and get_family(model.family).needs_path:
        raise Qua2Error(f"model family {model.family!r} needs model.path, a local diffusers "
                        "directory (nothing is downloaded).")
    conditions = config.conditions
    if conditions.prompts_file:
        if not Path(conditions.prompts_file).is_file():
            raise Qua2Error(f"conditions.prompts_file {conditions.prompts_file} does not exist.")
        from qua2.io import read_text

        text = read_text(conditions.prompts_file, "give a UTF-8 text file, one prompt a line")
        if not text.strip():
            raise Qua2Error(f"conditions.prompts_file {conditions.prompts_file} holds no "
                            "prompts; write one prompt a line.")
    metrics = config.metrics
    for key in ("reference_images", "inception_weights", "clip_model"):
        value = getattr(metrics, key)
        if value and not Path(value).exists():
            raise Qua2Error(f"metrics.{key} {value} does not exist; give a local path.")
