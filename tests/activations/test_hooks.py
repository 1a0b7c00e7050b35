"""quantized_activations: exact effect, clean removal (bit-exact model), composition, errors."""

from __future__ import annotations

import inspect
import re
from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qua2.activations.attention import explicit_attention
from qua2.activations.hooks import observing, quantized_activations
from qua2.activations.quantizers import fake_quant_per_token
from qua2.activations.setting import ActivationSetting
from qua2.activations.sites import plan_sites
from qua2.errors import Qua2Error


def _run(module, inputs):
    with torch.no_grad():
        return module(*inputs.args, **inputs.kwargs)[0]


def _hook_count(module: nn.Module) -> int:
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in module.modules())


def _processors(module: nn.Module) -> dict:
    return {n: m.processor for n, m in module.named_modules() if hasattr(m, "processor")}


def test_linear_and_conv_inputs_are_quantized_exactly():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Flatten(2), nn.Linear(4, 5))
    x = torch.randn(2, 3, 2, 2)
    with quantized_activations(model, ["0", "2"], ActivationSetting(bits=4)), torch.no_grad():
        out = model(x)
    h = model[0](fake_quant_per_token(x, 4, dim=1)).flatten(2)
    expected = model[2](fake_quant_per_token(h, 4, dim=-1))
    torch.testing.assert_close(out, expected)


def test_model_is_bit_exact_after_exit(tiny_dit, dit_inputs):
    inputs = dit_inputs()
    reference = _run(tiny_dit, inputs)
    state = {k: v.clone() for k, v in tiny_dit.state_dict().items()}
    hooks, procs = _hook_count(tiny_dit), _processors(tiny_dit)
    setting = ActivationSetting(bits=4, qkv_bits=4, softmax_bits=4)
    with quantized_activations(tiny_dit, None, setting) as handle:
        quantized = _run(tiny_dit, inputs)
        assert _hook_count(tiny_dit) > hooks
        assert all(type(p).__name__.startswith("ProbsQuant")
                   for p in _processors(tiny_dit).values())
    assert not torch.equal(quantized, reference)
    assert {s.kind for s in handle.sites} == {"input", "qkv", "probs"}
    assert torch.equal(_run(tiny_dit, inputs), reference)
    assert _hook_count(tiny_dit) == hooks
    assert all(_processors(tiny_dit)[k] is v for k, v in procs.items())
    assert all(torch.equal(v, state[k]) for k, v in tiny_dit.state_dict().items())


def test_clean_exit_on_exception(tiny_dit, dit_inputs):
    inputs = dit_inputs()
    reference = _run(tiny_dit, inputs)
    procs = _processors(tiny_dit)
    with pytest.raises(RuntimeError, match="boom"), \
            quantized_activations(tiny_dit, None, ActivationSetting(bits=4, softmax_bits=4)):
        _run(tiny_dit, inputs)
        raise RuntimeError("boom")
    assert _hook_count(tiny_dit) == 0
    assert all(_processors(tiny_dit)[k] is v for k, v in procs.items())
    assert torch.equal(_run(tiny_dit, inputs), reference)


def test_more_bits_less_error(tiny_dit, dit_inputs):
    inputs = dit_inputs(batch=4)
    reference = _run(tiny_dit, inputs)
    errors = []
    for bits in (4, 6, 8):
        with quantized_activations(tiny_dit, None, ActivationSetting(bits=bits)):
            errors.append((_run(tiny_dit, inputs) - reference).pow(2).mean().item())
    assert errors[0] > errors[1] > errors[2] > 0


def test_softmax_output_is_seen_and_quantized(tiny_dit, dit_inputs):
    seen = []
    setting = ActivationSetting(bits=8, softmax_bits=4)
    with observing(tiny_dit, None, setting,
                   lambda site, x, t: seen.append((site, x.clone()))):
        _run(tiny_dit, dit_inputs())
    probs = [x for site, x in seen if site.kind == "probs"]
    assert len(probs) == 2  # one self-attention per block
    for p in probs:
        torch.testing.assert_close(p.sum(-1), torch.ones(p.shape[:-1]))
    # Quantizing only the probabilities (keep every other input in FP) still changes the output.
    keep_all = ActivationSetting(bits=8, softmax_bits=4, keep_fp=["pos_embed*", "proj_out*",
                                                                  "transformer_blocks.*.norm1*",
                                                                  "transformer_blocks.*.ff*"])
    reference = _run(tiny_dit, dit_inputs())
    with quantized_activations(tiny_dit, None, keep_all):
        assert not torch.equal(_run(tiny_dit, dit_inputs()), reference)


