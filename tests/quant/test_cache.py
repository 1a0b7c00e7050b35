"""Option cache: compute once, reuse, invalidate exactly what changed, resume, recover."""

from __future__ import annotations

import json

import pytest
import torch

from qua2.errors import Qua2Error
from qua2.quant import OptionCache, quantize_weight
from qua2.quant import cache_build as cache_build_module
from qua2.quant.cache_index import INDEX_NAME
from qua2.quant.layers import quantizable_layers
from qua2.specs import QuantOption, SearchSpace


def _build(model, space, directory, messages):
    return OptionCache.build(model, space, directory, progress=False, log=messages.append)


def test_build_computes_every_layer_and_option_once(model, space, tmp_path, messages):
    cache = _build(model, space, tmp_path / "fresh", messages)
    layers = quantizable_layers(model)
    assert cache.layers == tuple(layers)
    assert cache.last_build.computed == len(layers) * len(space)
    assert cache.last_build.reused == 0
    assert any(f"computing {len(layers) * len(space)} of" in m for m in messages)
    shards = list((cache.directory / "shards").glob("*.safetensors"))
    assert len(shards) == len(layers) * len(space)
    assert cache.total_params == sum(p.numel() for p in model.parameters())


def test_option_stats_match_a_direct_quantization(built):
    # Exact: every layer of the small model has its own row length, so the cache build
    # quantized each one alone, with the same ops as quantize_weight (and the same process).
    model, cache = built
    for layer in cache.layers:
        weight = model.get_submodule(layer).weight
        for option in cache.space:
            stats = cache.option_stats(layer, option)
            direct = quantize_weight(weight, option.method, option.bits)
            assert stats.nbytes == direct.nbytes
            assert stats.fp16_nbytes == 2 * weight.numel()
            assert stats.error == pytest.approx(direct.error, rel=1e-12)
            assert stats.bits == pytest.approx(direct.average_bits)
            assert torch.equal(cache.dequantized(layer, option), direct.dequantize())


def test_reuse_on_second_build(built, space, messages):
    model, cache = built
    again = _build(model, space, cache.directory, messages)
    assert again.last_build.computed == 0
    assert again.last_build.reused == len(cache.layers) * len(space)


def test_index_is_readable_json_with_hashes(built, space):
    _, cache = built
    index = json.loads((cache.directory / INDEX_NAME).read_text())
    assert index["format_version"] == 1
    assert index["space_digest"] == space.digest()
    entry = index["layers"]["inp"]
    assert len(entry["weight_hash"]) == 32
    assert set(entry["options"]) == {o.key for o in space}
    assert {"file", "file_bytes", "file_hash", "nbytes", "error", "mse"} <= set(
        entry["options"]["uaq-w3"])


def test_changed_weight_recomputes_only_that_layer(built, space, messages):
    model, cache = built
    with torch.no_grad():
        model.conv.weight[0, 0, 0, 0] += 1.0
    before = cache.option_stats("conv", "uaq-w3")
    again = _build(model, space, cache.directory, messages)
    assert again.last_build.computed == len(space)
    assert again.last_build.reasons["changed weights"] == len(space)
    assert any("changed weights" in m for m in messages)
    assert again.option_stats("conv", "uaq-w3").error != before.error
    assert len(list((cache.directory / "shards").glob("*"))) == len(cache.layers) * len(space)


def test_changed_space_computes_only_new_options_and_drops_removed(built, messages):
    model, cache = built
    bigger = SearchSpace(tuple(cache.space) + (QuantOption("group", 3, 8),))
    again = _build(model, bigger, cache.directory, messages)
    assert again.last_build.computed == len(cache.layers)
    assert any("search space changed (+1 / -0" in m for m in messages)
    smaller = SearchSpace((QuantOption("uaq", 4),))
    last = _build(model, smaller, cache.directory, messages)
    assert last.last_build.computed == 0
    assert last.last_build.removed_files == len(cache.layers) * len(cache.space)
    with pytest.raises(Qua2Error, match="not in the cache's search space"):
        last.option_stats("inp", "uaq-w3")


def test_missing_and_corrupt_shards_are_recomputed(built, space, messages):
    model, cache = built
    index = json.loads((cache.directory / INDEX_NAME).read_text())
    missing = cache.directory / index["layers"]["inp"]["options"]["uaq-w3"]["file"]
    corrupt = cache.directory / index["layers"]["out"]["options"]["kmeans_a-w4"]["file"]
    missing.unlink()
    data = bytearray(corrupt.read_bytes())
    data[-1] ^= 0xFF  # same size, different content: only the hash can tell
    corrupt.write_bytes(bytes(data))
    again = _build(model, space, cache.directory, messages)
    assert again.last_build.computed == 2
    assert again.last_build.reasons == {"missing shard": 1, "corrupt shard": 1}
    assert torch.equal(again.dequantized("out", "kmeans_a-w4"),
                       cache.dequantized("out", "kmeans_a-w4"))


