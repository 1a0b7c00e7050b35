"""MixDQ's BOS-aware text-embedding quantization on a tiny text-conditioned PixArt."""

from __future__ import annotations

import pytest
import torch

from qua2.activations import ActivationSetting, quantized_activations
from qua2.activations.range_fitting import calibrate_module
from qua2.activations.sites import plan_sites
from qua2.models.base import ExampleInputs

CROSS_KV = [f"transformer_blocks.{i}.attn2.{p}" for i in range(2) for p in ("to_k", "to_v")]
# The caption projection is not part of MixDQ's scheme (it targets the CLIP embeddings that go
# straight into cross-attention); keeping it FP isolates the cross-attention K/V.
KEEP = ["caption_projection"]


def _inputs(n: int, seed: int) -> list[ExampleInputs]:
    """Prompts whose first token is the same huge outlier, as CLIP's BOS embedding is."""
    gen = torch.Generator().manual_seed(1234)
    bos = torch.randn(32, generator=gen) * 40.0
    out = []
    for i in range(n):
        g = torch.Generator().manual_seed(seed + i)
        text = torch.randn(2, 6, 32, generator=g)
        text[:, 0] = bos
        out.append(ExampleInputs(
            (torch.randn(2, 4, 8, 8, generator=g),),
            {"encoder_hidden_states": text, "timestep": torch.full((2,), 500),
             "added_cond_kwargs": {"resolution": None, "aspect_ratio": None},
             "return_dict": False}))
    return out


def _cross_kv(module, example, context=None):
    """The outputs of every cross-attention K/V projection for one forward call."""
    seen = {}
    subs = dict(module.named_modules())
    handles = [subs[n].register_forward_hook(
        lambda _m, _a, out, n=n: seen.__setitem__(n, out.detach().clone())) for n in CROSS_KV]
    try:
        with torch.no_grad():
            if context is None:
                module(*example.args, **example.kwargs)
            else:
                with context:
                    module(*example.args, **example.kwargs)
    finally:
        for h in handles:
            h.remove()
    return seen


def test_bos_sites_are_cross_attention_k_v_only(tiny_pixart):
    sites = plan_sites(tiny_pixart, None, ActivationSetting(bos_fp=True, qkv_bits=8))
    bos = sorted({s.module for s in sites if s.bos})
    assert bos == sorted(CROSS_KV)


@pytest.mark.parametrize("bits", [6, 8])
def test_bos_aware_static_quantization_reduces_k_v_error(tiny_pixart, bits):
    calib, test = _inputs(4, seed=0), _inputs(1, seed=100)[0]
    reference = _cross_kv(tiny_pixart, test)
    errors = {}
    for bos in (False, True):
        setting = ActivationSetting(bits=bits, mode="static", calibration="ndtc", bos_fp=bos,
                                    keep_fp=KEEP)
        ranges = calibrate_module(tiny_pixart, setting, calib, max_values=8192)
        ctx = quantized_activations(tiny_pixart, None, setting, ranges)
        got = _cross_kv(tiny_pixart, test, ctx)
        # Error on the ordinary tokens (1:), relative to their own scale.
        errors[bos] = sum(((got[n] - reference[n])[:, 1:].pow(2).mean()
                           / reference[n][:, 1:].pow(2).mean()).item() for n in CROSS_KV)
    # Without BOS awareness the outlier stretches the per-tensor range over every token.
    assert errors[True] < errors[False] / 10


def test_bos_k_v_stay_fp_under_weight_and_qkv_quantization(tiny_pixart):
    example = _inputs(1, seed=5)[0]
    reference = _cross_kv(tiny_pixart, example)
    setting = ActivationSetting(bits=4, qkv_bits=4, bos_fp=True, keep_fp=KEEP)
    subs = dict(tiny_pixart.named_modules())
    saved = {n: subs[n].weight.data.clone() for n in CROSS_KV}
    with quantized_activations(tiny_pixart, None, setting):
        for n in CROSS_KV:  # weight quantization entered *inside*: the snapshot is FP
            subs[n].weight.data = subs[n].weight.data.round()
        try:
            got = _cross_kv(tiny_pixart, example)
        finally:
            for n in CROSS_KV:
                subs[n].weight.data = saved[n]
    for n in CROSS_KV:
        # BOS row: FP input and FP weights (up to GEMM rounding of a 1-row product).
        torch.testing.assert_close(got[n][:, 0], reference[n][:, 0], atol=1e-5, rtol=1e-5)
        assert not torch.equal(got[n][:, 1:], reference[n][:, 1:])
