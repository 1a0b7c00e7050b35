"""Racing: a configuration gets only as many images as its place in the study needs.

A study's images are its cost. With ``images: {racing: true}`` a random, sequential or sweep
configuration is first evaluated on the first ``images.min`` sampling seeds; the image count
then doubles (``min``, ``2·min``, … ``images_per_config``) only while the configuration *can
still matter*: while no configuration with **at most its average bits** is better than it with
confidence ``1 − images.error_rate``. A configuration that is beaten by a cheaper or equally
cheap one cannot be on the Pareto front of quality against bits that the search and the
explanations care about; a few images suffice to say it is bad. This is racing for model
selection (Maron & Moore, "Hoeffding races", NIPS 1994; Birattari et al., "F-Race", GECCO
2002), the doubling schedule that of successive halving (Jamieson & Talwalkar, AISTATS 2016).

**The test.** Every configuration is generated from the same seeds (common random numbers),
so two configurations are compared image by image on the first ``n`` images both have: the
objective of each (the primary metric with its direction, minus the bits penalty) is computed
on the same ``rounds`` bootstrap resamples of those images and the interval of the difference
read off (:func:`qua2.stats.paired_interval`, shifted by the bootstrap bias because a resample
of a Fréchet distance holds repeated images). The configuration stops if, for one of the
``COMPETITORS`` best competitors by point estimate, the one-sided lower bound at level
``error_rate / COMPETITORS`` (Bonferroni) of *competitor − configuration* is above zero.
Stated error rate: at each decision the chance of stopping a configuration that is in truth
not worse than these competitors is at most ``error_rate`` (up to the bootstrap's
approximation); competitors are picked by their point estimate on the same images, which makes
the rate approximate — ``tests/study/test_racing.py`` measures it on a synthetic race.

**Groups.** Random and sequential rows race against every random, sequential or uniform row;
a sweep row (one layer at one option, the rest FP) only against the sweep rows of its own
layer, since the sweep measures each layer's options against each other. Uniform anchors
always get every image (they are the baselines every budget is compared with).

**What the rows hold.** A row's metrics are those of the images it got (``n_images``); its
per-image ingredients are kept in ``image_scores/ID.safetensors`` so it can continue later and
serve as a competitor; each level's metrics stay in ``tags["levels"]`` and each decision in
``tags["race"]``. A damaged or missing ingredients file is rebuilt by evaluating the row again.

**What the surrogates see** (:func:`full_scale_metrics`): each row's own metrics, mapped to
the ``images_per_config`` scale by a line fitted on the rows that reached it (their metrics
at ``n`` images against at all images, same seeds). A Fréchet distance on few images is
biased — digits-FID of the FP images is 19.0 on 64 and 15.5 on 256 images (Chong & Forsyth,
"Effectively unbiased FID", CVPR 2020, model it as linear in 1/n) — and on the digits DiT
the gap between 64 and 256 images also grows with how bad a configuration is, so raw values
of stopped rows would be on another scale than the rest. Using the shared 64-image prefix for
every row instead would throw away the precision racing bought where it matters, near the
front. No per-row weights: stopped rows are the far-from-front ones, where the surrogate's
precision matters least, and the GNN takes none.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from qua2.io import DamagedArtifactError, load_safetensors, write_safetensors
from qua2.log import say
from qua2.stats import bootstrap_indices, paired_interval
from qua2.study.reference import tensors_digest
from qua2.study.store import Row, Store
from qua2.study.study import Study

if TYPE_CHECKING:
    from qua2.metrics.frechet import FrechetScorer
    from qua2.metrics.per_image import ImageScores
    from qua2.study.config import ExecutorSection

#: Row kinds that race (uniform anchors and search candidates always get every image).
RACING_KINDS = ("random", "design", "sweep")
#: Kinds that random and sequential rows are compared with.
FRONT_KINDS = ("random", "design", "uniform")
#: How many competitors (best by point estimate) a configuration is tested against.
COMPETITORS = 3
#: Bootstrap resamples per test.
ROUNDS = 300
SCORES_DIR = "image_scores"


# --------------------------------------------------------------------------- schedule
def image_levels(minimum: int, maximum: int) -> list[int]:
    """``minimum, 2·minimum, …`` below ``maximum``, then ``maximum``."""
    levels = []
    count = minimum
    while count < maximum:
        levels.append(count)
        count *= 2
    return [*levels, maximum]


def start_tags(study: Study, kind: str) -> dict[str, Any]:
    """Tags a newly queued row of ``kind`` starts with: its first image count when it races."""
    if study.config.images.racing and kind in RACING_KINDS:
        return {"images": study.config.images.min}
    return {}


def target_images(study: Study, row: Row) -> int:
    """How many images ``row`` is to be evaluated on now."""
    return int(row.tags.get("images", study.config.images_per_config))


# --------------------------------------------------------------------------- ingredients
def scores_path(directory: Path, config_id: str) -> Path:
    return directory / SCORES_DIR / f"{config_id}.safetensors"


def save_ingredients(directory: Path, config_id: str, arrays: dict[str, np.ndarray]) -> None:
    """A row's per-image arrays (:meth:`ImageScores.to_arrays`), written atomically."""
    import torch

    # A copy: arrays that came back from Ray are read-only, which torch warns about.
    tensors = {k: torch.from_numpy(np.array(v, order="C")) for k, v in arrays.items()}
    write_safetensors(scores_path(directory, config_id), tensors,
                      {"id": config_id, "digest": tensors_digest(tensors)})


