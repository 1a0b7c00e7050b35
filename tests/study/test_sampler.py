import numpy as np

from qua2.specs import SearchSpace
from qua2.study.sampler import sample_configs, sweep_configs, uniform_configs

LAYERS = [f"l{i}" for i in range(40)]
SPACE = SearchSpace.grid(["uaq", "kmeans_c", "kmeans_a"], [3, 4])


def low_share(config):
    return np.mean([o.bits == 3 for _, o in config.items()])


def test_sampler_is_deterministic_and_extends():
    a = sample_configs(LAYERS, SPACE, 10, seed=3)
    b = sample_configs(LAYERS, SPACE, 20, seed=3)
    assert a == b[:10]
    assert len({c.digest() for c in b}) == 20


def test_exclude_gives_new_configs():
    first = sample_configs(LAYERS, SPACE, 10, seed=0)
    more = sample_configs(LAYERS, SPACE, 10, seed=0, exclude=[c.digest() for c in first])
    assert not {c.digest() for c in first} & {c.digest() for c in more}


def test_low_share_range_is_respected():
    configs = sample_configs(LAYERS, SPACE, 50, low_share=(0.8, 1.0), seed=1)
    shares = [low_share(c) for c in configs]
    assert min(shares) > 0.55 and np.mean(shares) > 0.8


def test_methods_are_mixed():
    config = sample_configs(LAYERS, SPACE, 1, seed=0)[0]
    assert len({o.method for _, o in config.items()}) == 3


def test_stratified_covers_range_evenly():
    shares = [low_share(c) for c in sample_configs(LAYERS, SPACE, 32, stratified=True, seed=0)]
    counts, _ = np.histogram(shares, bins=4, range=(0, 1))
    assert counts.min() >= 5  # 8 expected per quarter; plain U(0,1) often leaves gaps


def test_small_space_returns_only_distinct_configs():
    configs = sample_configs(["a"], SPACE, 50, seed=0)
    assert len(configs) == len(SPACE)


def test_anchors_and_sweep():
    anchors = uniform_configs(LAYERS, SPACE)
    assert len(anchors) == 6 and all(len({o for _, o in c.items()}) == 1 for c in anchors)
    sweep = sweep_configs(LAYERS[:3], SPACE)
    assert len(sweep) == 18 and all(len(c) == 1 and layer in c.choices for layer, c in sweep)
