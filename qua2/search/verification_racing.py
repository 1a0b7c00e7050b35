"""Racing in verification: a baseline clearly beaten by qua2's pick stops early.

Verification scores every candidate — qua2's pick per budget, the baselines at that budget,
the uniform anchors and the FP model — on the same ``verification_images`` held-out images.
Many baselines are far behind the pick (a random configuration at 120 digits-FID against a
pick at 23); a thousand images to confirm that are wasted. With ``images: {racing: true}``
verification runs in levels like the study's own racing (:mod:`qua2.study.racing`): every
candidate is first generated on the first ``verification_images · min / images_per_config``
held-out images, and the count doubles up to ``verification_images`` only for candidates
that can still matter. A *baseline* stops when, at every budget it is compared at, qua2's
pick is better on the images both have, with one-sided confidence ``1 − α`` where
``α = min(error_rate, 0.025)`` (paired bootstrap on shared resamples, bias-shifted for
Fréchet distances: the test of :func:`qua2.search.verification.paired_difference`). The cap
makes a stop imply what the tables report: the 95% paired interval of a stopped baseline
already says "better". qua2's picks, the uniform anchors (every budget is compared with
them) and the FP model always get every image.

What a stopped baseline reports: its metrics and intervals on the images it got (the tables
say how many), and its paired difference to the pick on exactly those images — the pick's
own row keeps all images. Stated error rate: at each decision, at most ``α`` chance
that a baseline is stopped although the pick is in truth not better than it (the verdict the
full count could have reversed); up to the bootstrap's approximation.

Per-image ingredients of every candidate are kept in ``verification/image_scores/`` (with a
digest; damaged → generated again) and each decision in ``verification/race.json``, so an
interrupted verification resumes where it stopped and a continued candidate generates only
its new images.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from qua2.io import atomic_write_json, read_json, rerun_stage
from qua2.log import say
from qua2.metrics.per_image import ImageScores
from qua2.stats import bootstrap_indices, paired_interval
from qua2.study.racing import image_levels, load_ingredients, save_ingredients
from qua2.study.study import Study

if TYPE_CHECKING:
    from qua2.quant.cache import OptionCache
    from qua2.search.stage import Candidate
    from qua2.search.verification import Verified
    from qua2.specs import QuantConfig
    from qua2.study.config import ExecutorSection

#: Candidate kinds that always get every verification image (and so does the FP model).
PROTECTED_KINDS = ("qua2", "anchor")
RACE_FILE = ("verification", "race.json")
#: One-sided error rate of a stop at most that of the tables' 95% paired intervals.
MAX_ERROR_RATE = 0.025


def verification_levels(study: Study) -> list[int]:
    """Image counts of the verification race: the study's racing share of
    ``verification_images`` (e.g. 64 of 256 → 250 of 1000), doubling to all of them."""
    total = study.config.verification_images
    first = max(1, total * study.config.images.min // study.config.images_per_config)
    return image_levels(min(first, total), total)


class VerificationRace:
    """The per-image scores of every verified candidate, grown level by level."""

    def __init__(self, study: Study, candidates: Mapping[str, tuple[str, QuantConfig | None]],
                 cache: OptionCache, rounds: int, seed: int = 0,
                 executor: ExecutorSection | None = None) -> None:
        from qua2.study.reference import get_reference
        from qua2.study.scoring import build_scorer

        self.study, self.candidates, self.cache = study, candidates, cache
        self.rounds, self.seed, self.executor = rounds, seed, executor
        self.reference = get_reference(study, "verification")
        self.scorer = build_scorer(study)
        self.directory = study.path("verification")
        self.scores: dict[str, ImageScores] = {}
        for name in candidates:
            arrays = load_ingredients(self.directory, name)
            if arrays is not None:
                self.scores[name] = ImageScores.from_arrays(arrays, self.scorer.suite.frechet)

    def have(self, name: str) -> int:
        return self.scores[name].n_images if name in self.scores else 0

    def grow(self, names: list[str], count: int) -> None:
        """Generate and score the images ``have … count`` of each of ``names``; each
        candidate's ingredients are saved as soon as it is scored (what a resume starts from)."""
        by_start: dict[int, list[str]] = {}
        for name in names:
            if self.have(name) < count:
                by_start.setdefault(self.have(name), []).append(name)
        for start, group in sorted(by_start.items()):
            self._score_range(group, start, count, self._extend)

    def _extend(self, name: str, part: ImageScores) -> None:
        if name in self.scores:
            part = ImageScores.concat([self.scores[name], part])
        self.scores[name] = part
        save_ingredients(self.directory, name, part.to_arrays())

    def verified(self, name: str, count: int | None = None) -> Verified:
        """``name`` verified on its first ``count`` images (default: all it has), with draws
        on the resamples every candidate shares at that count."""
        from qua2.quant.apply import average_bits
        from qua2.search.verification import Verified, intervals_of_scores

        kind, config = self.candidates[name]
        scores = self.scores[name]
        count = scores.n_images if count is None else count
        if count < scores.n_images:
            scores = ImageScores.from_arrays({k: v[:count] for k, v in scores.to_arrays().items()},
                                             dict(scores.frechet))
        measured = intervals_of_scores(scores, bootstrap_indices(count, self.rounds, self.seed))
        bits = None if config is None else average_bits(config, self.cache)
        return Verified(name, kind, bits, *measured)

    def _score_range(self, names: list[str], start: int, stop: int,
                     on_scored: Callable[[str, ImageScores], None]) -> None:
        """Per-image scores of images ``start … stop`` of each of ``names`` (Ray actors or
        here), passed to ``on_scored`` candidate by candidate."""
        if self.executor is not None and self.executor.kind == "ray":
            from qua2.study.ray_executor import verification_scores

            configs = {n: _as_dict(self.candidates[n][1]) for n in names}
            verification_scores(self.study, self.executor, configs, stop, on_scored,
                                start=start)
            return
        from qua2.progress import progress_bar
        from qua2.study.evaluate import generate_images

        part = self.reference.slice(start, stop)
        for name in progress_bar(names, desc=f"verify {start}–{stop}", unit="config"):
            images = generate_images(self.study, self.candidates[name][1], self.cache, part)
            on_scored(name, self.scorer.image_scores(images, part))