def load_ingredients(directory: Path, config_id: str) -> dict[str, np.ndarray] | None:
    """The stored per-image arrays of a row; ``None`` when absent or damaged (then rebuilt)."""
    path = scores_path(directory, config_id)
    if not path.exists():
        return None
    try:
        tensors, metadata = load_safetensors(path, "it is rebuilt by evaluating the row again")
    except DamagedArtifactError as error:
        say(f"{error}")
        return None
    if metadata.get("id") != config_id or metadata.get("digest") != tensors_digest(tensors):
        # A flipped bit would otherwise become a wrong metric of this row.
        say(f"{path} is damaged or belongs to another configuration; it is rebuilt.")
        return None
    return {k: v.numpy().astype(np.float64) for k, v in tensors.items()}


def previous_ingredients(study: Study, row: Row) -> dict[str, np.ndarray] | None:
    """What a row being continued already has: its stored arrays if they are fewer images than
    its target (``None``: evaluate from the first image)."""
    arrays = load_ingredients(study.directory, row.id) if study.config.images.racing else None
    if arrays is None or len(next(iter(arrays.values()))) >= target_images(study, row):
        return None
    return arrays


# --------------------------------------------------------------------------- the decisions
class Race:
    """One pass of decisions over a study's rows (draws are cached per row and image count)."""

    def __init__(self, study: Study) -> None:
        self.study = study
        self.levels = image_levels(study.config.images.min, study.config.images_per_config)
        self._frechet: dict[str, FrechetScorer] | None = None
        self._scores: dict[str, ImageScores | None] = {}
        self._draws: dict[tuple[str, int], np.ndarray] = {}

    def frechet(self) -> dict[str, FrechetScorer]:
        """The study's Fréchet scorers (real-data statistics), built on first need only."""
        if self._frechet is None:
            from qua2.study.scoring import build_scorer

            self._frechet = build_scorer(self.study).suite.frechet
        return self._frechet

    def scores(self, row: Row) -> ImageScores | None:
        from qua2.metrics.per_image import ImageScores

        if row.id not in self._scores:
            arrays = load_ingredients(self.study.directory, row.id)
            frechet = self.frechet() if arrays and any(k.startswith("features/")
                                                       for k in arrays) else {}
            self._scores[row.id] = None if arrays is None else \
                ImageScores.from_arrays(arrays, frechet)
        return self._scores[row.id]

    def objective(self, row: Row, count: int, index: np.ndarray | None = None) -> float:
        """The row's objective (higher is better) on its first ``count`` images (resampled)."""
        from qua2.study.evaluate import objective

        scores = self.scores(row)
        assert scores is not None
        primary = self.study.config.metrics.primary_metric
        pick = np.arange(count) if index is None else index
        return objective(self.study, {primary: scores.metric(primary, pick)}, row.avg_bits)

    def draws(self, row: Row, count: int) -> np.ndarray:
        key = (row.id, count)
        if key not in self._draws:
            # The same resamples for every row at this image count: draws of two rows are paired.
            index = bootstrap_indices(count, ROUNDS, seed=count)
            self._draws[key] = np.array([self.objective(row, count, i) for i in index])
        return self._draws[key]

    def decide(self, row: Row, rows: Sequence[Row]) -> dict[str, Any]:
        """Stop or continue ``row`` (done on fewer than all images) against ``rows``."""
        count = int(row.metrics["n_images"])
        competitors = [r for r in rows if r.id != row.id and _comparable(row, r, count)
                       and self.scores(r) is not None]
        mine = self.objective(row, count)
        ranked = sorted(((self.objective(r, count), r) for r in competitors),
                        key=lambda pair: -pair[0])
        level = 1 - 2 * self.study.config.images.error_rate / COMPETITORS
        for value, rival in ranked[:COMPETITORS]:
            if value <= mine:
                break
            _, low, _ = paired_interval(self.draws(rival, count), self.draws(row, count),
                                        value - mine, level, shift_bias=True)
            if low > 0:
                return {"images": count, "verdict": "stop", "by": rival.id, "gap_low": low}
        return {"images": count, "verdict": "continue"}