def test_processor_signature_is_forwarded(tiny_dit):
    attn = tiny_dit.transformer_blocks[0].attn1
    inner = attn.processor
    with quantized_activations(tiny_dit, None, ActivationSetting(softmax_bits=8)):
        wrapped = attn.processor
        assert (inspect.signature(wrapped.__call__).parameters.keys()
                == inspect.signature(inner.__call__).parameters.keys())


@pytest.mark.parametrize("kwargs", [{}, {"is_causal": True}, {"scale": 0.3},
                                    {"attn_mask": "bool"}, {"attn_mask": "float"}])
def test_explicit_attention_matches_sdpa(kwargs):
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 4, generator=gen) for _ in range(3))
    if kwargs.get("attn_mask") == "bool":
        kwargs = {"attn_mask": torch.rand(5, 5, generator=gen) > 0.3}
        kwargs["attn_mask"][:, 0] = True
    elif kwargs.get("attn_mask") == "float":
        kwargs = {"attn_mask": torch.randn(5, 5, generator=gen)}
    torch.testing.assert_close(explicit_attention(q, k, v, **kwargs),
                               F.scaled_dot_product_attention(q, k, v, **kwargs))


@contextmanager
def _toy_weight_quant(module: nn.Module):
    """Stand-in for qua2.quant: swaps every Linear weight for a 4-bit per-row version."""
    saved = {}
    for name, layer in module.named_modules():
        if isinstance(layer, nn.Linear):
            saved[name] = layer.weight.data
            layer.weight.data = fake_quant_per_token(layer.weight.data, 4)
    try:
        yield
    finally:
        for name, layer in module.named_modules():
            if name in saved:
                layer.weight.data = saved[name]


def test_composes_with_weight_quantization_in_either_order(tiny_dit, dit_inputs):
    inputs = dit_inputs()
    reference = _run(tiny_dit, inputs)
    setting = ActivationSetting(bits=6)
    with _toy_weight_quant(tiny_dit), quantized_activations(tiny_dit, None, setting):
        both_a = _run(tiny_dit, inputs)
    with quantized_activations(tiny_dit, None, setting), _toy_weight_quant(tiny_dit):
        both_b = _run(tiny_dit, inputs)
    with _toy_weight_quant(tiny_dit):
        weights_only = _run(tiny_dit, inputs)
    assert torch.equal(both_a, both_b)
    assert not torch.equal(both_a, weights_only)
    assert torch.equal(_run(tiny_dit, inputs), reference)


def test_keep_fp_patterns(tiny_dit):
    names = {s.name for s in plan_sites(tiny_dit, None, ActivationSetting())}
    kept = ActivationSetting(keep_fp=["pos_embed.proj", "proj_out*", "transformer_blocks.1"])
    left = {s.name for s in plan_sites(tiny_dit, None, kept)}
    assert "pos_embed.proj" in names and "pos_embed.proj" not in left
    assert not any(n.startswith(("proj_out", "transformer_blocks.1.")) for n in left)
    assert any(n.startswith("transformer_blocks.0.") for n in left)


def test_bad_layers_and_missing_ranges_are_rejected(tiny_dit):
    bad = "transformer_blocks.0.attn1.to_qq"
    with pytest.raises(Qua2Error, match=re.escape(f"names layer {bad!r}")), \
            quantized_activations(tiny_dit, [bad]):
        pass
    with pytest.raises(Qua2Error, match="keep_fp names 'nope'"), \
            quantized_activations(tiny_dit, None, ActivationSetting(keep_fp=["nope"])):
        pass
    static = ActivationSetting(mode="static", calibration="ndtc")
    with pytest.raises(Qua2Error, match="static activation quantization needs calibrated ranges"), \
            quantized_activations(tiny_dit, None, static):
        pass
    assert _hook_count(tiny_dit) == 0
