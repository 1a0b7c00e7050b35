"""Fixtures for the metric tests: the digits classifier is trained once per session.

The session's cache lives in the temp directory that ``tests/conftest.py`` points
``$QUA2_CACHE_DIR`` at, so the user's cache is never touched; tests that corrupt or re-train a
cache use their own ``tmp_path`` instead.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def classifier():
    from qua2.metrics.classifier import load_digits_classifier

    return load_digits_classifier()


@pytest.fixture(scope="session")
def real_digits() -> tuple[torch.Tensor, torch.Tensor]:
    from qua2.metrics.digits import load_digits_images

    return load_digits_images()


class PixelFeatures:
    """The simplest feature extractor: flattened pixels (counts its calls for cache tests)."""

    id = "test-pixels-v1"

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return images.flatten(1)


@pytest.fixture
def pixels() -> PixelFeatures:
    return PixelFeatures()
