"""Ids and cache keys are functions of a study's *inputs*, never of float results.

Float results (images, quantized weights, metrics) may differ in their last bits between CPUs
and thread counts (docs/reproducibility.md). What names things must not: a configuration's id
(the study's row id), the search-space digest, the sampled configurations themselves, the
option cache's keys and the trained-model cache directory. The golden values below are safe
to pin: each is computed from strings, integers and integer-seeded draws only, so it is the
same on every machine, thread count and CPU kernel set.
"""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from qua2.models.digits import DIGITS_DIT, model_dir
from qua2.models.training import TrainRecipe
from qua2.quant import OptionCache
from qua2.quant.cache_index import INDEX_NAME, SHARD_DIR
from qua2.quant.store import safe_name, tensor_digest
from qua2.specs import QuantConfig, QuantOption, SearchSpace
from qua2.study.sampler import sample_configs

SPACE = SearchSpace.grid(["uaq", "kmeans_c", "kmeans_a"], [3, 4])
LAYERS = [f"blocks.{i}.{part}" for i in range(4) for part in ("attn.to_q", "attn.to_k", "ff")]


def test_config_id_hashes_layer_names_and_option_keys_only():
    config = QuantConfig({"transformer_blocks.0.ff.net.2": QuantOption("kmeans_c", 4),
                          "transformer_blocks.0.attn1.to_q": QuantOption("uaq", 3),
                          "proj_out": QuantOption("group", 3, 64)})
    # Golden: SHA-256 of the sorted JSON {layer: "method-wBITS[-gGROUP]"}: strings only.
    assert config.digest() == "bfbc8c709b68703d"
    reordered = QuantConfig(dict(reversed(list(config.items()))))
    assert reordered.digest() == config.digest()
    assert QuantConfig.from_dict(json.loads(json.dumps(config.to_dict()))).digest() == \
        config.digest()
    # Golden: the option keys of the space, in order.
    assert SPACE.digest() == "535e34b3b40b751f"


def test_sampled_configs_are_the_same_on_every_machine():
    # The sampler draws with numpy's PCG64 from an integer seed: uniform doubles come from the
    # integer stream by exact IEEE operations, and choices are integer draws, so no CPU or
    # thread count can change them. (Golden for this numpy: NumPy does not promise identical
    # Generator streams across its own releases.)
    plain = sample_configs(LAYERS, SPACE, 4, seed=0)
    assert [c.digest() for c in plain] == [
        "0c23599dd60c4f80", "159eeb79439ffcfe", "044e8929164b1aa8", "d48f3afe057f9153"]
    stratified = sample_configs(LAYERS, SPACE, 4, seed=0, stratified=True, low_share=(0.2, 0.8))
    assert [c.digest() for c in stratified] == [
        "a3a9a09955cb83ee", "b34dd9e8ded7f0bb", "5930829cb198b449", "671476d86477ff36"]


def test_trained_model_cache_directory_is_keyed_by_the_recipe():
    # Golden: a hash of the architecture and recipe (JSON of ints, strings and the decimal
    # repr of floats such as lr=1e-3); the trained weights inside are *not* part of the key.
    assert model_dir(DIGITS_DIT, TrainRecipe(steps=30, warmup=6)).name == "digits-dit-5c64c330"


def _model() -> nn.Sequential:
    return nn.Sequential(nn.Linear(8, 4), nn.Linear(4, 3))


def _saved_model(path) -> None:
    """Weights from integers (k / 16: exact in float32), so their bytes are known anywhere."""
    model = _model()
    with torch.no_grad():
        for i, param in enumerate(model.parameters()):
            values = torch.arange(param.numel(), dtype=torch.float32) - 5 * i
            param.copy_(values.reshape(param.shape) / 16)
    save_file(model.state_dict(), str(path))


def _loaded(path) -> nn.Sequential:
    model = _model()
    model.load_state_dict(load_file(str(path)))
    return model


def _without_file_hashes(index: dict) -> dict:
    for layer in index["layers"].values():
        for entry in layer["options"].values():
            entry.pop("file_hash")
    return index


def test_option_cache_keys_are_fp_weight_bytes_layer_names_and_option_keys(tmp_path):
    """The cache hashes its *inputs*: the exact bytes of each FP weight (read from the same file
    on every machine) plus layer names and option keys, never a quantized result."""
    _saved_model(tmp_path / "model.safetensors")
    build = {"progress": False, "log": lambda message: None}
    first = OptionCache.build(_loaded(tmp_path / "model.safetensors"), SPACE, tmp_path / "a",
                              **build)
    second = OptionCache.build(_loaded(tmp_path / "model.safetensors"), SPACE, tmp_path / "b",
                               **build)
    index = json.loads((tmp_path / "a" / INDEX_NAME).read_text())
    # Two builds from two loads: the same index, except each shard's file_hash. That is an
    # integrity checksum of the bytes written, which differ between two writes of the same
    # tensors (safetensors stores its metadata map in hash-map order), and is no key.
    assert _without_file_hashes(index) == _without_file_hashes(
        json.loads((tmp_path / "b" / INDEX_NAME).read_text()))
    for layer in first.layers:
        # Two loads of one file: the same key, which is the hash of dtype, shape and bytes.
        weight = _loaded(tmp_path / "model.safetensors").get_submodule(layer).weight
        assert first.weight_hash(layer) == second.weight_hash(layer) == tensor_digest(weight)
        for option in SPACE:
            entry = index["layers"][layer]["options"][option.key]
            assert entry["file"] == f"{SHARD_DIR}/{safe_name(layer)}__{option.key}.safetensors"
    # Golden: the hash of the float32 [4, 8] weight k / 16, k = 0 … 31 (dtype, shape, bytes).
    assert first.weight_hash("0") == "66faa6c7f2cbf9350d8a8c75e67f26d8"
    assert tensor_digest(torch.arange(12, dtype=torch.float32).reshape(3, 4) / 4) == \
        "ffc8c313ad2f54f7dd458ee2ca0488d5"

    # By design the key is the exact FP weight: one ulp in one layer is a new weight, so only
    # that layer is quantized again (a model whose weights differ is another model).
    changed = _loaded(tmp_path / "model.safetensors")
    with torch.no_grad():
        w = changed[1].weight
        w[0, 0] = torch.nextafter(w[0, 0], torch.tensor(float("inf")))
    again = OptionCache.build(changed, SPACE, tmp_path / "a", **build)
    assert again.weight_hash("0") == first.weight_hash("0")
    assert again.weight_hash("1") != first.weight_hash("1")
    assert again.last_build.computed == len(SPACE)
    assert again.last_build.reasons["changed weights"] == len(SPACE)
