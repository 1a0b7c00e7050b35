"""Racing in verification: clearly beaten baselines stop early, everything else gets all images."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from qua2.metrics.per_image import ImageScores
from qua2.search.verification import verify
from qua2.search.verification_racing import RACE_FILE, verification_levels
from qua2.study.racing import load_ingredients, scores_path
from qua2.study.scoring import build_scorer

# The shipped digits DiT (real digits, so some baselines are clearly worse than the pick).
STUDY = """
name: tiny-verification-racing
model: {family: digits-dit}
sampler: {steps: 4, batch_size: 64}
images_per_config: 32
verification_images: 64
selection_images: 16
search_space: {methods: [uaq, kmeans_a], bits: [3, 4]}
config_sampler: {num_configs: 16}
images: {racing: true, min: 8, error_rate: 0.05}
pipeline: {sweep: false, surrogates: [ridge]}
"""
TOTAL = 64


@pytest.fixture(scope="module")
def verified(tmp_path_factory):
    from qua2.pipeline import run_study
    from qua2.study.stages import RunOptions

    root = tmp_path_factory.mktemp("verification-racing")
    (root / "study.yaml").write_text(STUDY)
    return run_study(root / "study.yaml", root / "out", RunOptions(threads=1),
                     ["model", "reference", "graph", "cache", "anchors", "sample", "fit",
                      "search", "verify"])


def _results(study) -> dict[str, dict]:
    return {r["name"]: r for r in json.loads(study.path("verification", "results.json")
                                             .read_text())}


def _scores(study, name: str) -> ImageScores:
    arrays = load_ingredients(study.path("verification"), name)
    assert arrays is not None
    return ImageScores.from_arrays(arrays, build_scorer(study).suite.frechet)


def test_levels_follow_the_study_racing_share(verified):
    assert verification_levels(verified) == [16, 32, 64]  # 64 · 8/32, doubling


def test_only_beaten_baselines_stop_and_picks_anchors_fp_get_every_image(verified):
    table = pd.read_csv(verified.path("verification", "table.csv"))
    decided = json.loads(verified.path(*RACE_FILE).read_text())
    results = _results(verified)
    assert decided, "no baseline was clearly beaten: the test would prove nothing"
    protected = set(table.loc[table["kind"].isin(["qua2", "anchor", "reference"]), "id"])
    assert not protected & set(decided)
    for name, result in results.items():
        got = result["metrics"]["n_images"]
        if name in decided:
            assert decided[name]["verdict"] == "stop" and decided[name]["gap_low"] > 0
            assert got == decided[name]["images"] < TOTAL
        else:
            assert got == TOTAL
        assert len(load_ingredients(verified.path("verification"), name)["per_image/mse"]) == got


def test_a_stopped_baseline_is_compared_on_the_images_both_have(verified):
    comparisons = pd.read_csv(verified.path("verification", "comparisons.csv"))
    table = pd.read_csv(verified.path("verification", "table.csv"))
    decided = json.loads(verified.path(*RACE_FILE).read_text())
    ids = dict(zip(table["name"] + "@" + table["budget"].astype(str), table["id"]))
    short = comparisons[comparisons["images"] < TOTAL]
    assert len(short) and set(short["other"].map(str)) <= set(table["name"])
    for row in short.itertuples():
        pick = ids[f"{row.pick}@{row.budget}"]
        other = ids[f"{row.other}@{row.budget}"]
        assert row.images == decided[other]["images"]
        first = np.arange(int(row.images))  # recomputed from the stored per-image scores
        expected = (_scores(verified, pick).aggregate(first)["digits_fid"]
                    - _scores(verified, other).aggregate(first)["digits_fid"])
        assert row.delta == pytest.approx(expected, rel=1e-9)
        assert row.verdict == "better"  # what stopping it claimed
    markdown = verified.path("verification", "table.md").read_text()
    assert "Racing:" in markdown and f"(first {int(short['images'].iloc[0])} images)" in markdown


def test_a_pick_grown_in_levels_equals_one_verified_on_all_images_at_once(verified):
    from qua2.search.stage import load_candidates
    from qua2.study.option_cache import open_option_cache

    pick = next(c for c in load_candidates(verified) if c.kind == "qua2")
    name = pick.config.digest()
    once = verify(verified, {name: ("qua2", pick.config)}, open_option_cache(verified))[0]
    raced = _results(verified)[name]
    # 16 + 16 + 32 images in three batches vs 64 at once: the last bits may differ.
    for metric in ("digits_fid", "mse", "class_accuracy"):
        assert raced["metrics"][metric] == pytest.approx(once.metrics[metric], rel=1e-3,
                                                         abs=1e-5)


def test_rerun_resumes_and_rebuilds_lost_ingredients(verified):
    from qua2.pipeline import run_study
    from qua2.study.stages import RunOptions

    before = _results(verified)
    decided = json.loads(verified.path(*RACE_FILE).read_text())
    lost = next(iter(decided))
    scores_path(verified.path("verification"), lost).unlink()
    # A decision made against other picks (an earlier search) is not trusted: decided again.
    stale = {**decided, lost: {**decided[lost], "images": TOTAL // 2, "against": ["other"]}}
    verified.path(*RACE_FILE).write_text(json.dumps(stale))
    run_study(verified.path("study.yaml"), verified.directory, RunOptions(threads=1), ["verify"])
    after = _results(verified)
    assert json.loads(verified.path(*RACE_FILE).read_text()) == decided
    assert after[lost]["metrics"]["n_images"] == decided[lost]["images"]
    for name, result in before.items():
        for metric, value in result["metrics"].items():
            assert after[name]["metrics"][metric] == pytest.approx(value, rel=1e-6, abs=1e-9)


def test_an_interrupted_level_keeps_the_candidates_already_scored(verified, tmp_path):
    from qua2.search.stage import load_candidates
    from qua2.search.verification_racing import VerificationRace
    from qua2.study.option_cache import open_option_cache

    first, second = [c for c in load_candidates(verified) if c.kind == "anchor"][:2]
    candidates = {c.config.digest(): (c.kind, c.config) for c in (first, second)}
    race = VerificationRace(verified, candidates, open_option_cache(verified), rounds=20)
    race.directory, race.scores = tmp_path, {}  # start from nothing
    score = race.scorer.image_scores
    calls = []

    def interrupted(images, reference):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return score(images, reference)

    race.scorer.image_scores = interrupted
    with pytest.raises(KeyboardInterrupt):
        race.grow(list(candidates), 16)
    kept = load_ingredients(tmp_path, first.config.digest())
    assert kept is not None and len(kept["per_image/mse"]) == 16
    assert load_ingredients(tmp_path, second.config.digest()) is None
