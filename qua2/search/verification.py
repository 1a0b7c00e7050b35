"""The verification stage: real evaluation of every candidate on held-out seeds, with bootstrap
intervals, tables and a Pareto figure.

Candidates found by search are scored on the study's *verification* seeds, which were never
used while sampling configurations or fitting surrogates, with more images than during
sampling. Every configuration uses the same seeds and conditions (common random numbers), and
the bootstrap resamples the *same* image indices for every configuration, so differences
between configurations are paired (Efron & Tibshirani, 1993; :mod:`qua2.stats`).

Intervals are percentile intervals for metrics that are means over images. Fréchet distances
are biased upward at finite sample size (Chong & Forsyth, 2020), and a resample with repeats
holds fewer distinct images, so its distance is larger still: the plain percentile interval
of FID sits almost entirely above the point estimate. For them qua2 shifts the percentile
interval by the bootstrap estimate of that extra bias, mean(θ̂*) − θ̂ (Efron & Tibshirani,
1993, §10.2), so the interval describes the distance at the verified number of images — the
quantity every row of a table is measured at — and is centred where it belongs.

Sampled configurations were scored on the sampling seeds with fewer images; verified ones on
held-out seeds with more images. Distribution metrics such as FID depend on the sample count,
so the two are never mixed in one table or one panel.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from qua2.io import iter_json_lines, read_json, rerun_stage
from qua2.log import say
from qua2.search.stage import Candidate, load_candidates
from qua2.specs import QuantConfig
from qua2.stats import (
    bias_shifted_interval,
    bootstrap_indices,
    paired_interval,
    percentile_interval,
)
from qua2.study.reference import Reference, get_reference
from qua2.study.results import results_frame
from qua2.study.scoring import build_scorer
from qua2.study.stages import RunOptions
from qua2.study.study import Study

if TYPE_CHECKING:
    from qua2.metrics.per_image import ImageScores
    from qua2.quant.cache import OptionCache
    from qua2.study.config import ExecutorSection
    from qua2.study.scoring import Scorer

#: Metrics whose bootstrap intervals (and draws, for paired comparisons) are kept.
INTERVAL_METRICS = ("digits_fid", "fid", "fd_clip", "class_accuracy", "clip_score", "psnr",
                    "ssim", "mse")
#: Biased distribution metrics: bias-shifted intervals (see the module docstring).
FRECHET_METRICS = ("digits_fid", "fid", "fd_clip")
#: Part of a verification's setting (with INTERVAL_METRICS): a progress file written under
#: another method or metric list is not reused.
INTERVAL_METHOD = "percentile; bias-shifted for Fréchet distances"

#: Point estimates, 95% intervals and bootstrap draws of one configuration, by metric.
Measured = tuple[dict[str, float], dict[str, tuple[float, float]], dict[str, list[float]]]

RESULTS_FILE = ("verification", "results.json")
#: One JSON line per configuration as it is verified: what an interrupted run resumes from.
PROGRESS_FILE = ("verification", "progress.jsonl")


def stage_verify(study: Study, options: RunOptions) -> None:
    """Pipeline stage: every candidate evaluated for real on held-out seeds, with intervals."""
    from qua2.study.option_cache import open_option_cache
    from qua2.study.stages import ready_executor

    executor = ready_executor(study, options)
    verify_candidates(study, open_option_cache(study), rounds=options.bootstrap_rounds,
                      executor=executor)
    say(f"verification → {study.path('verification', 'table.md')}")


def verify_candidates(study: Study, cache: OptionCache, rounds: int = 200,
                      executor: ExecutorSection | None = None) -> list[Verified]:
    """Choose one qua2 pick per budget on the selection seeds, then verify every distinct
    candidate (and the FP model) once on the verification seeds; write results and figures."""
    from qua2.search.selection import select_picks

    candidates = select_picks(study, load_candidates(study), cache, rounds, executor)
    distinct: dict[str, tuple[str, Any]] = {"fp": ("fp", None)}
    for candidate in candidates:
        distinct.setdefault(candidate.config.digest(), (candidate.kind, candidate.config))
    prefixes: dict[tuple[str, int], Verified] = {}
    if study.config.images.racing:  # dominated baselines stop early
        from qua2.search.verification_racing import race_verification

        results, prefixes = race_verification(study, candidates, distinct, cache, rounds,
                                              executor)
    else:
        results = verify(study, distinct, cache, rounds=rounds,
                         progress_file=study.path(*PROGRESS_FILE), executor=executor)
    study.path(*RESULTS_FILE).write_text(json.dumps([r.to_dict() for r in results], indent=2))
    table = verification_table(study, candidates, results)
    table.to_csv(study.path("verification", "table.csv"), index=False)
    comparisons = paired_comparisons(study, candidates, results, prefixes)
    comparisons.to_csv(study.path("verification", "comparisons.csv"), index=False)
    study.path("verification", "table.md").write_text(
        markdown_tables(study, table, comparisons))
    from qua2.plots import save_figure

    save_figure(_pareto_figure(study, results_frame(study, with_layers=False), table),
                study.path("verification", "pareto.png"))
    return results


def _pareto_figure(study: Study, sampled: pd.DataFrame, verified: pd.DataFrame) -> Any:
    """Left: every evaluated config (sampling seeds). Right: verified candidates with 95% CIs."""
    from qua2.plots import pareto_figure

    metrics = study.config.metrics
    done = sampled[sampled["status"] == "done"] if "status" in sampled else sampled
    fp = verified[verified["name"] == "fp"]
    fp_value = float(fp[metrics.primary_metric].iloc[0]) if len(fp) else None
    return pareto_figure(done[done["kind"].isin(["random", "uniform"])], metrics.primary_metric,
                         bool(metrics.lower_is_better), fp_value, verified=verified,
                         title=f"{study.config.name}: bits vs quality")


# --------------------------------------------------------------------------- scoring
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
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verified:
        return cls(data["name"], data["kind"], data["avg_bits"], data["metrics"],
                   {k: tuple(v) for k, v in data["intervals"].items()}, data.get("draws", {}))


def bootstrap_interval(metric: str, point: float, draws: np.ndarray, level: float = 0.95
                       ) -> tuple[float, float]:
    """Percentile interval; for a Fréchet distance shifted by the resampling bias (module doc)."""
    if metric in FRECHET_METRICS:
        return bias_shifted_interval(point, draws, level)
    low, high = percentile_interval(draws, level, omit_nan=False)
    return float(low), float(high)


def paired_difference(a: Verified, b: Verified, metric: str, level: float = 0.95
                      ) -> tuple[float, float, float]:
    """``a − b`` on ``metric`` with its interval over the shared resamples: (Δ, lo, hi).

    Both were scored on the same resampled image indices, so the difference's draws are
    paired: the resampling noise the two share cancels, which makes the interval of the
    difference much narrower than the two intervals side by side suggest.
    """
    return paired_interval(a.draws[metric], b.draws[metric],
                           a.metrics[metric] - b.metrics[metric], level,
                           shift_bias=metric in FRECHET_METRICS)


def _subset(reference: Reference, index: np.ndarray) -> Reference:
    picked = torch.as_tensor(index)
    return Reference(reference.images[picked], reference.noise[picked],
                     [reference.seeds[i] for i in index],
                     [reference.conditions[i] for i in index])


def score_with_intervals(scorer: Scorer, images: torch.Tensor, reference: Reference,
                         resamples: np.ndarray, level: float = 0.95) -> Measured:
    """Metrics of all images, intervals over the bootstrap resamples, and the draws.

    A scorer with ``image_scores`` (qua2's own) runs its networks once and re-aggregates
    per-image values for each resample; any other scorer is simply called on each resample.
    """
    if hasattr(scorer, "image_scores"):
        return intervals_of_scores(scorer.image_scores(images, reference), resamples, level)
    metrics = scorer.score(images, reference)
    samples = (scorer.score(images[torch.as_tensor(index)], _subset(reference, index))
               for index in resamples)
    return _intervals(metrics, samples, level)


def intervals_of_scores(per_image: ImageScores, resamples: np.ndarray, level: float = 0.95
                        ) -> Measured:
    """:func:`score_with_intervals` from per-image scores already computed."""
    return _intervals(per_image.aggregate(),
                      (per_image.aggregate(index) for index in resamples), level)


def _intervals(metrics: dict[str, float], samples: Iterable[dict[str, float]], level: float
               ) -> Measured:
    draws: dict[str, list[float]] = {k: [] for k in metrics if k in INTERVAL_METRICS}
    for sample in samples:
        for key in draws:
            draws[key].append(sample[key])
    intervals = {k: bootstrap_interval(k, metrics[k], np.asarray(v), level)
                 for k, v in draws.items() if np.all(np.isfinite(v))}
    return metrics, intervals, draws


def verify(study: Study, candidates: Mapping[str, tuple[str, QuantConfig | None]],
           cache: OptionCache, rounds: int = 200, seed: int = 0,
           progress_file: Path | None = None,
           executor: ExecutorSection | None = None, seeds: str = "verification"
           ) -> list[Verified]:
    """Evaluate ``{name: (kind, config)}`` on the verification seeds (``None`` = FP model).

    ``seeds="selection"`` scores on the selection seeds instead (:mod:`qua2.search.selection`).

    With ``progress_file``, each result is appended there as a JSON line as soon as it is
    known, and results already there (same name, image count, rounds and seed) are reused, so
    an interrupted verification resumes instead of starting over. With a Ray ``executor``, the
    images are generated and scored by Ray actors (:mod:`qua2.study.ray_executor`); the
    bootstrap runs here on the same resamples either way.
    """
    from qua2.quant.apply import average_bits

    reference = get_reference(study, seeds)
    resamples = bootstrap_indices(len(reference.seeds), rounds, seed)
    setting = {"n_images": len(reference.seeds), "rounds": rounds, "seed": seed,
               "intervals": INTERVAL_METHOD, "metrics": list(INTERVAL_METRICS)}
    done = _load_progress(progress_file, setting)

    def record(name: str, measured: Measured) -> None:
        kind, config = candidates[name]
        bits = None if config is None else average_bits(config, cache)
        done[name] = Verified(name, kind, bits, *measured)
        _append_progress(progress_file, setting, done[name])

    pending = {name: config for name, (_, config) in candidates.items() if name not in done}
    if pending and executor is not None and executor.kind == "ray":
        from qua2.study.ray_executor import verification_scores
        configs = {name: None if c is None else c.to_dict() for name, c in pending.items()}
        verification_scores(study, executor, configs, len(reference.seeds),
                            lambda name, scores: record(name, intervals_of_scores(scores,
                                                                                  resamples)),
                            seeds=seeds)
    elif pending:
        from qua2.progress import progress_bar
        from qua2.study.evaluate import generate_images

        scorer = build_scorer(study)
        desc = "verify" if seeds == "verification" else seeds
        for name, config in progress_bar(pending.items(), desc=desc, unit="config"):
            images = generate_images(study, config, cache, reference)
            record(name, score_with_intervals(scorer, images, reference, resamples))
    return [done[name] for name in candidates]


def _load_progress(path: Path | None, setting: dict[str, Any]) -> dict[str, Verified]:
    """Results of an earlier, interrupted verification with the same setting."""
    if path is None:
        return {}
    done = {}
    # A line cut short by an interruption, or damaged, only means that entry is verified again.
    for entry in iter_json_lines(path):
        if entry.get("setting") != setting:
            continue
        try:
            result = Verified.from_dict(entry["result"])
        except (KeyError, TypeError, ValueError):
            continue
        done[result.name] = result
    return done


def _append_progress(path: Path | None, setting: dict[str, Any], result: Verified) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps({"setting": setting, "result": result.to_dict()}) + "\n")


# --------------------------------------------------------------------------- tables
def verification_table(study: Study, candidates: list[Candidate],
                       results: list[Verified]) -> pd.DataFrame:
    """One row per (budget, candidate) with verified metrics and intervals; FP rows first."""
    by_id = {r.name: r for r in results}
    metrics = [m for m in by_id["fp"].metrics if m != "n_images"]
    rows = [_row(math.nan if c.budget is None else c.budget, c.name, c.kind, c.config.digest(),
                 by_id[c.config.digest()], metrics, c.predicted) for c in candidates]
    rows.append(_row(math.nan, "fp", "reference", "fp", by_id["fp"], metrics, None))
    return pd.DataFrame(rows)


def _row(budget: float, name: str, kind: str, config_id: str, verified: Verified,
         metrics: list[str], predicted: float | None) -> dict[str, Any]:
    row: dict[str, Any] = {"budget": budget, "name": name, "kind": kind, "id": config_id,
                           "avg_bits": verified.avg_bits, "predicted": predicted,
                           "images": verified.metrics.get("n_images")}
    for metric in metrics:
        row[metric] = verified.metrics.get(metric)
        low, high = verified.intervals.get(metric, (math.nan, math.nan))
        row[f"{metric}_lo"], row[f"{metric}_hi"] = low, high
    return row


def paired_comparisons(study: Study, candidates: list[Candidate], results: list[Verified],
                       prefixes: Mapping[tuple[str, int], Verified] | None = None
                       ) -> pd.DataFrame:
    """Per budget, qua2's (selected) pick against every baseline at that budget and every
    uniform anchor above it, on the primary metric with paired 95% intervals.

    ``delta`` is pick − other; ``verdict`` says which is better when the interval excludes 0.
    A baseline that racing stopped early is compared on the images it got: ``prefixes`` holds
    the pick verified on its first ``n`` images (:mod:`qua2.search.verification_racing`).
    """
    primary = study.config.metrics.primary_metric
    sign = -1.0 if study.config.metrics.lower_is_better else 1.0
    by_id = {r.name: r for r in results}
    anchors = [c for c in candidates if c.kind == "anchor"]
    rows = []
    for budget in sorted({c.budget for c in candidates if c.budget is not None}):
        here = [c for c in candidates if c.budget == budget]
        picks = [c for c in here if c.kind == "qua2"]
        if not picks:
            continue
        others = [c for c in here if c.kind == "baseline"]
        others += [c for c in anchors if c.avg_bits > budget]
        # One pick per budget after selection (qua2.search.selection); never chosen here, on
        # the images that measure it.
        for pick, other in ((p, o) for p in picks for o in others):
            a, b = by_id[pick.config.digest()], by_id[other.config.digest()]
            shared = b.metrics.get("n_images")  # fewer than a's: racing stopped b early
            if prefixes and shared is not None and shared < a.metrics.get("n_images", shared):
                a = prefixes[(pick.config.digest(), int(shared))]
            if primary not in a.draws or primary not in b.draws:
                continue  # a primary metric without bootstrap draws (custom scorer)
            delta, low, high = paired_difference(a, b, primary)
            gain = sorted((sign * low, sign * high))  # the pick's advantage, positive = better
            better, worse = gain[0] > 0, gain[1] < 0
            rows.append({"budget": budget, "pick": pick.name, "pick_bits": pick.avg_bits,
                         "other": other.name, "other_kind": other.kind,
                         "other_bits": other.avg_bits, "metric": primary,
                         "images": None if shared is None else int(shared), "delta": delta,
                         "delta_lo": low, "delta_hi": high,
                         "verdict": "better" if better else "worse" if worse else "tie"})
    return pd.DataFrame(rows)


def _selection_sentence(study: Study) -> str:
    images = study.config.selection_images
    how = (f"on {images} other images (selection seeds from {study.config.seeds.selection})"
           if images else "by the surrogate's prediction")
    return (f"qua2's pick per budget was chosen among its search picks {how}, not on these "
            "images, so its verified score is not inflated by the choice "
            "(search/selection.json).")


def markdown_tables(study: Study, table: pd.DataFrame,
                    comparisons: pd.DataFrame | None = None) -> str:
    """A Markdown table per budget: candidates sorted by the primary metric, with 95% CIs,
    followed by qua2's pick against each baseline (paired differences)."""
    primary = study.config.metrics.primary_metric
    ascending = study.config.metrics.lower_is_better
    shown = [m for m in (primary, "class_accuracy", "clip_score", "psnr", "ssim") if m in table]
    activations = study.precision_label
    lines = [f"Verified on {study.config.verification_images} held-out images per config; "
             "intervals are 95% bootstrap intervals over resamples shared by all configs "
             "(percentile; bias-shifted for Fréchet distances). Activations: "
             f"{activations} (the bits columns are the weights': W<bits>{activations}).",
             "", _selection_sentence(study), ""]
    if study.config.images.racing:
        lines += ["Racing: a baseline that qua2's pick already beat on fewer images (its 95% "
                  "paired interval excluding 0) stopped there; its row and its paired "
                  "difference are on those images, marked (qua2.search.verification_racing).",
                  ""]
    groups = [("Full precision and uniform anchors", table[table["budget"].isna()])]
    groups += [(f"Budget ≤ {budget:g} average bits", group)
               for budget, group in table.dropna(subset=["budget"]).groupby("budget")]
    for title, group in groups:
        lines += ["", f"### {title}", "",
                  "| config | kind | avg bits | " + " | ".join(shown) + " |",
                  "|---|---|---|" + "---|" * len(shown)]
        for _, row in group.sort_values(primary, ascending=ascending).iterrows():
            bits = "16 (FP)" if row["kind"] == "reference" else f"{row['avg_bits']:.3f}"
            cells = " | ".join(_cell(row, m) for m in shown)
            name = row["name"] + _short(row.get("images"), study.config.verification_images)
            lines.append(f"| {name} | {row['kind']} | {bits} | {cells} |")
        budget = group["budget"].iloc[0] if len(group) else math.nan
        if comparisons is not None and len(comparisons) and not math.isnan(budget):
            lines += _comparison_lines(comparisons[comparisons["budget"] == budget],
                                       study.config.verification_images)
    return "\n".join(lines) + "\n"


def _short(images: Any, total: int) -> str:
    """`` (first N images)`` for a row racing stopped early, else nothing."""
    if pd.isna(images) or images >= total:
        return ""
    return f" (first {int(images)} images)"


def _comparison_lines(rows: pd.DataFrame, total: int) -> list[str]:
    if rows.empty:
        return []
    first = rows.iloc[0]
    lines = ["", f"Paired differences, {first['pick']} − other, on {first['metric']} "
                 "(95% interval; better / worse when it excludes 0):", ""]
    for _, r in rows.iterrows():
        where = "" if r["other_kind"] == "baseline" else f" at {r['other_bits']:.3f} bits"
        where += _short(r.get("images"), total)
        lines.append(f"- vs {r['other']}{where}: {r['delta']:+.4g} "
                     f"[{r['delta_lo']:+.4g}, {r['delta_hi']:+.4g}] → {r['verdict']}")
    return lines


def _cell(row: Any, metric: str) -> str:
    value, low, high = row[metric], row.get(f"{metric}_lo"), row.get(f"{metric}_hi")
    if pd.isna(value):
        return "–"
    if pd.isna(low):
        return f"{value:.4g}"
    return f"{value:.4g} [{low:.4g}, {high:.4g}]"


def load_verification(study: Study) -> list[dict[str, Any]]:
    path = study.path(*RESULTS_FILE)
    if not path.exists():
        return []
    return read_json(path, rerun_stage(study.directory, "verify"))
