"""GGUF types as methods of a study and as one GGUF file that diffusers loads, quantized.

The block encoders themselves are checked against ggml, the gguf package and diffusers in
test_gguf.py; here: the per-tensor fallback, the option cache's bytes and bits, the written
file read back by qua2 (bit-exact) and by diffusers' ``from_single_file`` on tiny random Flux,
SD3 and SDXL-UNet denoisers (outputs within diffusers' float16 dequantization, weights kept
quantized in memory).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from qua2.errors import Qua2Error
from qua2.quant import OptionCache, quantized
from qua2.quant.gguf import GGUF_TYPES, dequantize_gguf, gguf_bits_per_weight, quantize_gguf
from qua2.quant.gguf_file import load_gguf, read_gguf_metadata, write_gguf
from qua2.quant.gguf_methods import F16, _layout, actual_type, stored_type
from qua2.quant.layers import quantizable_layers
from qua2.specs import QuantConfig, QuantOption, SearchSpace

pytest.importorskip("gguf")


@pytest.mark.parametrize("type_name", GGUF_TYPES)
def test_the_stored_type_is_recovered_for_every_row_length(type_name):
    for row_length in range(1, 1 << 13):
        for real in {actual_type(type_name, row_length), F16}:  # F16: convolutions
            block, size = _layout(real)
            assert row_length % block == 0
            assert stored_type(type_name, row_length, row_length // block * size) == real


def test_llama_cpp_fallback_chain():
    assert actual_type("q4_k", 512) == "q4_k"
    assert actual_type("q4_k", 96) == "q5_0"
    assert actual_type("q3_k", 96) == "iq4_nl"
    assert actual_type("q6_k", 1152) == "q8_0"
    assert actual_type("q4_0", 40) == F16


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.wide = nn.Linear(512, 16)  # holds K-quant super-blocks
        self.narrow = nn.Linear(96, 8)  # 32-blocks only
        self.odd = nn.Linear(40, 4)  # no block: F16
        self.conv = nn.Conv2d(32, 8, 3)  # convolutions stay F16


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    torch.manual_seed(0)
    model = Net()
    space = SearchSpace(tuple(QuantOption(t, b) for t, b in (("q4_k", 4), ("q4_0", 4),
                                                             ("q8_0", 8))))
    cache = OptionCache.build(model, space, tmp_path_factory.mktemp("gguf") / "cache",
                              progress=False, log=lambda _: None)
    return model, cache


def test_cache_holds_the_file_bytes_and_their_real_bits(cached):
    model, cache = cached
    wide = cache.quantized("wide", "q4_k-w4")
    assert torch.equal(wide.codes, quantize_gguf(model.wide.weight.detach(), "q4_k"))
    assert torch.equal(cache.dequantized("wide", "q4_k-w4"),
                       dequantize_gguf(wide.codes, "q4_k", (16, 512)))
    assert cache.option_stats("wide", "q4_k-w4").bits == gguf_bits_per_weight("q4_k")  # 4.5
    assert cache.option_stats("narrow", "q4_k-w4").bits == gguf_bits_per_weight("q5_0")
    for layer in ("odd", "conv"):  # F16: exact fp16 rounding, 16 bits
        assert cache.option_stats(layer, "q4_0-w4").bits == 16.0
        weight = model.get_submodule(layer).weight.detach()
        assert torch.equal(cache.dequantized(layer, "q4_0-w4"), weight.half().float())


def test_the_gguf_file_loads_back_bit_exactly_into_qua2(cached, tmp_path):
    model, cache = cached
    config = QuantConfig({"wide": QuantOption("q4_k", 4), "narrow": QuantOption("q8_0", 8),
                          "odd": QuantOption("q4_0", 4), "conv": QuantOption("q4_0", 4)})
    summary = write_gguf(model, config, cache, tmp_path / "m.gguf", {"config_id": "abc"})
    assert summary.tensor_types == {"wide.weight": "q4_k", "narrow.weight": "q8_0",
                                    "odd.weight": F16, "conv.weight": F16}
    assert read_gguf_metadata(tmp_path / "m.gguf")["config_id"] == "abc"
    fresh = Net()
    load_gguf(fresh, tmp_path / "m.gguf")
    with quantized(model, config, cache):
        for name, value in model.state_dict().items():  # the same decoder on the same bytes
            assert torch.equal(fresh.state_dict()[name], value), name


def test_a_config_that_is_not_gguf_is_refused(cached, tmp_path):
    model, cache = cached
    with pytest.raises(Qua2Error, match=r"does not cover|not GGUF"):
        write_gguf(model, QuantConfig({"wide": QuantOption("uaq", 4)}), cache,
                   tmp_path / "x.gguf")


@pytest.mark.parametrize("family", ["flux", "sd3", "sdxl"])
def test_diffusers_loads_the_file_natively_and_keeps_it_quantized(family, tmp_path):
    from diffusers import GGUFQuantizationConfig
    from diffusers.quantizers.gguf.utils import GGUFParameter

    from qua2.models.architectures import tiny_denoiser

    torch.manual_seed(0)
    module, example = tiny_denoiser(family)
    module.eval()
    space = SearchSpace((QuantOption("q4_0", 4), QuantOption("q8_0", 8),
                         QuantOption("q4_k", 4)))
    cache = OptionCache.build(module, space, tmp_path / "cache", progress=False,
                              log=lambda _: None)
    layers = quantizable_layers(module)
    config = QuantConfig({layer: space.options[i % 3] for i, layer in enumerate(layers)})
    summary = write_gguf(module, config, cache, tmp_path / "m.gguf")
    module.save_pretrained(tmp_path / "config")
    with torch.no_grad(), quantized(module, config, cache):
        expected = _output(module(*example.args, **example.kwargs))
    loaded = type(module).from_single_file(
        str(tmp_path / "m.gguf"), config=str(tmp_path / "config"),
        quantization_config=GGUFQuantizationConfig(compute_dtype=torch.float32))
    with torch.no_grad():
        got = _output(loaded(*example.args, **example.kwargs))
    # diffusers dequantizes blocks in float16 (its dequantize_gguf_tensor passes no dtype):
    # each weight moves by ≤ 2^-11 of its block's largest value, which moves the outputs of
    # these 2-layer random models by ~1e-4 (seen ≤ 9e-5); a wrong type or key would move them
    # by O(1).
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-3)
    params = dict(loaded.named_parameters())
    gguf_names = [n for n, t in summary.tensor_types.items() if t != F16]
    assert gguf_names
    for name in gguf_names:  # stays quantized in memory: the block bytes, not floats
        assert isinstance(params[name], GGUFParameter)
        assert params[name].dtype == torch.uint8
        layer, option = name.removesuffix(".weight"), config[name.removesuffix(".weight")]
        assert params[name].numel() == cache.quantized(layer, option).codes.numel()


def _output(out):
    return out[0] if isinstance(out, tuple) else out.sample
