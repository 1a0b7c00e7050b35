"""Tracing behaviour: invariance, the known pitfalls, meta device, state restoration, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from qua2.errors import Qua2Error
from qua2.graph import trace
from qua2.models.architectures import example_inputs, tiny_config, tiny_denoiser


def _topology(graph) -> tuple:
    cols = ["name", "op_type", "block", "stage", "role", "quantizable"]
    return (list(map(tuple, graph.nodes[cols].itertuples(index=False))),
            graph.edges.tolist())


@pytest.mark.parametrize("batch_size, latent_size", [(1, None), (3, 16)])
def test_topology_independent_of_batch_size_and_resolution(family, batch_size, latent_size,
                                                           traced_of):
    module, _, graph = traced_of(family)
    other = example_inputs(family, module, batch_size=batch_size, latent_size=latent_size,
                           seed=1)
    assert _topology(trace(module, *other.args, **other.kwargs)) == _topology(graph)


def test_tiny_model_on_meta_traces_like_on_cpu(family, traced_of):
    import diffusers

    _, _, graph = traced_of(family)
    cls = type(traced_of(family)[0])
    assert cls is getattr(diffusers, cls.__name__)
    with torch.device("meta"):
        meta = cls(**tiny_config(family))
    example = example_inputs(family, meta)
    assert next(meta.parameters()).is_meta
    assert _topology(trace(meta, *example.args, **example.kwargs)) == _topology(graph)


def test_hunyuan_pooling_weights_used_without_module_calls_become_layer_nodes(traced_of):
    _, _, graph = traced_of("hunyuan")
    nodes = graph.nodes.set_index("name")
    for proj in ("q_proj", "k_proj", "v_proj", "c_proj"):
        row = nodes.loc[f"time_extra_emb.pooler.{proj}"]
        assert row["quantizable"] and row["op_type"] == "linear"
        assert row["role"] == "text_embed"
        assert f"time_extra_emb.pooler.{proj}.bias" in row["param_names"]
    core = graph.index("time_extra_emb.pooler:attention.0")
    preds = {graph.nodes["name"][i] for i in graph.predecessors(core)}
    assert preds == {"time_extra_emb.pooler.q_proj", "time_extra_emb.pooler.k_proj",
                     "time_extra_emb.pooler.v_proj"}


def test_dit_head_reuses_block0_embedder_nodes_instead_of_duplicating_them(traced_of):
    module, _, graph = traced_of("dit")
    emb = "transformer_blocks.0.norm1.emb"
    assert not graph.nodes["name"].str.contains("@").any()
    emb_rows = graph.nodes[graph.nodes["module"].str.startswith(emb)]
    assert (emb_rows["block"] == "transformer_blocks.0").all()
    # the head (after the last block) reads the embedding computed in block 0
    head_act = graph.index(":activation.0")
    assert graph.nodes["stage"][head_act] == "head"
    assert graph.nodes["name"][graph.predecessors(head_act)[0]] == f"{emb}:add.0"
    assert module.transformer_blocks[0].norm1.emb is module.get_submodule(emb)


def test_attention_processor_is_pinned_and_restored():
    from diffusers.models.attention_processor import AttnProcessor

    module, example = tiny_denoiser("sd15")
    reference = trace(module, *example.args, **example.kwargs)
    module.set_attn_processor(AttnProcessor())  # baddbmm + softmax + bmm
    graph = trace(module, *example.args, **example.kwargs)
    assert _topology(graph) == _topology(reference)
    assert all(type(p) is AttnProcessor for p in module.attn_processors.values())


def test_module_state_is_restored_after_tracing():
    module, example = tiny_denoiser("pixart")
    module.train()
    trace(module, *example.args, **example.kwargs)
    assert all(m.training for m in module.modules())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())


def test_roles_of_typical_layers(traced_of):
    pixart = traced_of("pixart")[2].nodes.set_index("name")["role"]
    assert pixart["transformer_blocks.0.attn1.to_q"] == "self_attn.q"
    assert pixart["transformer_blocks.0.attn2.to_k"] == "cross_attn.k"
    assert pixart["transformer_blocks.1.ff.net.2"] == "ff.out"
    assert pixart["adaln_single.linear"] == "time_embed"
    assert pixart["caption_projection.linear_1"] == "text_embed"
    assert pixart["pos_embed.proj"] == "patch_in"
    assert pixart["proj_out"] == "patch_out"
    sdxl = traced_of("sdxl")[2].nodes.set_index("name")
    assert sdxl.loc["down_blocks.1.resnets.0.conv1", "role"] == "resnet.conv1"
    assert sdxl.loc["down_blocks.1.resnets.0.conv1", "block"] == "down_blocks.1.resnets.0"
    assert sdxl.loc["down_blocks.1.attentions.0.transformer_blocks.1.attn2.to_v", "block"] == \
        "down_blocks.1.attentions.0"
    assert sdxl.loc["add_embedding.linear_1", "role"] == "text_embed"
    assert sdxl.loc["mid_block.resnets.0.conv2", "stage"] == "mid"
    assert sdxl.loc["up_blocks.0.upsamplers.0.conv", "role"] == "sampler.up"
    flux = traced_of("flux")[2].nodes.set_index("name")["role"]
    assert flux["transformer_blocks.0.attn.add_k_proj"] == "joint_attn.ctx_k"
    assert flux["single_transformer_blocks.1.proj_mlp"] == "ff.in"
    assert flux["single_transformer_blocks.1.proj_out"] == "ff.out"
    assert flux["time_text_embed.guidance_embedder.linear_1"] == "cond_embed"


def test_unet_skip_connections_are_edges_from_down_to_up_blocks(traced_of):
    graph = traced_of("sd15")[2]
    stage = graph.nodes["stage"].to_numpy()
    cats = graph.nodes.index[(graph.nodes["op_type"] == "cat") & (stage == "up")]
    assert len(cats) > 0
    sources = {stage[p] for c in cats for p in graph.predecessors(c)}
    assert "down" in sources  # the skip connection
    assert "up" in sources    # the main path


# --------------------------------------------------------------------------- bad input
def test_model_that_cannot_run_on_its_inputs_is_one_clear_sentence():
    module, example = tiny_denoiser("dit")
    wrong = torch.zeros(1, 3, 5, 5)
    with pytest.raises(Qua2Error, match="could not run on its example inputs") as info:
        trace(module, wrong, **example.kwargs)
    assert "\n" not in str(info.value)


def test_model_without_quantizable_layers_is_rejected():
    with pytest.raises(Qua2Error, match="no Linear or Conv layer"):
        trace(nn.Sequential(nn.SiLU(), nn.LayerNorm(4)), torch.zeros(2, 4))


def test_non_module_is_rejected():
    with pytest.raises(Qua2Error, match=r"torch\.nn\.Module"):
        trace(lambda x: x, torch.zeros(1))  # type: ignore[arg-type]
