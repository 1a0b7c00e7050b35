"""Choice matrices, per-layer features and option statistics."""

from __future__ import annotations

import numpy as np
import pytest

from qua2.errors import Qua2Error
from qua2.specs import QuantConfig, QuantOption, SearchSpace
from qua2.surrogates.encoding import ConfigEncoder, OptionStat, OptionStats

SPACE = SearchSpace.grid(["uaq", "kmeans_c", "kmeans_a"], [3, 4])
LAYERS = ["a.q", "a.k", "b.ff"]


def _stats() -> OptionStats:
    return OptionStats({layer: {o.key: OptionStat(o.bits * 10.0 + i, 160.0, 0.1 * (8 - o.bits))
                                for o in SPACE} for i, layer in enumerate(LAYERS)})


def test_choices_round_trip_with_full_precision_layers():
    encoder = ConfigEncoder(LAYERS, SPACE.options, _stats())
    configs = [QuantConfig({"a.q": QuantOption("uaq", 3), "b.ff": QuantOption("kmeans_a", 4)}),
               QuantConfig.uniform(LAYERS, QuantOption("kmeans_c", 4))]
    choices = encoder.choices(configs)
    assert choices.tolist() == [[0, -1, 5], [3, 3, 3]]
    assert encoder.configs(choices) == configs
    assert encoder.choices([configs[0].to_dict()]).tolist() == [[0, -1, 5]]


def test_option_encoding_is_one_value_per_layer_and_option():
    encoder = ConfigEncoder(LAYERS, SPACE.options, _stats())
    assert encoder.encoding == "option"
    names = encoder.feature_names
    assert names[:7] == [*(f"a.q:option={o.key}" for o in SPACE), "a.q:error"]
    x = encoder.features(np.array([[0, -1, 5]]))
    row = dict(zip(names, x[0]))
    assert row["a.q:option=uaq-w3"] == 1 and sum(v for k, v in row.items()
                                                 if k.startswith("a.q:option")) == 1
    assert sum(v for k, v in row.items() if k.startswith("a.k:")) == 0  # full precision
    assert row["b.ff:option=kmeans_a-w4"] == 1 and row["b.ff:error"] == pytest.approx(0.4)


def test_feature_names_map_to_layers_and_full_precision_is_16_bits():
    encoder = ConfigEncoder(LAYERS, SPACE.options, _stats(), encoding="onehot")
    names = encoder.feature_names
    assert names[:5] == ["a.q:bits", "a.q:method=uaq", "a.q:method=kmeans_c",
                         "a.q:method=kmeans_a", "a.q:error"]
    assert [LAYERS[i] for i in encoder.feature_layer] == [n.split(":")[0] for n in names]
    x = encoder.features(np.array([[0, -1, 5]]))
    assert x.shape == (1, len(names))
    row = dict(zip(names, x[0]))
    assert row["a.q:bits"] == 3 and row["a.q:method=uaq"] == 1 and row["a.q:error"] == 0.5
    assert row["a.k:bits"] == 16 and row["a.k:error"] == 0
    assert sum(row[f"a.k:method={m}"] for m in ("uaq", "kmeans_c", "kmeans_a")) == 0
    ordinal = ConfigEncoder(LAYERS, SPACE.options, _stats(), encoding="ordinal")
    assert ordinal.features(np.array([[0, -1, 5]])).shape == (1, 9)


def test_avg_bits_follows_the_byte_definition():
    encoder = ConfigEncoder(LAYERS, SPACE.options, _stats())
    # layer i at option o stores bits*10 + i bytes of 160 FP16 bytes; FP layers their 160.
    expected = 16 * (30 + 160 + 40 + 2) / 480
    assert encoder.avg_bits(np.array([[0, -1, 5]]))[0] == pytest.approx(expected)


def test_bad_inputs_fail_with_one_sentence():
    encoder = ConfigEncoder(LAYERS, SPACE.options)
    with pytest.raises(Qua2Error, match="does not know"):
        encoder.choices([QuantConfig({"zzz": QuantOption("uaq", 3)})])
    with pytest.raises(Qua2Error, match="not in the surrogate's search space"):
        encoder.choices([QuantConfig({"a.q": QuantOption("uaq", 2)})])
    with pytest.raises(Qua2Error, match="3 columns"):
        encoder.check(np.zeros((2, 4)))
    with pytest.raises(Qua2Error, match="-1 … 5"):
        encoder.check(np.full((1, 3), 6))
    assert not encoder.use_error  # no statistics: no error feature


def test_stats_and_encoder_serialise_as_json(tmp_path):
    stats = _stats()
    path = stats.save(tmp_path / "stats.json")
    again = OptionStats.load(path)
    assert again.option_stats("a.k", QuantOption("uaq", 3)) == stats.option_stats("a.k", "uaq-w3")
    encoder = ConfigEncoder(LAYERS, SPACE.options, stats, encoding="ordinal")
    clone = ConfigEncoder.from_dict(encoder.to_dict())
    x = np.array([[0, -1, 5], [1, 2, 3]])
    assert np.array_equal(clone.features(x), encoder.features(x))
    with pytest.raises(Qua2Error, match="re-run"):
        stats.option_stats("nope", "uaq-w3")
