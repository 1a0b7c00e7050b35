"""Fixtures shared by the model tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.tiny_pipelines import tiny_pipeline


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """family → directory of its saved tiny pipeline (built on first use, once per module)."""
    cache: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in cache:
            cache[family] = tmp_path_factory.mktemp(family)
            tiny_pipeline(family).save_pretrained(cache[family])
        return cache[family]

    return get
