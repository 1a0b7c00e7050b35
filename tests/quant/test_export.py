"""Packed export: bit-packed safetensors + versioned JSON, reload into a fresh model."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from torch import nn

from qua2.errors import Qua2Error
from qua2.quant import OptionCache, export_packed, load_packed, quantized
from qua2.quant.export import CODES_BLOB, CONFIG_NAME, PARAMS_BLOB, WEIGHTS_NAME, read_manifest
from qua2.specs import QuantConfig, QuantOption, SearchSpace

#: Every method and every bit-width 2-8 at least once.
SPACE = SearchSpace(tuple(QuantOption.parse(k) for k in (
    "uaq-w2", "kmeans_c-w3", "kmeans_a-w4", "group-w5-g16", "rtn-w6", "uaq-w7", "kmeans_c-w8")))


def _tiny_dit(seed: int = 0, device: str = "cpu") -> nn.Module:
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(seed)
    with torch.device(device):
        model = diffusers.DiTTransformer2DModel(
            sample_size=8, num_layers=2, patch_size=2, attention_head_dim=8,
            num_attention_heads=3, in_channels=4, out_channels=8,
            activation_fn="gelu-approximate", num_embeds_ada_norm=1000,
            norm_type="ada_norm_zero", norm_elementwise_affine=False)
    return model.eval()


def _run(model: nn.Module) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 8, 8, generator=g)
    with torch.no_grad():
        return model(x, timestep=torch.tensor([10, 500]), class_labels=torch.tensor([1, 7])).sample


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny DiT, its cache, a random mixed config over every bit-width, and its export."""
    root = tmp_path_factory.mktemp("export")
    model = _tiny_dit()
    cache = OptionCache.build(model, SPACE, root / "cache", progress=False, log=lambda m: None)
    options = SPACE.options
    config = QuantConfig({layer: options[i % len(options)] for i, layer in enumerate(cache.layers)})
    with quantized(model, config, cache):
        fake = _run(model)
    summary = export_packed(model, config, cache, root / "out", model_id="tiny-dit")
    return model, cache, config, fake, summary


def test_reload_matches_fake_quantization(exported):
    _, _, _, fake, summary = exported
    fresh = _tiny_dit(seed=1)  # different random weights everywhere
    load_packed(fresh, summary.config_path.parent)
    out = _run(fresh)
    # Another instance with the same weights: equal up to float32 rounding should its tensors
    # take another kernel path (0 seen on every CPU setting tried); a wrong reload is off by
    # the quantization error itself (0.19 relative here).
    assert ((out - fake).norm() / fake.norm()).item() <= 1e-6


def test_reload_into_a_meta_model(exported):
    _, _, _, fake, summary = exported
    skeleton = _tiny_dit(device="meta")
    load_packed(skeleton, summary.config_path.parent)
    assert not any(t.is_meta for t in skeleton.state_dict().values())
    assert ((_run(skeleton) - fake).norm() / fake.norm()).item() <= 1e-6  # as above


def test_manifest_is_versioned_and_complete(exported):
    _model, cache, config, _, summary = exported
    manifest = json.loads(summary.config_path.read_text())
    assert manifest["format"] == "qua2-packed" and manifest["format_version"] == 1
    assert manifest["qua2_version"]
    assert manifest["model"]["id"] == "tiny-dit" and len(manifest["model"]["hash"]) == 32
    assert SearchSpace.from_dict(manifest["search_space"]) == SPACE
    assert QuantConfig.from_dict(manifest["config"]) == config
    assert set(manifest["layers"]) == set(cache.layers)
    assert manifest["average_bits"]["quantized_layers"] == pytest.approx(summary.layers_bits)
    assert "transformer_blocks.0.norm1.emb.class_embedder.embedding_table.weight" in \
        manifest["unquantized"]


