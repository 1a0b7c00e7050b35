"""Fixtures for the graph tests: tiny models of every family, traced once per session."""

from __future__ import annotations

import functools

import pytest

from qua2.graph import OpGraph, trace
from qua2.models.architectures import TINY_FAMILIES, tiny_denoiser


@functools.cache
def traced_family(family: str) -> tuple:
    """``(module, example inputs, graph)`` of the tiny ``family`` (cached: tracing is pure)."""
    module, example = tiny_denoiser(family)
    return module, example, trace(module, *example.args, **example.kwargs)


@pytest.fixture(scope="session")
def traced_of():
    """The cached tracing function, for tests that need a particular family."""
    return traced_family


@pytest.fixture(params=TINY_FAMILIES)
def family(request) -> str:
    return request.param


@pytest.fixture
def traced(family: str) -> tuple:
    return traced_family(family)


@pytest.fixture
def graph(traced) -> OpGraph:
    return traced[2]
