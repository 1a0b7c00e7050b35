import numpy as np
import torch

from qua2.search.verify import bootstrap_indices, score_with_intervals
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
    metrics, intervals = score_with_intervals(MeanScorer(), images, reference, resamples)
    low, high = intervals["psnr"]
    assert low < metrics["psnr"] < high
    expected_half_width = 1.96 * images.std().item() / np.sqrt(400)
    assert abs((high - low) / 2 - expected_half_width) < 0.25 * expected_half_width
    assert "n_images" not in intervals


def test_resamples_are_shared_and_seeded():
    assert np.array_equal(bootstrap_indices(10, 5, 3), bootstrap_indices(10, 5, 3))
    assert not np.array_equal(bootstrap_indices(10, 5, 3), bootstrap_indices(10, 5, 4))