def test_lost_index_is_rebuilt_from_shard_metadata(built, space, messages):
    model, cache = built
    (cache.directory / INDEX_NAME).unlink()
    again = _build(model, space, cache.directory, messages)
    assert again.last_build.computed == 0
    (cache.directory / INDEX_NAME).write_text("{not json")
    again = _build(model, space, cache.directory, messages)
    assert again.last_build.computed == 0
    assert any("unreadable" in m for m in messages)


def test_interrupted_build_resumes(model, space, tmp_path, messages, monkeypatch):
    calls = {"n": 0}
    real = cache_build_module.quantize_layers

    def flaky(weights, options):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(weights, options)

    monkeypatch.setattr(cache_build_module, "BATCH_WEIGHTS", 1)  # one layer per batch
    monkeypatch.setattr(cache_build_module, "quantize_layers", flaky)
    with pytest.raises(KeyboardInterrupt):
        _build(model, space, tmp_path / "c", messages)
    monkeypatch.setattr(cache_build_module, "quantize_layers", real)
    done = 2 * len(space)  # the first two layers finished before the interrupt
    cache = _build(model, space, tmp_path / "c", messages)
    assert cache.last_build.reused == done
    assert cache.last_build.computed == len(cache.layers) * len(space) - done


def test_corrupt_shard_at_load_time(built, space, messages):
    _model, cache = built
    index = json.loads((cache.directory / INDEX_NAME).read_text())
    path = cache.directory / index["layers"]["seq"]["options"]["uaq-w4"]["file"]
    good = cache.quantized("seq", "uaq-w4").dequantize()
    path.write_bytes(b"garbage")
    # Built in this process from a live module: recomputed, and said so.
    assert torch.equal(cache.quantized("seq", "uaq-w4").dequantize(), good)
    assert any("was corrupt; recomputed" in m for m in messages)
    # Opened from disk alone there is nothing to recompute from: a clear error.
    path.write_bytes(b"garbage")
    with pytest.raises(Qua2Error, match="is corrupt and its FP weight is not at hand"):
        OptionCache(cache.directory).quantized("seq", "uaq-w4")


def test_open_errors_are_one_sentence(tmp_path):
    with pytest.raises(Qua2Error, match="no option cache"):
        OptionCache(tmp_path)
    (tmp_path / INDEX_NAME).write_text(json.dumps({"format": "qua2-option-cache",
                                                   "format_version": 99}))
    with pytest.raises(Qua2Error, match="format version 99"):
        OptionCache(tmp_path)


def test_unknown_layer_or_method_fails_before_work(model, tmp_path, messages):
    with pytest.raises(Qua2Error, match="no layer 'nope'"):
        OptionCache.build(model, SearchSpace((QuantOption("uaq", 3),)), tmp_path,
                          layers=["nope"], progress=False, log=messages.append)
    with pytest.raises(Qua2Error, match="unknown quantization method 'foo'"):
        OptionCache.build(model, SearchSpace((QuantOption("foo", 3),)), tmp_path,
                          progress=False, log=messages.append)
    with pytest.raises(Qua2Error, match="no weight matrix"):
        OptionCache.build(model, SearchSpace((QuantOption("uaq", 3),)), tmp_path,
                          layers=["norm"], progress=False, log=messages.append)


def test_memo_is_bounded_and_reused(built):
    _, cache = built
    first = cache.dequantized("inp", "uaq-w3")
    assert cache.dequantized("inp", "uaq-w3") is first
    cache.memory_budget = first.numel() * 4 + 100  # room for "inp" alone
    cache.dequantized("seq", "uaq-w3")  # smaller than "inp", but both do not fit
    assert cache.dequantized("inp", "uaq-w3") is not first  # evicted, loaded again
    half = cache.dequantized("inp", "uaq-w3", dtype=torch.float16)
    assert half.dtype == torch.float16


def test_stats_for_graph_features(built):
    _, cache = built
    rows = list(cache.iter_stats())
    assert len(rows) == len(cache.layers) * len(cache.space)
    for row in rows:
        assert row.nbytes < row.fp16_nbytes and 0 < row.error < 1
        assert row.size_ratio == pytest.approx(row.fp16_nbytes / row.nbytes)
