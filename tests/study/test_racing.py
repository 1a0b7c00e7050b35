"""Racing (qua2.study.racing): the stopping rule on synthetic races with a known answer, the
schedule, the surrogates' full-scale metrics, and a real racing study end to end."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from qua2.study.config import study_config_from_dict
from qua2.study.racing import (
    full_scale_metrics,
    image_levels,
    load_ingredients,
    race_step,
    save_ingredients,
    scores_path,
)
from qua2.study.store import Row, Store
from qua2.study.study import Study

MAXIMUM = 64


def synthetic_study(tmp_path, error_rate=0.05):
    """A study whose primary metric is the per-image MSE (no networks needed to race it)."""
    config = study_config_from_dict({
        "name": "synthetic-race", "images_per_config": MAXIMUM,
        "metrics": {"primary": "mse"},
        "images": {"racing": True, "min": 16, "error_rate": error_rate}})
    return Study.create(config, tmp_path / "study")


def add_row(study, row_id, kind, bits, values, tags=None):
    """A done row whose per-image MSE are ``values`` (its ingredients stored as racing does)."""
    values = np.asarray(values, dtype=np.float64)
    with Store(study.path("study.sqlite")) as store:
        store.add([(row_id, kind, {"layers": {}}, bits, tags or {})])
        save_ingredients(study.directory, row_id, {"per_image/mse": values})
        mse = float(values.mean())
        store.finish(row_id, {"n_images": float(len(values)), "mse": mse, "objective": -mse},
                     {}, bits)


def verdict(study, row_id):
    with Store(study.path("study.sqlite")) as store:
        row = store.get(row_id)
    return row.status, row.tags.get("race", [])


def test_image_levels_double_up_to_the_maximum():
    assert image_levels(64, 256) == [64, 128, 256]
    assert image_levels(64, 200) == [64, 128, 200]
    assert image_levels(16, 16) == [16]


def test_a_row_beaten_by_a_cheaper_one_stops_and_a_good_one_continues(tmp_path):
    study = synthetic_study(tmp_path)
    rng = np.random.default_rng(0)
    common = rng.gamma(2.0, 0.01, MAXIMUM)  # per-image difficulty shared by every config
    add_row(study, "cheap-good", "random", 3.2, common)
    add_row(study, "dear-bad", "random", 3.8, (common * 2.0)[:16])  # twice the error, more bits
    add_row(study, "cheap-better", "random", 3.1, (common * 0.8)[:16])
    assert race_step(study) == 1
    status, race = verdict(study, "dear-bad")
    assert status == "done" and race[-1]["verdict"] == "stop" and race[-1]["images"] == 16
    assert race[-1]["gap_low"] > 0
    status, race = verdict(study, "cheap-better")  # nothing at ≤ 3.1 bits beats it
    assert status == "pending" and race[-1]["verdict"] == "continue"
    with Store(study.path("study.sqlite")) as store:
        row = store.get("cheap-better")
    assert row.tags["images"] == 32 and row.tags["levels"]["16"]["mse"] == pytest.approx(
        float((common * 0.8)[:16].mean()))


def test_a_better_row_with_more_bits_is_never_stopped_by_a_worse_cheaper_one(tmp_path):
    study = synthetic_study(tmp_path)
    common = np.random.default_rng(1).gamma(2.0, 0.01, MAXIMUM)
    add_row(study, "cheap-bad", "random", 3.0, common * 3)
    add_row(study, "dear-good", "random", 4.0, (common * 0.5)[:16])
    race_step(study)
    assert verdict(study, "dear-good")[1][-1]["verdict"] == "continue"


def test_sweep_rows_race_only_within_their_layer(tmp_path):
    study = synthetic_study(tmp_path)
    common = np.random.default_rng(2).gamma(2.0, 0.01, MAXIMUM)
    add_row(study, "a-good", "sweep", 15.0, common, {"layer": "a", "option": "x"})
    add_row(study, "b-bad", "sweep", 15.5, (common * 5)[:16], {"layer": "b", "option": "x"})
    add_row(study, "a-bad", "sweep", 15.5, (common * 5)[:16], {"layer": "a", "option": "y"})
    race_step(study)
    assert verdict(study, "a-bad")[1][-1]["verdict"] == "stop"
    assert verdict(study, "b-bad")[1][-1]["verdict"] == "continue"  # layer a is no rival


def _stop_rate(tmp_path, shift: float, trials: int) -> float:
    """How often a row whose true per-image error is ``shift`` above a cheaper rival's (paired
    images, independent per-image noise) is stopped at 16 images."""
    stops = 0
    for trial in range(trials):
        study = synthetic_study(tmp_path / f"t{trial}")
        rng = np.random.default_rng(100 + trial)
        common = rng.gamma(2.0, 0.01, MAXIMUM)
        rival = common + rng.normal(0, 0.004, MAXIMUM)
        mine = common[:16] + shift + rng.normal(0, 0.004, 16)
        add_row(study, "rival", "random", 3.0, rival)
        add_row(study, "mine", "random", 3.5, mine)
        race_step(study)
        stops += verdict(study, "mine")[1][-1]["verdict"] == "stop"
    return stops / trials


def test_the_stated_error_rate_holds_and_clear_losers_are_stopped(tmp_path):
    # Same true quality: stopping is an error, allowed at rate ≤ error_rate (0.05); with 60
    # trials a true rate of 0.05 gives ≤ 7 stops with probability 0.99.
    assert _stop_rate(tmp_path / "equal", 0.0, 60) <= 7 / 60
    # Two noise standard deviations worse on every image: the mean of 16 paired differences
    # is then ≈ 5.7 standard errors above 0, far beyond the one-sided bound at 0.05 / 3.
    assert _stop_rate(tmp_path / "worse", 0.008, 20) >= 0.9


def test_lost_ingredients_put_the_row_back_to_be_evaluated_again(tmp_path):
    study = synthetic_study(tmp_path)
    common = np.random.default_rng(3).gamma(2.0, 0.01, MAXIMUM)
    add_row(study, "cheap", "random", 3.0, common)
    add_row(study, "row", "random", 3.5, common[:16] * 3)
    path = scores_path(study.directory, "row")
    data = bytearray(path.read_bytes())
    data[-1] ^= 1  # a flipped bit in the last value: the file still parses
    path.write_bytes(bytes(data))
    assert load_ingredients(study.directory, "row") is None
    path.write_bytes(b"not safetensors")
    assert load_ingredients(study.directory, "row") is None
    assert race_step(study) == 1
    with Store(study.path("study.sqlite")) as store:
        row = store.get("row")
    assert row.status == "pending" and row.tags["images"] == 16 and "race" not in row.tags


def _row(metrics, tags=None) -> Row:
    return Row(0, "x", "random", {}, 3.5, "done", metrics, {}, None, tags or {})


def test_full_scale_metrics_map_short_rows_by_the_measured_relation():
    # 12 rows reached all 256 images through 64: their full value is exactly 1.25 × − 5 their
    # 64-image one, so a short row at 64 images is mapped by that line.
    full = [_row({"n_images": 256, "fid": 1.25 * v - 5}, {"levels": {"64": {"fid": v}}})
            for v in range(20, 80, 5)]
    # Only two rows reached 256 through 128: too few for a line, their mean shift is used.
    full += [_row({"n_images": 256, "fid": 20.0}, {"levels": {"128": {"fid": 21.0}}}),
             _row({"n_images": 256, "fid": 30.0}, {"levels": {"128": {"fid": 33.0}}})]
    short = [_row({"n_images": 64, "fid": 90.0}), _row({"n_images": 128, "fid": 40.0}),
             _row({"n_images": 32, "fid": 70.0})]
    moved = full_scale_metrics(full + short, 256)
    assert [m["fid"] for m in moved[:len(full)]] == [r.metrics["fid"] for r in full]
    assert moved[-3] == {"n_images": 64, "fid": pytest.approx(1.25 * 90 - 5)}
    assert moved[-2]["fid"] == 40.0 - 2.0
    assert moved[-1]["fid"] == 70.0  # no row measured anything at 32 images


RACING_STUDY = """
name: tiny-racing
model: {family: digits-dit, options: {train_steps: 30}}
sampler: {steps: 2, batch_size: 64}
images_per_config: 16
verification_images: 16
search_space: {methods: [uaq, kmeans_a], bits: [3, 4]}
config_sampler: {num_configs: 8}
images: {racing: true, min: 4, error_rate: 0.2}
pipeline: {sweep: false, surrogates: [ridge]}
"""


@pytest.fixture(scope="module")
def racing_study(tmp_path_factory):
    from qua2.pipeline import run_study
    from qua2.study.stages import RunOptions

    root = tmp_path_factory.mktemp("racing")
    (root / "study.yaml").write_text(RACING_STUDY)
    return run_study(root / "study.yaml", root / "out", RunOptions(threads=1),
                     ["model", "reference", "graph", "cache", "anchors", "sample"])


def test_a_racing_study_records_how_many_images_each_row_got(racing_study):
    with Store(racing_study.path("study.sqlite")) as store:
        rows = store.rows()
    assert all(r.status == "done" for r in rows)
    counts = {r.kind: set() for r in rows}
    for r in rows:
        counts[r.kind].add(r.metrics["n_images"])
        arrays = load_ingredients(racing_study.directory, r.id)
        assert arrays is not None and len(arrays["per_image/mse"]) == r.metrics["n_images"]
        decided = [d["images"] for d in r.tags.get("race", [])]
        got = r.metrics["n_images"]
        # A random row was decided at every level below what it got, and stopped at what it
        # got unless that is all 16 images.
        expected = [n for n in (4, 8) if n < got or n == got < 16] if r.kind == "random" else []
        assert decided == expected
    assert counts["uniform"] == {16.0}  # anchors always get every image
    assert counts["random"] <= {4.0, 8.0, 16.0}
    from qua2.study.results import status_summary

    summary = status_summary(racing_study)  # what `qua2 status` prints
    assert summary["images"] == sum(r.metrics["n_images"] for r in rows)
    assert summary["stopped_early"] == sum(r.metrics["n_images"] < 16 for r in rows)


def test_a_continued_row_equals_one_evaluated_on_all_its_images_at_once(racing_study):
    from qua2.specs import QuantConfig
    from qua2.study.evaluate import Evaluator
    from qua2.study.option_cache import open_option_cache

    with Store(racing_study.path("study.sqlite")) as store:
        row = max(store.rows(kind="random"), key=lambda r: r.metrics["n_images"])
    if row.metrics["n_images"] == 4:
        pytest.skip("every random row stopped at its first images")
    count = int(row.metrics["n_images"])
    fresh = Evaluator(racing_study, open_option_cache(racing_study)).evaluate(
        QuantConfig.from_dict(row.config), count=count)
    stored = load_ingredients(racing_study.directory, row.id)
    # Other batch shapes (4 + 4 + 8 images vs 16 at once) may differ in the last bits.
    for key, values in fresh.ingredients.items():
        np.testing.assert_allclose(stored[key], values, rtol=1e-4, atol=1e-5)
    for name in ("digits_fid", "mse", "class_accuracy"):
        assert row.metrics[name] == pytest.approx(fresh.metrics[name], rel=1e-3, abs=1e-5)


def test_racing_study_file_round_trips(racing_study):
    saved = yaml.safe_load(racing_study.path("study.yaml").read_text())
    assert saved["images"] == {"racing": True, "min": 4, "error_rate": 0.2}
    assert saved["design"]["kind"] == "random"
