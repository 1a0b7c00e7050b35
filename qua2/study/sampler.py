"""Which configurations a study evaluates: random samples, uniform anchors, one-at-a-time sweeps.

Random sampling follows Qua²SeDiMo (Mills et al., AAAI 2025, §"Sampling"): for each config draw
a low-bit share ``p ~ U(a, b)``; every layer independently takes the lowest bit-width with
probability ``p`` (otherwise one of the higher widths, uniformly) and a uniformly random method
among the options at that width. With bits {3, 4} this is exactly the paper's scheme; any set
of bit-widths works. The stratified variant draws ``p`` by Latin-hypercube strata instead, so
the average-bit range is covered evenly even for a few dozen configs.

The one-at-a-time sweep is MixDQ's (Zhao et al., ECCV 2024) sensitivity probe: each layer alone
at each option, every other layer in full precision.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from qua2.specs import QuantConfig, QuantOption, SearchSpace


def _options_by_bits(space: SearchSpace) -> dict[int, list[QuantOption]]:
    grouped: dict[int, list[QuantOption]] = {}
    for option in space:
        grouped.setdefault(option.bits, []).append(option)
    return dict(sorted(grouped.items()))


def config_for_share(layers: Sequence[str], space: SearchSpace, share: float,
                     rng: np.random.Generator) -> QuantConfig:
    """One random config where each layer takes the lowest bit-width with probability ``share``."""
    by_bits = _options_by_bits(space)
    widths = list(by_bits)
    low, higher = widths[0], widths[1:] or widths[:1]
    choices = {}
    for layer in layers:
        width = low if rng.random() < share else higher[rng.integers(len(higher))]
        candidates = by_bits[width]
        choices[layer] = candidates[rng.integers(len(candidates))]
    return QuantConfig(choices)


def _shares(count: int, low_share: tuple[float, float], stratified: bool,
            rng: np.random.Generator) -> np.ndarray:
    a, b = low_share
    if not stratified:
        return rng.uniform(a, b, size=count)
    strata = (np.arange(count) + rng.random(count)) / count
    return a + (b - a) * rng.permutation(strata)


def sample_configs(layers: Sequence[str], space: SearchSpace, count: int,
                   low_share: tuple[float, float] = (0.0, 1.0), stratified: bool = False,
                   seed: int = 0, exclude: Iterable[str] = ()) -> list[QuantConfig]:
    """``count`` distinct random configs, none of whose digests is in ``exclude``.

    Shares are drawn in blocks of 16 (stratified within each block when asked), so the draws
    are the same whatever ``count`` is: asking for more configs later extends the sequence.
    Fewer than ``count`` come back only when the space has no more distinct configs.
    """
    seen = set(exclude)
    rng = np.random.default_rng(seed)
    configs: list[QuantConfig] = []
    for _ in range(10 * count + 100):
        for share in _shares(16, low_share, stratified, rng):
            config = config_for_share(layers, space, float(share), rng)
            if config.digest() not in seen and len(configs) < count:
                seen.add(config.digest())
                configs.append(config)
        if len(configs) >= count:
            break
    return configs


def uniform_configs(layers: Sequence[str], space: SearchSpace) -> list[QuantConfig]:
    """One config per option with every layer on that option (the study's anchors)."""
    return [QuantConfig.uniform(layers, option) for option in space]


def sweep_configs(layers: Sequence[str], space: SearchSpace) -> list[tuple[str, QuantConfig]]:
    """``(layer, config)`` for each layer alone at each option, the rest in full precision."""
    return [(layer, QuantConfig({layer: option})) for layer in layers for option in space]
