"""Real evaluation of chosen configurations on held-out seeds, with bootstrap intervals.

Candidates found by search are scored on the study's *verification* seeds, which were never
used while sampling configurations or fitting surrogates, with more images than during
sampling. Every configuration uses the same seeds and conditions (common random numbers), and
the bootstrap resamples the *same* image indices for every configuration, so differences
between configurations are paired (Efron & Tibshirani, 1993, percentile intervals).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qua2.specs import QuantConfig
from qua2.study.reference import Reference, get_reference
from qua2.study.scoring import build_scorer
from qua2.study.study import Study

#: Metrics whose bootstrap intervals are reported.
INTERVAL_METRICS = ("digits_fid", "fid", "class_accuracy", "clip_score", "psnr", "ssim")


@dataclass
class Verified:
    """One verified configuration: point estimates and percentile intervals per metric."""

    name: str
    kind: str
    avg_bits: float | None
    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "avg_bits": self.avg_bits,
                "metrics": self.metrics,
                "intervals": {k: list(v) for k, v in self.intervals.items()}}


def bootstrap_indices(count: int, rounds: int, seed: int) -> np.ndarray:
    """``[rounds, count]`` resampled image indices, shared by every configuration."""
    return np.random.default_rng(seed).integers(0, count, size=(rounds, count))


def _subset(reference: Reference, index: np.ndarray) -> Reference:
    picked = torch.as_tensor(index)
    return Reference(reference.images[picked], reference.noise[picked],
                     [reference.seeds[i] for i in index],
                     [reference.conditions[i] for i in index])


def score_with_intervals(scorer: Any, images: torch.Tensor, reference: Reference,
                         resamples: np.ndarray, level: float = 0.95
                         ) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """Metrics of all images, and percentile intervals over the bootstrap resamples."""
    metrics = scorer.score(images, reference)
    draws: dict[str, list[float]] = {k: [] for k in metrics if k in INTERVAL_METRICS}
    for index in resamples:
        sample = scorer.score(images[torch.as_tensor(index)], _subset(reference, index))
        for key in draws:
            draws[key].append(sample[key])
    tail = (1 - level) / 2 * 100
    intervals = {k: (float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail)))
                 for k, v in draws.items() if np.all(np.isfinite(v))}
    return metrics, intervals


def verify(study: Study, candidates: Mapping[str, tuple[str, QuantConfig | None]],
           cache: Any, rounds: int = 200, seed: int = 0) -> list[Verified]:
    """Evaluate ``{name: (kind, config)}`` on the verification seeds (``None`` = FP model)."""
    from qua2.quant import average_bits

    reference = get_reference(study, "verification")
    scorer = build_scorer(study)
    resamples = bootstrap_indices(len(reference.seeds), rounds, seed)
    results = []
    for name, (kind, config) in candidates.items():
        if config is None:
            images, bits = reference.images, None
        else:
            with study.quantized(config, cache):
                images = study.generate(reference.seeds, noise=reference.noise)
            bits = average_bits(config, cache)
        metrics, intervals = score_with_intervals(scorer, images, reference, resamples)
        results.append(Verified(name, kind, bits, metrics, intervals))
    return results


def save_verified(results: list[Verified], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([r.to_dict() for r in results], indent=2))
