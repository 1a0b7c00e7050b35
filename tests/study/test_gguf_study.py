"""A study over GGUF block types runs through every stage and ends in a loadable .gguf file."""

from __future__ import annotations

import json
import textwrap

import pytest

pytest.importorskip("gguf")

GGUF_STUDY = textwrap.dedent("""
    name: tiny-gguf
    model: {family: digits-dit, options: {train_steps: 30}}
    sampler: {steps: 2, batch_size: 64}
    images_per_config: 16
    verification_images: 16
    search_space: {types: [q4_0, q4_k, q8_0]}
    config_sampler: {num_configs: 10}
    pipeline: {sweep: false, surrogates: [ridge], budgets: [5.0], export_budget: 5.0}
""")


def test_a_gguf_study_searches_verifies_and_exports_a_gguf_file(tmp_path):
    import torch

    from qua2.pipeline import RunOptions, run_study
    from qua2.quant.gguf_file import load_gguf, read_gguf_metadata
    from qua2.study.option_cache import open_option_cache

    (tmp_path / "study.yaml").write_text(GGUF_STUDY)
    out = tmp_path / "study"
    study = run_study(tmp_path / "study.yaml", out, RunOptions(threads=1))
    candidates = json.loads((out / "search" / "candidates.json").read_text())
    names = {c["name"] for c in candidates if c["budget"] == 5.0}
    assert {"qua2-1", "uniform", "edge-recipe"} <= names
    assert all(c["avg_bits"] <= 5.0 + 1e-9 for c in candidates if c["budget"] == 5.0)
    # the digits DiT's 128-wide rows take Q5_0 for Q4_K: the anchor's real bits say so
    anchor = next(c for c in candidates if c["name"] == "anchor-q4_k-w4")
    assert 4.5 < anchor["avg_bits"] <= 5.5
    gguf_file = out / "export" / "qua2-5bits" / "model.gguf"
    metadata = read_gguf_metadata(gguf_file)
    assert metadata["reference"] == "best:5" and metadata["study"] == "tiny-gguf"
    config = json.loads(metadata["config"])
    types = json.loads(metadata["tensor_types"])
    assert set(types.values()) <= {"q4_0", "q4_k", "q5_0", "q8_0", "f16"}
    # qua2 loads the file into a fresh copy of the model: the study's fake-quantized weights
    from qua2.quant import quantized

    fresh = study.adapter.module.__class__.from_config(study.adapter.module.config)
    load_gguf(fresh, gguf_file)
    cache = open_option_cache(study)
    with quantized(study.adapter.module, config, cache):
        for name, value in study.adapter.module.state_dict().items():
            assert torch.equal(fresh.state_dict()[name], value), name
