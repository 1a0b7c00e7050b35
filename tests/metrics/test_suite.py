import math

import pytest
import torch

from qua2.errors import Qua2Error
from qua2.metrics import FrechetScorer, MetricSuite, score_images


@pytest.fixture(scope="module")
def suite(classifier):
    return MetricSuite.for_digits()


def test_real_vs_real_floor_far_below_noise(suite, classifier, real_digits):
    """Two disjoint halves of the real digits vs each other, against noise vs real."""
    images, _ = real_digits
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    half_a, half_b = images[perm[:898]], images[perm[898:]]
    real_scorer = FrechetScorer(classifier, half_a, use_cache=False)
    floor = real_scorer(half_b)
    noise = torch.rand(899, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    assert floor < 0.02 * real_scorer(noise)
    assert suite.frechet["digits_fid"](images[perm[:256]]) < 0.1 * suite.frechet["digits_fid"](
        noise[:256])


def test_score_keys_and_fp_vs_fp(suite, real_digits):
    images, labels = real_digits
    x, y = images[:256], labels[:256]
    out = suite.score(x, labels=y, fp_images=x)
    assert set(out) == {"n_images", "digits_fid", "class_accuracy", "psnr", "ssim", "mse"}
    assert out["psnr"] == math.inf and out["ssim"] == 1.0 and out["mse"] == 0.0
    assert out["class_accuracy"] > 0.95 and out["n_images"] == 256
    noisy = (x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0)))
    worse = suite.score(noisy.clamp(-1, 1), labels=y, fp_images=x)
    assert worse["digits_fid"] > out["digits_fid"] and math.isfinite(worse["psnr"])
    assert all(isinstance(v, float) for v in worse.values())


def test_score_images_default_suite(classifier, real_digits):
    images, labels = real_digits
    out = score_images(images[:64], labels[:64])
    assert {"digits_fid", "class_accuracy"} <= set(out) and "psnr" not in out


def test_missing_parts_give_clear_errors(real_digits):
    images, labels = real_digits
    bare = MetricSuite()
    assert bare.score(images[:4]) == {"n_images": 4.0}
    with pytest.raises(Qua2Error, match="no classifier"):
        bare.score(images[:4], labels=labels[:4])
    with pytest.raises(Qua2Error, match="QUA2_CLIP_MODEL"):
        bare.score(images[:4], prompts=["a"] * 4)
    with pytest.raises(Qua2Error, match=r"\[N, C, H, W\]"):
        bare.score(images[0])


def test_real_image_suite_needs_weights(monkeypatch):
    monkeypatch.delenv("QUA2_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.delenv("QUA2_CLIP_MODEL", raising=False)
    with pytest.raises(Qua2Error, match="QUA2_INCEPTION_WEIGHTS"):
        MetricSuite.for_real_images(torch.zeros(4, 3, 32, 32))


@pytest.mark.slow
def test_real_image_suite_end_to_end(pth_weights, clip_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("QUA2_CACHE_DIR", str(tmp_path))
    gen = torch.Generator().manual_seed(0)
    real = torch.rand(6, 3, 16, 16, generator=gen) * 2 - 1
    suite = MetricSuite.for_real_images(real, inception_weights=str(pth_weights),
                                        clip_model=str(clip_dir))
    images = torch.rand(4, 3, 16, 16, generator=gen) * 2 - 1
    out = suite.score(images, fp_images=images, prompts=["a", "b", "c", "d"])
    assert set(out) == {"n_images", "fid", "clip_score", "psnr", "ssim", "mse"}
    assert out["fid"] > 0 and 0 <= out["clip_score"] <= 100


def test_resampled_image_scores_equal_scoring_the_resample(suite, real_digits):
    """Bootstrap re-aggregation gives exactly what scoring the resampled images gives."""
    import numpy as np

    images, labels = real_digits
    x, y = images[:200], labels[:200]
    fp = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    per_image = suite.image_scores(x, labels=y, fp_images=fp)
    index = np.random.default_rng(0).integers(0, 200, size=200)  # with repeats
    picked = torch.as_tensor(index)
    direct = suite.score(x[picked], labels=y[picked], fp_images=fp[picked])
    resampled = per_image.aggregate(index)
    assert resampled.keys() == direct.keys()
    for key, value in direct.items():
        # Both score a batch of 200 images, and an image's features do not depend on its
        # batch neighbours, so the inputs of every metric agree; 1e-9 only absorbs the order
        # of float64 sums. (Features from batches of another size differ by float32 rounding,
        # which moved digits-FID by 2.5e-8 relative when measured; not the case here.)
        assert resampled[key] == pytest.approx(value, rel=1e-9), key
    # score() is aggregate() of the same image_scores() call: the same computation, exact.
    assert per_image.aggregate() == suite.score(x, labels=y, fp_images=fp)
    assert resampled["digits_fid"] != pytest.approx(per_image.aggregate()["digits_fid"])
