"""Shared fixtures. Tests never touch the user's cache: QUA2_CACHE_DIR points at a temp dir."""

from __future__ import annotations

import os
import tempfile

import pytest

# Set at import, before any test module imports qua2 code that reads it.
os.environ.setdefault("QUA2_CACHE_DIR", tempfile.mkdtemp(prefix="qua2-test-cache-"))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

#: A few training steps: enough for a working pipeline, not for good digits.
TINY_STEPS = 30


@pytest.fixture(scope="session")
def tiny_recipe():
    from qua2.models.training import TrainRecipe

    return TrainRecipe(steps=TINY_STEPS, batch_size=32, warmup=5)


@pytest.fixture(scope="session")
def tiny_digits_dit(tiny_recipe):
    """digits-dit trained for a few steps (cached in the session's temp cache)."""
    from qua2.models import load_model

    return load_model("digits-dit", recipe=tiny_recipe)


@pytest.fixture(scope="session")
def tiny_digits_unet(tiny_recipe):
    from qua2.models import load_model

    return load_model("digits-unet", recipe=tiny_recipe)
