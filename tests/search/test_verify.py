import numpy as np
import pandas as pd
import pytest
import torch

from qua2.search.verification import (
    Verified,
    bootstrap_interval,
    paired_difference,
    score_with_intervals,
)
from qua2.stats import bootstrap_indices
from qua2.study.reference import Reference


class MeanScorer:
    """A scorer whose 'psnr' is the mean pixel value: its bootstrap CI is known analytically."""

    def score(self, images, reference):
        return {"psnr": float(images.mean()), "n_images": float(len(images))}


def test_bootstrap_interval_matches_the_standard_error():
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(400, 1, 1, 1, generator=generator)
    reference = Reference(images, images, list(range(400)), [0] * 400)
    resamples = bootstrap_indices(400, 400, seed=1)
    metrics, intervals, draws = score_with_intervals(MeanScorer(), images, reference, resamples)
    assert len(draws["psnr"]) == 400
    low, high = intervals["psnr"]
    assert low < metrics["psnr"] < high
    expected_half_width = 1.96 * images.std().item() / np.sqrt(400)
    assert abs((high - low) / 2 - expected_half_width) < 0.25 * expected_half_width
    assert "n_images" not in intervals


def test_resamples_are_shared_and_seeded():
    assert np.array_equal(bootstrap_indices(10, 5, 3), bootstrap_indices(10, 5, 3))
    assert not np.array_equal(bootstrap_indices(10, 5, 3), bootstrap_indices(10, 5, 4))


def test_frechet_intervals_remove_the_resampling_bias():
    """A resample's FID is biased upward; the shifted interval is centred on the estimate."""
    point = 10.0
    draws = np.random.default_rng(0).normal(15.0, 1.0, size=1000)  # all above the estimate
    low, high = bootstrap_interval("digits_fid", point, draws)
    assert (low + high) / 2 == pytest.approx(point, abs=0.1)
    assert high - low == pytest.approx(2 * 1.96, rel=0.1)
    low, high = bootstrap_interval("class_accuracy", point, draws)  # a mean: percentile
    assert 13 < low < high < 17


def test_paired_difference_uses_the_shared_resamples():
    rng = np.random.default_rng(0)
    common = rng.normal(0, 5, size=500)  # resample noise both configs share
    a = Verified("a", "qua2", 3.5, {"fid": 20.0}, {}, {"fid": list(22 + common)})
    b = Verified("b", "baseline", 3.5, {"fid": 25.0}, {}, {"fid": list(27 + common + 0.1
                                                                   * rng.normal(size=500))})
    delta, low, high = paired_difference(a, b, "fid")
    assert delta == -5.0
    assert low < -5.0 < high and high - low < 1.0  # unpaired widths would be ~20


