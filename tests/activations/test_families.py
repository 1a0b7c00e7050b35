"""Every diffusers family: quantization runs, touches every site kind, and leaves no trace."""

from __future__ import annotations

import pytest
import torch

from qua2.activations import ActivationSetting, quantized_activations
from qua2.models.architectures import tiny_denoiser

FAMILIES = ["dit", "pixart", "unet2d", "sd15", "sdxl", "sd3", "flux", "hunyuan"]


def _forward(module, inputs):
    with torch.no_grad():
        return module(*inputs.args, **inputs.kwargs, return_dict=False)[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_family(family):
    module, inputs = tiny_denoiser(family)
    reference = _forward(module, inputs)
    setting = ActivationSetting(bits=8, qkv_bits=8, softmax_bits=8)
    with quantized_activations(module, None, setting) as handle:
        out = _forward(module, inputs)
    assert {s.kind for s in handle.sites} == {"input", "qkv", "probs"}
    assert torch.isfinite(out).all() and not torch.equal(out, reference)
    # 8-bit activations: a small, not a catastrophic, change of the output.
    assert (out - reference).norm() < 0.2 * reference.norm()
    assert torch.equal(_forward(module, inputs), reference)
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in module.modules())
