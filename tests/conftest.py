"""Shared fixtures. Tests never touch the user's cache: QUA2_CACHE_DIR points at a temp dir."""

from __future__ import annotations

import os
import tempfile

import pytest

# Set at import, before any test module imports qua2 code that reads it.
os.environ.setdefault("QUA2_CACHE_DIR", tempfile.mkdtemp(prefix="qua2-test-cache-"))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(autouse=True, scope="session")
def _qua2_messages_on_stderr():
    """Library calls in tests print qua2's messages as the command line does."""
    from qua2.log import show_messages

    show_messages()

#: A few training steps: enough for a working pipeline, not for good digits.
TINY_STEPS = 30


@pytest.fixture(scope="session")
def tiny_recipe():
    from qua2.models.training import TrainRecipe

    # The same recipe as `model.options: {train_steps: 30}` in a study YAML, so both share
    # one cached model per session.
    return TrainRecipe(steps=TINY_STEPS, warmup=TINY_STEPS // 5)


@pytest.fixture(scope="session")
def tiny_digits_dit(tiny_recipe):
    """digits-dit trained for a few steps (cached in the session's temp cache)."""
    from qua2.models import load_model

    return load_model("digits-dit", recipe=tiny_recipe)


@pytest.fixture(scope="session")
def tiny_digits_unet(tiny_recipe):
    from qua2.models import load_model

    return load_model("digits-unet", recipe=tiny_recipe)