def _as_dict(config: QuantConfig | None) -> dict[str, Any] | None:
    return None if config is None else config.to_dict()


def stops(study: Study, race: VerificationRace, picks: Mapping[float, str],
          compared_at: Mapping[str, list[float]], count: int) -> dict[str, dict[str, Any]]:
    """Baselines to stop at ``count`` images: beaten by the pick at every budget they are
    compared at, one-sided at min(``error_rate``, :data:`MAX_ERROR_RATE`) (module docs)."""
    from qua2.search.verification import FRECHET_METRICS

    primary = study.config.metrics.primary_metric
    sign = -1.0 if study.config.metrics.primary_lower_is_better else 1.0
    level = 1 - 2 * min(study.config.images.error_rate, MAX_ERROR_RATE)
    verdicts = {}
    pick_at = {budget: race.verified(pick, count) for budget, pick in picks.items()}
    for name, budgets in compared_at.items():
        gaps = []
        other = race.verified(name, count)
        for budget in budgets:
            pick = pick_at[budget]
            delta = sign * (pick.metrics[primary] - other.metrics[primary])
            _, low, _ = paired_interval(sign * np.asarray(pick.draws[primary]),
                                        sign * np.asarray(other.draws[primary]), delta, level,
                                        shift_bias=primary in FRECHET_METRICS)
            gaps.append(low)
        if gaps and min(gaps) > 0:
            verdicts[name] = {"images": count, "verdict": "stop", "gap_low": min(gaps),
                              "against": [picks[budget] for budget in budgets]}
    return verdicts


def race_verification(study: Study, candidates: list[Candidate],
                      distinct: Mapping[str, tuple[str, QuantConfig | None]], cache: OptionCache,
                      rounds: int, executor: ExecutorSection | None = None
                      ) -> tuple[list[Verified], dict[tuple[str, int], Verified]]:
    """Verify ``distinct`` by racing (module docs): every result, and each pick's result on
    the first ``n`` images for every ``n`` a baseline stopped at (its paired comparisons)."""
    race = VerificationRace(study, distinct, cache, rounds, executor=executor)
    picks = {c.budget: c.config.digest() for c in candidates
             if c.kind == "qua2" and c.budget is not None}
    protected = {"fp", *(c.config.digest() for c in candidates if c.kind in PROTECTED_KINDS)}
    compared_at: dict[str, list[float]] = {}
    for c in candidates:
        if c.kind == "baseline" and c.budget in picks and c.config.digest() not in protected:
            compared_at.setdefault(c.config.digest(), []).append(c.budget)
    # A decision stands only against the picks it was made against (a new search, new picks).
    decided = {name: verdict for name, verdict in _load_decisions(study).items()
               if name in compared_at
               and verdict.get("against") == [picks[b] for b in compared_at[name]]}
    for name, verdict in decided.items():  # ingredients lost since: generated again
        race.grow([name], verdict["images"])
    running = [name for name in distinct if name not in decided]
    for count in verification_levels(study):
        say(f"verification racing: {len(running)} candidates on {count} held-out images")
        race.grow(running, count)
        if count == study.config.verification_images:
            break
        verdicts = stops(study, race, picks, {n: b for n, b in compared_at.items()
                                              if n in running}, count)
        if verdicts:
            say(f"verification racing: {len(verdicts)} baselines already beaten by qua2's "
                f"pick stop at {count} images")
        decided.update(verdicts)
        atomic_write_json(study.path(*RACE_FILE), decided)
        running = [name for name in running if name not in verdicts]
    total = study.config.verification_images  # ingredients may hold more from a larger run
    results = [race.verified(name, decided[name]["images"] if name in decided else total)
               for name in distinct]
    prefixes = {(picks[budget], verdict["images"]): race.verified(picks[budget], verdict["images"])
                for name, verdict in decided.items() for budget in compared_at[name]}
    return results, prefixes


def _load_decisions(study: Study) -> dict[str, dict[str, Any]]:
    path = study.path(*RACE_FILE)
    if not path.exists():
        return {}
    found = read_json(path, rerun_stage(study.directory, "verify"))
    return dict(found) if isinstance(found, dict) else {}
