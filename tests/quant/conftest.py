"""Fixtures for qua2.quant tests: small plain-torch models and a built option cache."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from qua2.specs import SearchSpace


class Small(nn.Module):
    """Linear, Conv2d and Conv1d layers with odd sizes; ~12 k parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(24, 40)
        self.conv = nn.Conv2d(4, 12, 3, padding=1)
        self.seq = nn.Conv1d(10, 6, 5)
        self.norm = nn.LayerNorm(40)
        self.out = nn.Linear(40, 33, bias=False)
        self.register_buffer("scale", torch.tensor(0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.norm(torch.nn.functional.gelu(self.inp(x)))) * self.scale


def small_model(seed: int = 0) -> Small:
    torch.manual_seed(seed)
    return Small().eval()


#: Qua²SeDiMo's space (3 methods × {3, 4} bits).
SEDIMO_SPACE = SearchSpace.grid(["uaq", "kmeans_c", "kmeans_a"], [3, 4])


@pytest.fixture
def make_small():
    """``small_model`` itself, for tests that need a second instance."""
    return small_model


@pytest.fixture
def model() -> Small:
    return small_model()


@pytest.fixture
def space() -> SearchSpace:
    return SEDIMO_SPACE


@pytest.fixture
def messages() -> list[str]:
    return []


@pytest.fixture(scope="session")
def template_cache(tmp_path_factory):
    """A cache of ``small_model()`` over the Sedimo space, built once per session."""
    from qua2.quant import OptionCache

    directory = tmp_path_factory.mktemp("template") / "cache"
    OptionCache.build(small_model(), SEDIMO_SPACE, directory, progress=False, log=lambda m: None)
    return directory


@pytest.fixture
def built(model, space, tmp_path, messages, template_cache):
    """(model, cache): a private copy of the template cache, re-opened through ``build`` (which
    verifies and reuses every shard), so a test may damage or extend it freely."""
    import shutil

    from qua2.quant import OptionCache

    shutil.copytree(template_cache, tmp_path / "cache")
    cache = OptionCache.build(model, space, tmp_path / "cache", progress=False,
                              log=messages.append)
    assert cache.last_build.computed == 0
    return model, cache