def _comparable(row: Row, other: Row, count: int) -> bool:
    """Whether ``other`` competes with ``row`` on its first ``count`` images."""
    if other.status != "done" or other.metrics.get("n_images", 0) < count:
        return False
    if (other.avg_bits or math.inf) > (row.avg_bits or -math.inf) + 1e-9:
        return False
    if row.kind == "sweep":
        return other.kind == "sweep" and other.tags.get("layer") == row.tags.get("layer")
    return other.kind in FRONT_KINDS


def undecided(study: Study, rows: Iterable[Row], kinds: Sequence[str] = RACING_KINDS
              ) -> list[Row]:
    """Done rows of ``kinds`` with fewer than all images and no verdict at their image count."""
    maximum = study.config.images_per_config
    return [row for row in rows if row.kind in RACING_KINDS and row.kind in kinds
            and row.status == "done" and (count := row.metrics.get("n_images", maximum)) < maximum
            and not any(d["images"] == count for d in row.tags.get("race", []))]


def race_step(study: Study, kinds: Sequence[str] = RACING_KINDS) -> int:
    """Decide every undecided row of ``kinds``; continuing rows go back to pending with twice
    the images. Returns how many rows were put back."""
    with Store(study.path("study.sqlite")) as store:
        rows = store.rows(status="done")
        waiting = undecided(study, rows, kinds)
        if not waiting:
            return 0
        race = Race(study)
        continued = stopped = rebuilt = 0
        for row in waiting:
            count = int(row.metrics["n_images"])
            if race.scores(row) is None:  # ingredients lost: evaluate this level again
                store.requeue(row.id, {**row.tags, "images": count})
                rebuilt += 1
                continue
            verdict = race.decide(row, rows)
            tags = {**row.tags, "race": [*row.tags.get("race", []), verdict]}
            if verdict["verdict"] == "stop":
                store.retag(row.id, tags)
                stopped += 1
                continue
            levels = {**row.tags.get("levels", {}), str(count): row.metrics}
            nxt = next(n for n in race.levels if n > count)
            store.requeue(row.id, {**tags, "levels": levels, "images": nxt})
            continued += 1
    say(f"racing: {stopped} stopped, {continued} continue to more images"
        + (f", {rebuilt} re-evaluated (image scores lost)" if rebuilt else ""))
    return continued + rebuilt


def evaluate_racing(study: Study, kinds: Sequence[str], executor: ExecutorSection,
                    desc: str) -> None:
    """Evaluate the pending rows of ``kinds``, race, and repeat until no row continues (on
    Ray the same actors serve every wave: each loads the model once)."""
    from qua2.study.ray_executor import KeptActors
    from qua2.study.workers import evaluate_pending

    kept = KeptActors()
    try:
        while True:
            evaluate_pending(study, kinds, executor, desc=desc, kept=kept)
            if not study.config.images.racing or race_step(study, kinds) == 0:
                return
    finally:
        kept.shutdown()


# --------------------------------------------------------------------------- for surrogates
def full_scale_metrics(rows: Sequence[Row], maximum: int) -> list[dict[str, float]]:
    """Each row's metrics, those of a row on fewer than ``maximum`` images mapped to the
    all-images scale (module docstring: why a map, not weights or the shared prefix).

    For every image count ``n`` and metric, the rows that reached ``maximum`` through ``n``
    give pairs (value on the first ``n`` images, value on all): with at least
    :data:`LINE_ROWS` of them a least-squares line maps a short row's value, else their mean
    difference shifts it. On the digits DiT the difference grows with the value (digits-FID on
    all 256 images ≈ 1.23 × on the first 64 − 5.2; mean shift +1.3 for the best rows, +7.1 for
    the worst), so one constant shift would make stopped rows look better than they are.
    """
    pairs: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for row in rows:
        if row.metrics.get("n_images", maximum) < maximum:
            continue
        for count, metrics in row.tags.get("levels", {}).items():
            for name, value in metrics.items():
                full = row.metrics.get(name)
                if name != "n_images" and full is not None and math.isfinite(value) and \
                        math.isfinite(full):
                    pairs.setdefault((int(count), name), []).append((value, full))
    maps = {key: _value_map(found) for key, found in pairs.items()}
    out = []
    for row in rows:
        count = int(row.metrics.get("n_images", maximum))
        out.append({name: maps[(count, name)](value) if (count, name) in maps else value
                    for name, value in row.metrics.items()})
    return out


#: Rows needed before a line (rather than a mean shift) maps short rows' values.
LINE_ROWS = 10


def _value_map(pairs: list[tuple[float, float]]) -> Callable[[float], float]:
    short, full = np.array(pairs).T
    if len(pairs) >= LINE_ROWS and np.ptp(short) > 0:
        slope, intercept = np.polyfit(short, full, 1)
        return lambda value: float(intercept + slope * value)
    shift = float(np.mean(full - short))
    return lambda value: value + shift
