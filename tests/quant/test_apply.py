"""Applying configs: bit-exact restore, clear rejection of bad configs, average bits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from qua2.errors import Qua2Error
from qua2.quant import OptionCache, average_bits, bits_summary, quantized
from qua2.specs import QuantConfig, QuantOption, SearchSpace


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_swaps_cached_weights_and_restores_bit_exactly(built):
    model, cache = built
    before = _snapshot(model)
    pointers = {n: p.data_ptr() for n, p in model.named_parameters()}
    config = QuantConfig({"inp": QuantOption("kmeans_c", 3), "conv": QuantOption("uaq", 4)})
    x = torch.randn(3, 24)
    reference = model(x)
    with quantized(model, config, cache) as same:
        assert same is model
        assert torch.equal(model.inp.weight, cache.dequantized("inp", "kmeans_c-w3"))
        assert torch.equal(model.conv.weight, cache.dequantized("conv", "uaq-w4"))
        assert torch.equal(model.out.weight, before["out.weight"])  # not in the config
        assert not torch.equal(model(x), reference)
    after = _snapshot(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert {n: p.data_ptr() for n, p in model.named_parameters()} == pointers
    assert torch.equal(model(x), reference)


def test_restores_on_exceptions(built):
    model, cache = built
    before = _snapshot(model)
    config = QuantConfig.uniform(cache.layers, QuantOption("kmeans_a", 3))
    with pytest.raises(RuntimeError, match="boom"), quantized(model, config, cache):
        raise RuntimeError("boom")
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_nested_contexts_unwind_in_order(built):
    model, cache = built
    original = model.inp.weight.clone()
    with quantized(model, {"inp": "uaq-w3"}, cache):
        inner_before = model.inp.weight.clone()
        with quantized(model, {"inp": "uaq-w4"}, cache):
            assert torch.equal(model.inp.weight, cache.dequantized("inp", "uaq-w4"))
        assert torch.equal(model.inp.weight, inner_before)
    assert torch.equal(model.inp.weight, original)


def test_gradients_and_parameters_survive(built):
    model, cache = built
    params = list(model.parameters())
    with quantized(model, {"out": "uaq-w3"}, cache):
        model(torch.randn(2, 24)).sum().backward()
    assert list(model.parameters()) == params
    assert model.out.weight.grad is not None and model.out.weight.requires_grad


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"inpt": "uaq-w3"}, "layer 'inpt', which is not one of the 4 .*did you mean 'inp'"),
        ({"norm": "uaq-w3"}, "layer 'norm', which is not one of the 4 quantizable layers"),
        ({"inp": QuantOption("foo", 3)}, "layer 'inp' uses unknown quantization method 'foo'"),
        ({"inp": "uaq-w9"}, "bits must be an integer from 2 to 8"),
        ({"inp": "uaq-w1"}, "bits must be an integer from 2 to 8"),
        ({"inp": "rtn-w3"}, "layer 'inp' uses option 'rtn-w3', which the search space does not"),
        ({"inp": "uaq"}, "cannot read quantization option 'uaq'"),
        ({"inp": 3}, "write it as a QuantOption"),
    ],
)
def test_bad_configs_are_rejected_naming_the_offender(built, config, match):
    model, cache = built
    before = _snapshot(model)
    with pytest.raises(Qua2Error, match=match), quantized(model, config, cache):
        pass
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_config_forms_are_equivalent(built):
    _model, cache = built
    config = QuantConfig({"inp": QuantOption("uaq", 3), "out": QuantOption("kmeans_a", 4)})
    forms = [config, config.to_dict(), {"inp": "uaq-w3", "out": "kmeans_a-w4"},
             {"inp": {"method": "uaq", "bits": 3}, "out": QuantOption("kmeans_a", 4)}]
    assert len({average_bits(f, cache) for f in forms}) == 1


def test_average_bits_hand_computed(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 4), nn.Linear(4, 2, bias=False))
    space = SearchSpace((QuantOption("uaq", 4), QuantOption("kmeans_c", 3)))
    cache = OptionCache.build(model, space, tmp_path, progress=False, log=lambda m: None)
    # layer 0: 32 weights x 4 bits = 16 B + 4 rows x (scale, zero) x 2 B = 16 B -> 32 B of 64
    assert average_bits({"0": "uaq-w4"}, cache) == pytest.approx(16 * 32 / 64)
    # layer 1: 8 weights x 3 bits = 3 B + 2 rows x 8 centroids x 2 B = 32 B -> 35 B of 16
    assert average_bits({"1": "kmeans_c-w3"}, cache) == pytest.approx(16 * 35 / 16)
    both = bits_summary({"0": "uaq-w4", "1": "kmeans_c-w3"}, cache)
    assert both.layers_bits == pytest.approx(16 * (32 + 35) / (64 + 16))
    # whole model: 44 parameters; the 4 biases stay at 16 bits (8 B)
    assert both.model_bits == pytest.approx(16 * (32 + 35 + 8) / 88)
    assert average_bits({}, cache) == 16.0
    assert average_bits({"0": "uaq-w4"}, cache, whole_model=True) == pytest.approx(
        16 * (32 + 2 * (44 - 32)) / 88)


def test_apply_is_cheap_once_memoised(built, monkeypatch):
    """Once preloaded, applying a config only rebinds memoised tensors: no shard is read and no
    weight copied. (How long that takes is measured by benchmarks/bench_quant_apply.py; a wall
    time bound here would fail on a loaded machine.)"""
    model, cache = built
    config = QuantConfig.uniform(cache.layers, QuantOption("kmeans_c", 4))
    cache.preload()

    def no_shard_reads(*args, **kwargs):
        raise AssertionError("a preloaded cache read a shard while applying a config")

    monkeypatch.setattr(cache, "quantized", no_shard_reads)
    for _ in range(20):
        with quantized(model, config, cache):
            for layer in cache.layers:  # the memoised tensor itself, not a copy of it
                weight = model.get_submodule(layer).weight
                assert weight.data_ptr() == cache.dequantized(layer, "kmeans_c-w4").data_ptr()