def test_paired_comparisons_and_their_markdown():
    """Each qua2 pick of a budget (one after selection) against each baseline there and each
    anchor above it; the comparison never chooses among picks on the images it measures."""
    from types import SimpleNamespace

    from qua2.search.stage import Candidate
    from qua2.search.verification import markdown_tables, paired_comparisons
    from qua2.specs import QuantConfig, QuantOption

    def config(key):
        return QuantConfig({"layer": QuantOption.parse(key)})

    def verified(cfg, fid, noise):
        return Verified(cfg.digest(), "x", 3.5, {"digits_fid": fid}, {},
                        {"digits_fid": list(fid + shared + noise)})

    rng = np.random.default_rng(0)
    shared = rng.normal(0, 3, size=300)
    pick, worse_pick, base, anchor = (config(k) for k in ("uaq-w3", "uaq-w4", "kmeans_a-w3",
                                                         "kmeans_c-w4"))
    candidates = [Candidate(3.5, "qua2-1", "qua2", pick, 3.5),
                  Candidate(3.5, "qua2-2", "qua2", worse_pick, 3.5),
                  Candidate(3.5, "uniform", "baseline", base, 3.2),
                  Candidate(None, "anchor-kmeans_c-w4", "anchor", anchor, 5.6)]
    results = [verified(pick, 20.0, 0), verified(worse_pick, 30.0, 0),
               verified(base, 40.0, rng.normal(0, 0.5, 300)),
               verified(anchor, 20.2, rng.normal(0, 0.5, 300))]
    from qua2.study.config import MetricsSection

    metrics = MetricsSection(primary="digits_fid", lower_is_better=True)
    study = SimpleNamespace(config=SimpleNamespace(metrics=metrics, verification_images=300,
                                                   selection_images=64,
                                                   seeds=SimpleNamespace(selection=2_000_000),
                                                   images=SimpleNamespace(racing=False)),
                            precision_label="A16")
    both = paired_comparisons(study, candidates, results)
    assert list(both["pick"]) == ["qua2-1", "qua2-1", "qua2-2", "qua2-2"]
    frame = both[both["pick"] == "qua2-1"]
    assert list(frame["other"]) == ["uniform", "anchor-kmeans_c-w4"]
    assert list(frame["verdict"]) == ["better", "tie"]
    assert frame["delta"].iloc[0] == pytest.approx(-20.0)
    table = pd.DataFrame([{"budget": 3.5, "name": "qua2-1", "kind": "qua2", "avg_bits": 3.5,
                           "digits_fid": 20.0}])
    text = markdown_tables(study, table, frame)
    assert "- vs uniform: -20 [" in text and "→ better" in text
    assert "anchor-kmeans_c-w4 at 5.600 bits" in text
    assert "chosen among its search picks on 64 other images" in text
    assert "first" not in text and "Racing" not in text  # every row on all its images


def test_pareto_colours_tell_qua2_picks_from_the_qua2sedimo_baseline():
    from qua2.plots import KIND_COLOURS as COLOURS
    from qua2.plots import kind_colour as _colour

    assert _colour("qua2-1") == _colour("qua2-2") == COLOURS["qua2"]
    assert _colour("qua2sedimo") == COLOURS["qua2sedimo"] != COLOURS["qua2"]
    assert _colour("random-3") == COLOURS["random"]


def test_stats_helpers_leave_out_or_keep_nan_draws_and_are_seeded():
    from qua2.stats import bootstrap, paired_interval, percentile_interval, ratio_means

    draws = np.array([1.0, 2.0, np.nan, 3.0])
    low, high = percentile_interval(draws)  # an undefined resample is left out
    assert 1.0 <= low < high <= 3.0
    assert np.isnan(percentile_interval(draws, omit_nan=False)).all()
    a, b = np.array([5.0, 6.0, 7.0]), np.array([1.0, 2.0, 3.0])
    assert paired_interval(a, b, 4.0) == (4.0, 4.0, 4.0)  # the shared noise cancels exactly
    assert paired_interval(a, b, 3.0, shift_bias=True) == (3.0, 3.0, 3.0)
    estimate, low, high = ratio_means(np.array([[1.0], [3.0]]), np.array([[1.0], [1.0]]),
                                      rounds=50)
    assert estimate[0] == 2.0 and 1.0 <= low[0] <= high[0] <= 3.0
    first = bootstrap(5, lambda i: i.sum(), rounds=10, seed=3)
    assert first.shape == (10,) and np.array_equal(first, bootstrap(5, lambda i: i.sum(), 10, 3))


def test_a_damaged_progress_file_only_means_verifying_again(tmp_path):
    """Binary garbage, a line cut short and malformed entries are skipped, never a traceback."""
    import json

    from qua2.search.verification import Verified, _append_progress, _load_progress

    path = tmp_path / "progress.jsonl"
    setting = {"rounds": 2}
    good = Verified("qua2-1", "qua2", 3.5, {"digits_fid": 10.0}, {}, {})
    _append_progress(path, setting, good)
    with path.open("ab") as handle:
        handle.write(b"\x00\xff\xfe garbage\n5\n" + json.dumps({"setting": setting}).encode()
                     + b"\n{\"setting\": {\"rounds\": 2}, \"result\": {\"na")
    loaded = _load_progress(path, setting)
    assert list(loaded) == ["qua2-1"]
    assert loaded["qua2-1"].to_dict() == good.to_dict()
    assert _load_progress(tmp_path / "missing.jsonl", setting) == {}
