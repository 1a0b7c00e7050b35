"""Real evaluation of chosen configurations on held-out seeds, with bootstrap intervals.

Candidates found by search are scored on the study's *verification* seeds, which were never
used while sampling configurations or fitting surrogates, with more images than during
sampling. Every configuration uses the same seeds and conditions (common random numbers), and
the bootstrap resamples the *same* image indices for every configuration, so differences
between configurations are paired (Efron & Tibshirani, 1993).

Intervals are percentile intervals for metrics that are means over images. Fréchet distances
are biased upward at finite sample size (Chong & Forsyth, 2020), and a resample with repeats
holds fewer distinct images, so its distance is larger still: the plain percentile interval
of FID sits almost entirely above the point estimate. For them qua2 shifts the percentile
interval by the bootstrap estimate of that extra bias, mean(θ̂*) − θ̂ (Efron & Tibshirani,
1993, §10.2), so the interval describes the distance at the verified number of images — the
quantity every row of a table is measured at — and is centred where it belongs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qua2.specs import QuantConfig
from qua2.study.reference import Reference, get_reference
from qua2.study.scoring import build_scorer
from qua2.study.study import Study

#: Metrics whose bootstrap intervals (and draws, for paired comparisons) are kept.
INTERVAL_METRICS = ("digits_fid", "fid", "fd_clip", "class_accuracy", "clip_score", "psnr",
                    "ssim", "mse")
#: Biased distribution metrics: bias-shifted intervals (see the module docstring).
FRECHET_METRICS = ("digits_fid", "fid", "fd_clip")
#: Part of a verification's setting (with INTERVAL_METRICS): a progress file written under
#: another method or metric list is not reused.
INTERVAL_METHOD = "percentile; bias-shifted for Fréchet distances"


@dataclass
class Verified:
    """One verified configuration: point estimates, 95% intervals and bootstrap draws."""

    name: str
    kind: str
    avg_bits: float | None
    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    draws: dict[str, list[float]] = field(default_factory=dict)  # metric → one per resample

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "avg_bits": self.avg_bits,
                "metrics": self.metrics,
                "intervals": {k: list(v) for k, v in self.intervals.items()},
                "draws": self.draws}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verified:
        return cls(data["name"], data["kind"], data["avg_bits"], data["metrics"],
                   {k: tuple(v) for k, v in data["intervals"].items()}, data.get("draws", {}))


def bootstrap_interval(metric: str, point: float, draws: np.ndarray, level: float = 0.95
                       ) -> tuple[float, float]:
    """Percentile interval; for a Fréchet distance shifted by the resampling bias (module doc)."""
    tail = (1 - level) / 2 * 100
    low, high = (float(q) for q in np.percentile(draws, [tail, 100 - tail]))
    if metric in FRECHET_METRICS:
        bias = float(np.mean(draws)) - point
        return low - bias, high - bias
    return low, high


def paired_difference(a: Verified, b: Verified, metric: str, level: float = 0.95
                      ) -> tuple[float, float, float]:
    """``a − b`` on ``metric`` with its interval over the shared resamples: (Δ, lo, hi).

    Both were scored on the same resampled image indices, so the difference's draws are
    paired: the resampling noise the two share cancels, which makes the interval of the
    difference much narrower than the two intervals side by side suggest.
    """
    delta = a.metrics[metric] - b.metrics[metric]
    draws = np.asarray(a.draws[metric]) - np.asarray(b.draws[metric])
    return (delta, *bootstrap_interval(metric, delta, draws, level))


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
                         ) -> tuple[dict[str, float], dict[str, tuple[float, float]],
                                    dict[str, list[float]]]:
    """Metrics of all images, intervals over the bootstrap resamples, and the draws.

    A scorer with ``image_scores`` (qua2's own) runs its networks once and re-aggregates
    per-image values for each resample; any other scorer is simply called on each resample.
    """
    if hasattr(scorer, "image_scores"):
        per_image = scorer.image_scores(images, reference)
        metrics = per_image.aggregate()
        samples = (per_image.aggregate(index) for index in resamples)
    else:
        metrics = scorer.score(images, reference)
        samples = (scorer.score(images[torch.as_tensor(index)], _subset(reference, index))
                   for index in resamples)
    draws: dict[str, list[float]] = {k: [] for k in metrics if k in INTERVAL_METRICS}
    for sample in samples:
        for key in draws:
            draws[key].append(sample[key])
    intervals = {k: bootstrap_interval(k, metrics[k], np.asarray(v), level)
                 for k, v in draws.items() if np.all(np.isfinite(v))}
    return metrics, intervals, draws


def verify(study: Study, candidates: Mapping[str, tuple[str, QuantConfig | None]],
           cache: Any, rounds: int = 200, seed: int = 0,
           progress_file: Path | None = None) -> list[Verified]:
    """Evaluate ``{name: (kind, config)}`` on the verification seeds (``None`` = FP model).

    With ``progress_file``, each result is appended there as a JSON line as soon as it is
    known, and results already there (same name, image count, rounds and seed) are reused, so
    an interrupted verification resumes instead of starting over.
    """
    from qua2.progress import progress_bar
    from qua2.quant import average_bits

    reference = get_reference(study, "verification")
    scorer = build_scorer(study)
    resamples = bootstrap_indices(len(reference.seeds), rounds, seed)
    setting = {"n_images": len(reference.seeds), "rounds": rounds, "seed": seed,
               "intervals": INTERVAL_METHOD, "metrics": list(INTERVAL_METRICS)}
    done = _load_progress(progress_file, setting)
    results = []
    for name, (kind, config) in progress_bar(candidates.items(), desc="verify", unit="config"):
        if name in done:
            results.append(done[name])
            continue
        if config is None:
            images, bits = reference.images, None
        else:
            with study.quantized(config, cache):
                images = study.generate(reference.seeds, noise=reference.noise)
            bits = average_bits(config, cache)
        metrics, intervals, draws = score_with_intervals(scorer, images, reference, resamples)
        results.append(Verified(name, kind, bits, metrics, intervals, draws))
        _append_progress(progress_file, setting, results[-1])
    return results


def _load_progress(path: Path | None, setting: dict[str, Any]) -> dict[str, Verified]:
    """Results of an earlier, interrupted verification with the same setting."""
    if path is None or not path.exists():
        return {}
    done = {}
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by the interruption
        if entry.get("setting") == setting:
            result = Verified.from_dict(entry["result"])
            done[result.name] = result
    return done


def _append_progress(path: Path | None, setting: dict[str, Any], result: Verified) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps({"setting": setting, "result": result.to_dict()}) + "\n")


def save_verified(results: list[Verified], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([r.to_dict() for r in results], indent=2))
