"""Tiny random denoisers of every supported family, plus full-size architectures on ``meta``.

Tracing (``qua2 graph --tiny`` / ``--full-size``), its benchmarks and the test fixtures need
the *architecture* of each diffusers denoiser, not its weights. This module builds them from
plain init dicts (nothing is downloaded):

* :func:`tiny_denoiser` — a seeded, float32, CPU instance a few thousand parameters large,
  with example inputs that exercise the same code paths as the real model (the same
  conditioning kwargs, the same attention processors).
* :func:`full_size_denoiser` — the published architecture (PixArt-α 1024, SDXL base,
  Flux.1-dev, …) built on the ``meta`` device: shapes only, no memory, no weights.
* :func:`example_inputs` — forward arguments for either, at any batch size and latent size,
  so callers can check that something does not depend on them.

Public, stable API (imported by the CLI, benchmarks and tests)::

    TINY_FAMILIES: tuple[str, ...]
    FULL_SIZE_FAMILIES: tuple[str, ...]
    tiny_denoiser(family, seed=0, *, batch_size=2) -> (nn.Module, ExampleInputs)
    tiny_config(family) -> dict
    full_size_config(family) -> dict
    full_size_denoiser(family, *, batch_size=1) -> (nn.Module, ExampleInputs)   # on meta
    example_inputs(family, module, *, batch_size=2, latent_size=None, seed=0) -> ExampleInputs
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from qua2.errors import Qua2Error
from qua2.models.base import ExampleInputs

InputBuilder = Callable[[nn.Module, int, int, torch.Generator, torch.device], ExampleInputs]


@dataclass(frozen=True)
class _Family:
    """How to build one family: a diffusers class name, its configs and its input builder."""

    class_name: str
    tiny: dict[str, Any]
    inputs: InputBuilder
    full: dict[str, Any] | None = None
    #: Default latent height = width for a module, where the config's ``sample_size`` is not it.
    latent_size: Callable[[nn.Module], int] | None = None


# ------------------------------------------------------------------------------ input helpers
def _randn(gen: torch.Generator, device: torch.device, *shape: int) -> torch.Tensor:
    """Standard-normal draws on the CPU generator, moved to ``device`` (meta keeps shapes)."""
    if device.type == "meta":
        return torch.empty(shape, device=device)
    return torch.randn(shape, generator=gen).to(device)


def _randint(gen: torch.Generator, device: torch.device, batch: int, high: int = 1000,
             dtype: torch.dtype = torch.long) -> torch.Tensor:
    """``batch`` integer draws in [0, high) (timesteps, class labels), like :func:`_randn`."""
    if device.type == "meta":
        return torch.empty(batch, dtype=dtype, device=device)
    return torch.randint(0, high, (batch,), generator=gen).to(device=device, dtype=dtype)


def _cfg(module: nn.Module, key: str, default: Any = None) -> Any:
    return getattr(module.config, key, default)


def _latent(module: nn.Module) -> int:
    sample = _cfg(module, "sample_size")
    return int(sample[0] if isinstance(sample, (tuple, list)) else sample)


# ------------------------------------------------------------------------------ per family
def _pixart_inputs(m: nn.Module, b: int, s: int, g: torch.Generator,
                   d: torch.device) -> ExampleInputs:
    added: dict[str, Any] = {"resolution": None, "aspect_ratio": None}
    if m.use_additional_conditions:
        # PixArt-α 1024 conditions on the pixel resolution and aspect ratio.
        added = {"resolution": torch.full((b, 2), 8.0 * s, device=d),
                 "aspect_ratio": torch.ones(b, 1, device=d)}
    tokens = 120 if s >= 64 else 6  # PixArt-α's T5 prompt length at full size
    kwargs = {
        "encoder_hidden_states": _randn(g, d, b, tokens, _cfg(m, "caption_channels")),
        "timestep": _randint(g, d, b),
        "added_cond_kwargs": added,
    }
    return ExampleInputs((_randn(g, d, b, _cfg(m, "in_channels"), s, s),), kwargs)


def _dit_inputs(m: nn.Module, b: int, s: int, g: torch.Generator,
                d: torch.device) -> ExampleInputs:
    labels = _randint(g, d, b)  # drawn before the timesteps
    kwargs = {"timestep": _randint(g, d, b), "class_labels": labels}
    return ExampleInputs((_randn(g, d, b, _cfg(m, "in_channels"), s, s),), kwargs)


def _hunyuan_inputs(m: nn.Module, b: int, s: int, g: torch.Generator,
                    d: torch.device) -> ExampleInputs:
    from diffusers.models.embeddings import get_2d_rotary_pos_embed

    grid = s // _cfg(m, "patch_size")
    head_dim = _cfg(m, "attention_head_dim")
    # Rotary embeddings are pure functions of the grid: computed on the CPU, then moved.
    cos, sin = get_2d_rotary_pos_embed(head_dim, ((0, 0), (grid, grid)), (grid, grid))
    len_clip, len_t5 = _cfg(m, "text_len"), _cfg(m, "text_len_t5")
    kwargs: dict[str, Any] = {
        "timestep": _randint(g, d, b, dtype=torch.float32),
        "encoder_hidden_states": _randn(g, d, b, len_clip, _cfg(m, "cross_attention_dim")),
        "text_embedding_mask": torch.ones(b, len_clip, dtype=torch.long, device=d),
        "encoder_hidden_states_t5": _randn(g, d, b, len_t5, _cfg(m, "cross_attention_dim_t5")),
        "text_embedding_mask_t5": torch.ones(b, len_t5, dtype=torch.long, device=d),
        "image_rotary_emb": (cos.to(d), sin.to(d)),
    }
    if _cfg(m, "use_style_cond_and_image_meta_size"):
        meta = [8 * s, 8 * s, 8 * s, 8 * s, 0, 0]
        kwargs["image_meta_size"] = torch.tensor([meta] * b, dtype=torch.float32, device=d)
        kwargs["style"] = torch.zeros(b, dtype=torch.long, device=d)
    return ExampleInputs((_randn(g, d, b, _cfg(m, "in_channels"), s, s),), kwargs)


def _unet_cond_inputs(m: nn.Module, b: int, s: int, g: torch.Generator,
                      d: torch.device) -> ExampleInputs:
    tokens = 77 if s >= 64 else 7
    kwargs: dict[str, Any] = {
        "encoder_hidden_states": _randn(g, d, b, tokens, _cfg(m, "cross_attention_dim")),
    }
    if _cfg(m, "addition_embed_type") == "text_time":
        # SDXL: pooled text embedding + 6 size/crop conditions, each Fourier-embedded.
        pooled = _cfg(m, "projection_class_embeddings_input_dim") - 6 * _cfg(
            m, "addition_time_embed_dim")
        kwargs["added_cond_kwargs"] = {
            "text_embeds": _randn(g, d, b, pooled),
            "time_ids": torch.tensor([[8.0 * s, 8.0 * s, 0, 0, 8.0 * s, 8.0 * s]] * b, device=d),
        }
    args = (_randn(g, d, b, _cfg(m, "in_channels"), s, s), _randint(g, d, b))
    return ExampleInputs(args, kwargs)


def _unet2d_inputs(m: nn.Module, b: int, s: int, g: torch.Generator,
                   d: torch.device) -> ExampleInputs:
    kwargs: dict[str, Any] = {}
    if _cfg(m, "num_class_embeds"):
        kwargs["class_labels"] = _randint(g, d, b, _cfg(m, "num_class_embeds"))
    args = (_randn(g, d, b, _cfg(m, "in_channels"), s, s), _randint(g, d, b))
    return ExampleInputs(args, kwargs)


def _sd3_inputs(m: nn.Module, b: int, s: int, g: torch.Generator,
                d: torch.device) -> ExampleInputs:
    tokens = 333 if s >= 64 else 7
    kwargs = {
        "encoder_hidden_states": _randn(g, d, b, tokens, _cfg(m, "joint_attention_dim")),
        "pooled_projections": _randn(g, d, b, _cfg(m, "pooled_projection_dim")),
        "timestep": _randint(g, d, b),
    }
    return ExampleInputs((_randn(g, d, b, _cfg(m, "in_channels"), s, s),), kwargs)


def _flux_inputs(m: nn.Module, b: int, s: int, g: torch.Generator,
                 d: torch.device) -> ExampleInputs:
    # Flux works on 2×2-packed latents: s × s latent pixels → (s/2)² tokens of 4·C channels.
    side = max(s // 2, 1)
    tokens, text = side * side, (512 if s >= 64 else 7)
    img_ids = torch.zeros(side, side, 3)
    img_ids[..., 1] = torch.arange(side)[:, None]
    img_ids[..., 2] = torch.arange(side)[None, :]
    kwargs: dict[str, Any] = {
        "encoder_hidden_states": _randn(g, d, b, text, _cfg(m, "joint_attention_dim")),
        "pooled_projections": _randn(g, d, b, _cfg(m, "pooled_projection_dim")),
        "timestep": _randint(g, d, b, dtype=torch.float32),
        "img_ids": img_ids.reshape(tokens, 3).to(d),
        "txt_ids": torch.zeros(text, 3, device=d),
    }
    if _cfg(m, "guidance_embeds"):
        kwargs["guidance"] = torch.full((b,), 3.5, device=d)
    return ExampleInputs((_randn(g, d, b, tokens, _cfg(m, "in_channels")),), kwargs)


def _flux_default_size(module: nn.Module) -> int:
    # Flux has no sample_size: 128 latent pixels (1024 px images) at full size, 8 when tiny.
    return 128 if _cfg(module, "num_single_layers", 0) >= 10 else 8


def _prompt_mask(batch: int, tokens: int, device: torch.device) -> torch.Tensor:
    """A tokenizer's ``attention_mask`` for prompts padded to ``tokens``: the second half pads.

    Padding is included so that the masked code paths run, as they do for any prompt shorter
    than the pipeline's ``max_sequence_length``.
    """
    mask = torch.ones(batch, tokens, dtype=torch.long, device=device)
    mask[:, max(tokens // 2, 1):] = 0
    return mask


class _MetaMask(torch.Tensor):
    """A meta prompt mask that still answers ``mask.sum(…).tolist()`` from its CPU values.

    Lumina 2 reads each prompt's length with ``encoder_attention_mask.sum(dim=1).tolist()`` to
    lay out its joint sequence, which a meta tensor cannot answer (it has no values), and then
    feeds the same mask to attention next to meta queries, where a CPU mask is refused. So the
    mask is a meta tensor carrying its values: sums keep them and ``tolist`` reads them; every
    other op sees a plain meta tensor.
    """

    _known: torch.Tensor

    @staticmethod
    def __new__(cls, values: torch.Tensor) -> _MetaMask:
        meta = torch.empty(values.shape, dtype=values.dtype, device="meta")
        mask = torch.Tensor._make_subclass(cls, meta)
        mask._known = values
        return mask

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        this = args[0] if args else None
        if isinstance(this, _MetaMask):
            if func in (torch.Tensor.sum, torch.sum):
                return _MetaMask(func(this._known, *args[1:], **kwargs))
            if func is torch.Tensor.tolist:
                return this._known.tolist()
        with torch._C.DisableTorchFunctionSubclass():
            return func(*args, **kwargs)


def _sana_inputs(m: nn.Module, b: int, s: int, g: torch.Generator,
                 d: torch.device) -> ExampleInputs:
    # SanaPipeline keeps 300 Gemma-2 tokens (the first + the last 299) with their padding mask,
    # and passes the flow scheduler's float timesteps (0‥1000) times ``timestep_scale``.
    tokens = 300 if s >= 32 else 7
    kwargs = {
        "encoder_hidden_states": _randn(g, d, b, tokens, _cfg(m, "caption_channels")),
        "encoder_attention_mask": _prompt_mask(b, tokens, d),
        "timestep": _randint(g, d, b, dtype=torch.float32) * _cfg(m, "timestep_scale", 1.0),
    }
    return ExampleInputs((_randn(g, d, b, _cfg(m, "in_channels"), s, s),), kwargs)


def _auraflow_default_size(module: nn.Module) -> int:
    # AuraFlow v0.3 generates at 1024 px (its model card's resolution), twice the 512 px that
    # ``sample_size`` × the VAE factor gives; its position table covers up to 1536 px.
    return 2 * _latent(module)


def _auraflow_inputs(m: nn.Module, b: int, s: int, g: torch.Generator,
                     d: torch.device) -> ExampleInputs:
    # AuraFlowPipeline: 256 Pile-T5 tokens (padding zeroed in the embeddings, no mask passed)
    # and t / 1000 in [0, 1] as the timestep (the model's Timesteps scales it back by 1000).
    tokens = 256 if s >= 64 else 7
    kwargs = {
        "encoder_hidden_states": _randn(g, d, b, tokens, _cfg(m, "joint_attention_dim")),
        "timestep": _randint(g, d, b, dtype=torch.float32) / 1000,
    }
    return ExampleInputs((_randn(g, d, b, _cfg(m, "in_channels"), s, s),), kwargs)


def _lumina2_inputs(m: nn.Module, b: int, s: int, g: torch.Generator,
                    d: torch.device) -> ExampleInputs:
    # Lumina2Pipeline: 256 Gemma-2 tokens with their padding mask, and 1 - t / 1000 as the
    # timestep (Lumina's t = 0 is noise).
    tokens = 256 if s >= 64 else 7
    mask = _prompt_mask(b, tokens, torch.device("cpu"))
    kwargs = {
        "timestep": 1 - _randint(g, d, b, dtype=torch.float32) / 1000,
        "encoder_hidden_states": _randn(g, d, b, tokens, _cfg(m, "cap_feat_dim")),
        "encoder_attention_mask": _MetaMask(mask) if d.type == "meta" else mask.to(d),
    }
    return ExampleInputs((_randn(g, d, b, _cfg(m, "in_channels"), s, s),), kwargs)


# ------------------------------------------------------------------------------ configs
_SDXL_FULL: dict[str, Any] = {  # stabilityai/stable-diffusion-xl-base-1.0, unet/config.json
    "sample_size": 128, "in_channels": 4, "out_channels": 4,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "block_out_channels": (320, 640, 1280), "layers_per_block": 2,
    "attention_head_dim": (5, 10, 20), "transformer_layers_per_block": (1, 2, 10),
    "cross_attention_dim": 2048, "use_linear_projection": True,
    "addition_embed_type": "text_time", "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816, "norm_num_groups": 32,
}

_FAMILIES: dict[str, _Family] = {
    "pixart": _Family(
        "PixArtTransformer2DModel",
        tiny={"sample_size": 8, "num_layers": 2, "patch_size": 2, "attention_head_dim": 8,
              "num_attention_heads": 3, "caption_channels": 32, "in_channels": 4,
              "cross_attention_dim": 24, "out_channels": 8, "attention_bias": True,
              "activation_fn": "gelu-approximate", "num_embeds_ada_norm": 1000,
              "norm_type": "ada_norm_single", "norm_elementwise_affine": False,
              "norm_eps": 1e-6, "use_additional_conditions": False},
        inputs=_pixart_inputs,
        # PixArt-alpha/PixArt-XL-2-1024-MS, transformer/config.json (611 M parameters).
        full={"sample_size": 128, "num_layers": 28, "patch_size": 2, "attention_head_dim": 72,
              "num_attention_heads": 16, "caption_channels": 4096, "in_channels": 4,
              "cross_attention_dim": 1152, "out_channels": 8, "attention_bias": True,
              "activation_fn": "gelu-approximate", "num_embeds_ada_norm": 1000,
              "norm_type": "ada_norm_single", "norm_elementwise_affine": False,
              "norm_eps": 1e-6, "use_additional_conditions": True},
    ),
    "dit": _Family(
        "DiTTransformer2DModel",
        tiny={"sample_size": 8, "num_layers": 2, "patch_size": 2, "attention_head_dim": 8,
              "num_attention_heads": 3, "in_channels": 4, "out_channels": 8,
              "activation_fn": "gelu-approximate", "num_embeds_ada_norm": 1000,
              "norm_type": "ada_norm_zero", "norm_elementwise_affine": False},
        inputs=_dit_inputs,
        # facebook/DiT-XL-2-256, transformer/config.json (675 M parameters).
        full={"sample_size": 32, "num_layers": 28, "patch_size": 2, "attention_head_dim": 72,
              "num_attention_heads": 16, "in_channels": 4, "out_channels": 8,
              "activation_fn": "gelu-approximate", "num_embeds_ada_norm": 1000,
              "norm_type": "ada_norm_zero", "norm_elementwise_affine": False},
    ),
    "hunyuan": _Family(
        "HunyuanDiT2DModel",
        tiny={"sample_size": 8, "num_layers": 4, "patch_size": 2, "attention_head_dim": 8,
              "num_attention_heads": 2, "hidden_size": 16, "in_channels": 4,
              "cross_attention_dim": 16, "cross_attention_dim_t5": 24,
              "pooled_projection_dim": 16, "text_len": 5, "text_len_t5": 7, "mlp_ratio": 2.0,
              "use_style_cond_and_image_meta_size": True},
        inputs=_hunyuan_inputs,
        # Tencent-Hunyuan/HunyuanDiT-v1.1-Diffusers, transformer/config.json (1.5 B).
        full={"sample_size": 128, "num_layers": 40, "patch_size": 2, "attention_head_dim": 88,
              "num_attention_heads": 16, "hidden_size": 1408, "in_channels": 4,
              "cross_attention_dim": 1024, "cross_attention_dim_t5": 2048,
              "pooled_projection_dim": 1024, "text_len": 77, "text_len_t5": 256,
              "mlp_ratio": 4.3637, "learn_sigma": True,
              "use_style_cond_and_image_meta_size": True},
    ),
    "sd15": _Family(
        "UNet2DConditionModel",
        tiny={"sample_size": 8, "in_channels": 4, "out_channels": 4,
              "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
              "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
              "block_out_channels": (8, 16), "layers_per_block": 1, "norm_num_groups": 4,
              "cross_attention_dim": 16, "attention_head_dim": 2},
        inputs=_unet_cond_inputs,
        # stable-diffusion-v1-5, unet/config.json (860 M parameters).
        full={"sample_size": 64, "in_channels": 4, "out_channels": 4,
              "block_out_channels": (320, 640, 1280, 1280), "layers_per_block": 2,
              "cross_attention_dim": 768, "attention_head_dim": 8, "norm_num_groups": 32},
    ),
    "sdxl": _Family(
        "UNet2DConditionModel",
        tiny={"sample_size": 8, "in_channels": 4, "out_channels": 4,
              "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
              "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
              "block_out_channels": (8, 16, 32), "layers_per_block": 2,
              "cross_attention_dim": 32, "attention_head_dim": (2, 4, 8),
              "transformer_layers_per_block": (1, 2, 3), "use_linear_projection": True,
              "norm_num_groups": 4, "addition_embed_type": "text_time",
              "addition_time_embed_dim": 8, "projection_class_embeddings_input_dim": 64},
        inputs=_unet_cond_inputs,
        full=_SDXL_FULL,
    ),
    "sd3": _Family(
        "SD3Transformer2DModel",
        tiny={"sample_size": 8, "patch_size": 2, "in_channels": 4, "num_layers": 2,
              "attention_head_dim": 8, "num_attention_heads": 2, "joint_attention_dim": 16,
              "caption_projection_dim": 16, "pooled_projection_dim": 12, "out_channels": 4,
              "pos_embed_max_size": 8},
        inputs=_sd3_inputs,
        # stabilityai/stable-diffusion-3-medium-diffusers, transformer/config.json (2 B).
        full={"sample_size": 128, "patch_size": 2, "in_channels": 16, "num_layers": 24,
              "attention_head_dim": 64, "num_attention_heads": 24, "joint_attention_dim": 4096,
              "caption_projection_dim": 1536, "pooled_projection_dim": 2048,
              "out_channels": 16, "pos_embed_max_size": 192},
    ),
    "flux": _Family(
        "FluxTransformer2DModel",
        tiny={"patch_size": 1, "in_channels": 16, "num_layers": 1, "num_single_layers": 2,
              "attention_head_dim": 8, "num_attention_heads": 2, "joint_attention_dim": 16,
              "pooled_projection_dim": 12, "guidance_embeds": True, "axes_dims_rope": (2, 2, 4)},
        inputs=_flux_inputs,
        # black-forest-labs/FLUX.1-dev, transformer/config.json (12 B parameters).
        full={"patch_size": 1, "in_channels": 64, "num_layers": 19, "num_single_layers": 38,
              "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 4096,
              "pooled_projection_dim": 768, "guidance_embeds": True,
              "axes_dims_rope": (16, 56, 56)},
        latent_size=_flux_default_size,
    ),
    "sana": _Family(
        "SanaTransformer2DModel",
        tiny={"sample_size": 8, "patch_size": 1, "in_channels": 4, "out_channels": 4,
              "num_layers": 2, "num_attention_heads": 2, "attention_head_dim": 4,
              "num_cross_attention_heads": 2, "cross_attention_head_dim": 4,
              "cross_attention_dim": 8, "caption_channels": 12, "mlp_ratio": 2.5},
        inputs=_sana_inputs,
        # Efficient-Large-Model/Sana_1600M_1024px_diffusers, transformer/config.json (1.6 B;
        # 32-channel DC-AE latents at 1/32 of 1024 px). Written from memory, without network
        # access; the parameter count it builds matches the published size.
        full={"sample_size": 32, "patch_size": 1, "in_channels": 32, "out_channels": 32,
              "num_layers": 20, "num_attention_heads": 70, "attention_head_dim": 32,
              "num_cross_attention_heads": 20, "cross_attention_head_dim": 112,
              "cross_attention_dim": 2240, "caption_channels": 2304, "mlp_ratio": 2.5,
              "attention_bias": False, "norm_elementwise_affine": False, "norm_eps": 1e-6,
              "interpolation_scale": None, "qk_norm": None, "timestep_scale": 1.0},
    ),
    "auraflow": _Family(
        "AuraFlowTransformer2DModel",
        # The feed-forward width is rounded up to a multiple of 256, whatever the model width:
        # that alone is ~6 k parameters per feed-forward, so the tiny model stays narrow.
        tiny={"sample_size": 4, "patch_size": 2, "in_channels": 4, "out_channels": 4,
              "num_mmdit_layers": 1, "num_single_dit_layers": 1, "attention_head_dim": 4,
              "num_attention_heads": 2, "joint_attention_dim": 12, "caption_projection_dim": 8,
              "pos_embed_max_size": 64},
        inputs=_auraflow_inputs,
        # fal/AuraFlow-v0.3, transformer/config.json (6.8 B). Written from memory, without
        # network access; the parameter count it builds matches the published size.
        full={"sample_size": 64, "patch_size": 2, "in_channels": 4, "out_channels": 4,
              "num_mmdit_layers": 4, "num_single_dit_layers": 32, "attention_head_dim": 256,
              "num_attention_heads": 12, "joint_attention_dim": 2048,
              "caption_projection_dim": 3072, "pos_embed_max_size": 9216},
        latent_size=_auraflow_default_size,
    ),
    "lumina2": _Family(
        "Lumina2Transformer2DModel",
        tiny={"sample_size": 8, "patch_size": 2, "in_channels": 4, "hidden_size": 16,
              "num_layers": 2, "num_refiner_layers": 1, "num_attention_heads": 2,
              "num_kv_heads": 1, "multiple_of": 16, "axes_dim_rope": (4, 2, 2),
              "axes_lens": (32, 32, 32), "cap_feat_dim": 12},
        inputs=_lumina2_inputs,
        # Alpha-VLLM/Lumina-Image-2.0, transformer/config.json (2.6 B; Flux's 16-channel VAE,
        # Gemma-2-2B captions). Written from memory, without network access; the parameter
        # count it builds matches the published size.
        full={"sample_size": 128, "patch_size": 2, "in_channels": 16, "out_channels": None,
              "hidden_size": 2304, "num_layers": 26, "num_refiner_layers": 2,
              "num_attention_heads": 24, "num_kv_heads": 8, "multiple_of": 256,
              "ffn_dim_multiplier": None, "norm_eps": 1e-5, "scaling_factor": 1.0,
              "axes_dim_rope": (32, 32, 32), "axes_lens": (300, 512, 512),
              "cap_feat_dim": 2304},
    ),
    "unet2d": _Family(
        "UNet2DModel",
        tiny={"sample_size": 8, "in_channels": 1, "out_channels": 1,
              "down_block_types": ("DownBlock2D", "AttnDownBlock2D"),
              "up_block_types": ("AttnUpBlock2D", "UpBlock2D"),
              "block_out_channels": (8, 16), "layers_per_block": 1, "norm_num_groups": 4,
              "attention_head_dim": 4, "class_embed_type": None, "num_class_embeds": 10},
        inputs=_unet2d_inputs,
    ),
}

#: Families :func:`tiny_denoiser` can build.
TINY_FAMILIES: tuple[str, ...] = tuple(_FAMILIES)
#: Families with a published full-size architecture for :func:`full_size_denoiser`.
FULL_SIZE_FAMILIES: tuple[str, ...] = tuple(k for k, f in _FAMILIES.items() if f.full)


def _family(name: str) -> _Family:
    if name not in _FAMILIES:
        raise Qua2Error(
            f"unknown tiny model family {name!r}; choose one of {', '.join(TINY_FAMILIES)}."
        )
    return _FAMILIES[name]


def _build(spec: _Family, config: dict[str, Any]) -> nn.Module:
    import diffusers

    return getattr(diffusers, spec.class_name)(**copy.deepcopy(config)).eval()


def tiny_config(family: str) -> dict[str, Any]:
    """The init dict of the tiny ``family`` model (a copy; safe to modify)."""
    return copy.deepcopy(_family(family).tiny)


def full_size_config(family: str) -> dict[str, Any]:
    """The init dict of the published full-size architecture of ``family`` (a copy)."""
    spec = _family(family)
    if spec.full is None:
        raise Qua2Error(
            f"family {family!r} has no full-size architecture here; choose one of "
            f"{', '.join(FULL_SIZE_FAMILIES)}."
        )
    return copy.deepcopy(spec.full)


def example_inputs(family: str, module: nn.Module, *, batch_size: int = 2,
                   latent_size: int | None = None, seed: int = 0) -> ExampleInputs:
    """Forward arguments for ``module`` (of ``family``) on the module's device.

    ``latent_size`` is the latent height = width (default: the config's ``sample_size``; for
    Flux, 2 × the packed token side; for AuraFlow, 2 × ``sample_size``, i.e. 1024 px); tensors
    are seeded draws (empty tensors on ``meta``, except Lumina 2's prompt mask, kept on the
    CPU).
    """
    spec = _family(family)
    size = latent_size if latent_size is not None else (
        spec.latent_size(module) if spec.latent_size else _latent(module))
    gen = torch.Generator().manual_seed(seed)
    return spec.inputs(module, batch_size, size, gen, next(module.parameters()).device)


def tiny_denoiser(family: str, seed: int = 0, *,
                  batch_size: int = 2) -> tuple[nn.Module, ExampleInputs]:
    """A seeded float32 CPU instance of ``family``'s denoiser and inputs for one forward call."""
    spec = _family(family)
    with torch.random.fork_rng(devices=[]):
        # diffusers initialises from the global generator; fork it so callers' RNG is untouched.
        torch.manual_seed(seed)
        module = _build(spec, spec.tiny).float()
    return module, example_inputs(family, module, batch_size=batch_size, seed=seed)


def full_size_denoiser(family: str, *, batch_size: int = 1) -> tuple[nn.Module, ExampleInputs]:
    """The full-size architecture of ``family`` on the ``meta`` device (no weights, no memory)."""
    config = full_size_config(family)
    with torch.device("meta"):
        module = _build(_family(family), config)
    return module, example_inputs(family, module, batch_size=batch_size)
