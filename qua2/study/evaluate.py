"""Evaluate one configuration: swap cached weights in, generate with fixed noise, score.

Per configuration the only work is (1) copying the cached dequantized weights into the model
(no re-quantization), (2) generating images from the *reference's* initial noise and
conditions, (3) scoring them against real data and against the FP images of the same seeds.
A config whose images contain NaN/Inf, or whose evaluation raises, is recorded as failed with
the reason and the study goes on.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from qua2.errors import Qua2Error
from qua2.specs import QuantConfig
from qua2.study.reference import Reference, get_reference
from qua2.study.scoring import Scorer, build_scorer
from qua2.study.study import Study

if TYPE_CHECKING:
    from qua2.metrics.per_image import ImageScores
    from qua2.quant.cache import OptionCache
    from qua2.study.store import Store


@dataclass
class Evaluation:
    """The outcome of one configuration."""

    metrics: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    avg_bits: float | None = None
    error: str | None = None
    images: torch.Tensor | None = None
    # Per-image arrays of every image the row now has (racing studies: qua2.study.racing).
    ingredients: dict[str, np.ndarray] | None = None

    def store_in(self, store: Store, config_id: str) -> None:
        """Record this outcome as the row's result: failed with its reason, or done (its
        per-image arrays first, so a done row of a racing study always has them)."""
        if self.error:
            store.fail(config_id, self.error, self.timings)
            return
        if self.ingredients is not None:
            from qua2.study.racing import save_ingredients

            save_ingredients(store.path.parent, config_id, self.ingredients)
        store.finish(config_id, self.metrics, self.timings, self.avg_bits)


def objective(study: Study, metrics: dict[str, float], avg_bits: float | None) -> float:
    """The study's primary objective, *higher is better* (Qua²SeDiMo: −FID − λ·avg_bits)."""
    section = study.config.metrics
    value = metrics[section.primary_metric]
    signed = -value if section.lower_is_better else value
    return signed - section.bits_penalty * (avg_bits or 0.0)


class Evaluator:
    """Scores configurations of one study; build once per worker process, reuse for many."""

    def __init__(self, study: Study, cache: OptionCache, reference: Reference | None = None,
                 scorer: Scorer | None = None) -> None:
        self.study = study
        self.cache = cache
        self.reference = reference or get_reference(study, "sampling")
        self.scorer = scorer or build_scorer(study)

    def evaluate(self, config: QuantConfig, keep_images: bool = False, count: int | None = None,
                 previous: dict[str, np.ndarray] | None = None) -> Evaluation:
        """Score ``config`` on the first ``count`` sampling images (default: all of them);
        ``previous`` are the per-image arrays of its first images from an earlier evaluation
        (racing), so only the images after them are generated."""
        from qua2.metrics.per_image import ImageScores
        from qua2.quant.apply import average_bits

        result = Evaluation()
        clock = time.perf_counter
        have = 0 if previous is None else len(next(iter(previous.values())))
        part = self.reference.slice(have, count or len(self.reference.seeds))
        try:
            result.avg_bits = average_bits(config, self.cache)
            started = clock()
            with self.study.quantized(config, self.cache):
                applied = clock()
                images = self.study.generate(part.seeds, noise=part.noise,
                                             conditions=part.conditions)
                generated = clock()
            restored = clock()
            result.timings = {"apply": applied - started, "generate": generated - applied,
                              "restore": restored - generated}
            if not torch.isfinite(images).all():
                result.error = "generated images contain NaN or Inf"
                return result
            scores = self.scorer.image_scores(images, part)
            if previous is not None:
                scores = ImageScores.concat([ImageScores.from_arrays(previous, scores.frechet),
                                             scores])
            result.metrics = scores.aggregate()
            result.metrics["objective"] = objective(self.study, result.metrics, result.avg_bits)
            result.timings["score"] = clock() - restored
            if self.study.config.images.racing:
                result.ingredients = scores.to_arrays()
            if keep_images:
                result.images = images
        except Qua2Error:
            # Bad input or a damaged file of qua2's own: not a property of this configuration,
            # so it must never become a failed row (the caller puts the row back).
            raise
        except Exception as error:  # recorded as a failed config; the study goes on
            result.error = f"{type(error).__name__}: {error}"
            traceback.print_exc()
        return result


def generate_images(study: Study, config: QuantConfig | None, cache: OptionCache,
                    reference: Reference) -> torch.Tensor:
    """Images of ``config`` (``None``: the FP model) for the reference's seeds and noise."""
    if config is None:
        return reference.images
    with study.quantized(config, cache):
        return study.generate(reference.seeds, noise=reference.noise,
                              conditions=reference.conditions)


def candidate_image_scores(study: Study, config: dict | None, cache: OptionCache,
                           scorer: Scorer, reference: Reference) -> ImageScores:
    """Per-image scores of a stored configuration (``None``: FP) on ``reference``'s seeds."""
    quant_config = None if config is None else QuantConfig.from_dict(config)
    return scorer.image_scores(generate_images(study, quant_config, cache, reference), reference)