def test_codes_are_bit_packed_and_parameters_fp16(exported):
    model, cache, config, _, summary = exported
    manifest = read_manifest(summary.config_path.parent)
    with safe_open(str(summary.weights_path), framework="pt") as handle:
        codes, params = handle.get_tensor(CODES_BLOB), handle.get_tensor(PARAMS_BLOB)
    assert codes.dtype == torch.uint8 and params.dtype == torch.float16
    expected_codes = expected_params = 0
    for layer, option in config.items():
        entry = manifest["layers"][layer]
        assert entry["codes"] == [expected_codes, (cache.numel(layer) * option.bits + 7) // 8]
        expected_codes += entry["codes"][1]
        qweight = cache.quantized(layer, option)
        for name, (offset, shape) in entry["params"].items():
            assert offset == expected_params
            stored = params[offset : offset + qweight.params[name].numel()].reshape(shape)
            assert torch.equal(stored, qweight.params[name].half())
            expected_params += stored.numel()
    assert codes.numel() == expected_codes and params.numel() == expected_params
    # Payload = packed quantized bytes (codes + fp16 params) + every other tensor, exactly.
    stats = sum(cache.option_stats(la, o).nbytes for la, o in config.items())
    tensors = {**model.state_dict(), **dict(model.named_buffers())}
    rest = sum(t.numel() * t.element_size() for n, t in tensors.items()
               if n.removesuffix(".weight") not in config.choices or not n.endswith(".weight"))
    assert summary.payload_bytes == stats + rest


def test_size_bound_on_an_fp16_model(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 512), nn.GELU(), nn.Linear(512, 384),
                          nn.LayerNorm(384), nn.Linear(384, 256)).half()
    space = SearchSpace.grid(["uaq", "kmeans_c", "kmeans_a"], [3, 4])
    cache = OptionCache.build(model, space, tmp_path / "c", progress=False, log=lambda m: None)
    config = QuantConfig({"0": space.options[0], "2": space.options[3], "4": space.options[4]})
    summary = export_packed(model, config, cache, tmp_path / "out", model_id="mlp")
    fp16_file = sum(t.numel() * 2 for t in model.state_dict().values())
    assert summary.fp16_bytes == fp16_file
    assert summary.file_bytes <= summary.model_bits / 16 * fp16_file * 1.02
    assert summary.file_bytes <= summary.size_bound
    fresh = nn.Sequential(nn.Linear(256, 512), nn.GELU(), nn.Linear(512, 384),
                          nn.LayerNorm(384), nn.Linear(384, 256)).half()
    load_packed(fresh, tmp_path / "out")
    x = torch.randn(4, 256).half()
    with quantized(model, config, cache):
        # The reload is exact: every tensor equals the fake-quantized model's, bit for bit.
        assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(),
                                                     model.state_dict().values()))
        # Outputs of two instances: equal up to a few fp16 steps (2e-3 at |y| ~ 2) should
        # another kernel path round differently (0 seen); quantization moves them by 0.34.
        torch.testing.assert_close(fresh(x), model(x), rtol=0, atol=1e-2)


def test_unquantized_dtype_casts_the_rest(exported, tmp_path):
    model, cache, config, _, full = exported
    small = export_packed(model, config, cache, tmp_path, model_id="tiny-dit",
                          unquantized_dtype=torch.float16)
    assert small.file_bytes < full.file_bytes


def test_load_rejects_wrong_models_and_damaged_files(exported, tmp_path):
    _, _, _, _, summary = exported
    with pytest.raises(Qua2Error, match="does not fit this model"):
        load_packed(nn.Linear(3, 3), summary.config_path.parent)
    out = tmp_path / "copy"
    out.mkdir()
    manifest = json.loads(summary.config_path.read_text())
    (out / WEIGHTS_NAME).write_bytes(summary.weights_path.read_bytes()[:-1] + b"\0")
    (out / CONFIG_NAME).write_text(json.dumps(manifest))
    with pytest.raises(Qua2Error, match="does not match its manifest"):
        load_packed(_tiny_dit(), out)
    manifest["format_version"] = 2
    (out / CONFIG_NAME).write_text(json.dumps(manifest))
    with pytest.raises(Qua2Error, match="format version 2"):
        read_manifest(out)
    with pytest.raises(Qua2Error, match="cannot read the packed export"):
        read_manifest(tmp_path / "nowhere")


def test_export_refuses_weights_the_cache_was_not_built_from(exported, tmp_path):
    _model, cache, config, _, _ = exported
    other = _tiny_dit(seed=5)
    with pytest.raises(Qua2Error, match="differs from the weights the option cache"):
        export_packed(other, config, cache, tmp_path, model_id="x")


def test_round_trip_with_conv_layers_and_scalar_buffers(built, make_small, tmp_path):
    model, cache = built
    config = {"inp": "uaq-w3", "conv": "kmeans_a-w4", "seq": "kmeans_c-w3"}
    export_packed(model, config, cache, tmp_path, model_id="small")
    fresh = make_small(seed=3)
    fresh.scale.fill_(9.0)
    load_packed(fresh, tmp_path)
    assert fresh.scale.item() == model.scale.item()
    x = torch.randn(2, 24)
    with quantized(model, config, cache):
        # Reloaded weights are bit-exact; the outputs of the two instances agree up to float32
        # rounding (1e-5 on O(1) outputs; 0 seen) should another kernel path be taken.
        assert torch.equal(fresh.inp.weight, model.inp.weight)
        assert torch.equal(fresh.conv.weight, model.conv.weight)
        assert torch.equal(fresh.seq.weight, model.seq.weight)
        torch.testing.assert_close(fresh(x), model(x), rtol=1e-5, atol=1e-5)
