"""Tiny random denoisers and a tiny adapter for the activation tests (nothing trained)."""

from __future__ import annotations

import pytest
import torch

from qua2.models.base import DenoiserAdapter

TINY_DIT = dict(sample_size=8, num_layers=2, patch_size=2, attention_head_dim=8,
                num_attention_heads=2, in_channels=1, out_channels=1,
                activation_fn="gelu-approximate", num_embeds_ada_norm=10,
                norm_type="ada_norm_zero", norm_elementwise_affine=False)
TINY_PIXART = dict(sample_size=8, num_layers=2, patch_size=2, attention_head_dim=8,
                   num_attention_heads=3, caption_channels=32, in_channels=4,
                   cross_attention_dim=24, out_channels=8, attention_bias=True,
                   activation_fn="gelu-approximate", num_embeds_ada_norm=1000,
                   norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6,
                   use_additional_conditions=False)


def build(cls_name: str, config: dict, seed: int = 0) -> torch.nn.Module:
    import diffusers

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = getattr(diffusers, cls_name)(**config).eval()
    # diffusers zero-initialises DiT's adaLN and output layers; random weights make every
    # layer matter so that quantization visibly changes the output.
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        for param in module.parameters():
            if param.abs().sum() == 0:
                param.normal_(0, 0.05)
    return module


class TinyDiTAdapter(DenoiserAdapter):
    """Class-conditional tiny DiT on 1×8×8 latents, sampled with DDIM (10 classes)."""

    family = "tiny-dit"
    conditioning = "class"

    def encode_conditions(self, conditions):
        return {"class_labels": torch.as_tensor(list(conditions), dtype=torch.long)}

    def denoise(self, latents, t, cond):
        t = torch.as_tensor(t).to(latents.device).expand(latents.shape[0])
        return self.module(latents, t, class_labels=cond["class_labels"].to(latents.device),
                           return_dict=False)[0]


@pytest.fixture()
def tiny_dit():
    return build("DiTTransformer2DModel", TINY_DIT)


@pytest.fixture()
def tiny_pixart():
    return build("PixArtTransformer2DModel", TINY_PIXART)


@pytest.fixture()
def dit_adapter(tiny_dit):
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(num_train_timesteps=1000, timestep_spacing="trailing",
                              clip_sample=True)
    return TinyDiTAdapter(tiny_dit, scheduler, (1, 8, 8), name="tiny-dit")


def _dit_inputs(batch: int = 2, seed: int = 0, t: int = 500):
    """Positional/keyword inputs of one tiny-DiT forward call."""
    from qua2.models.base import ExampleInputs

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 1, 8, 8, generator=gen)
    labels = torch.randint(0, 10, (batch,), generator=gen)
    return ExampleInputs((x, torch.full((batch,), t)),
                         {"class_labels": labels, "return_dict": False})


@pytest.fixture()
def dit_inputs():
    """``dit_inputs(batch=2, seed=0, t=500)`` → inputs of one tiny-DiT forward call."""
    return _dit_inputs
