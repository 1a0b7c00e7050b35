"""Flow-matching families: SD3 (MMDiT) and Flux.

Both predict a velocity and sample with ``FlowMatchEulerDiscreteScheduler``; where the
scheduler config asks for resolution-dependent shifting (``use_dynamic_shifting``, Flux) the
shift ``mu`` is computed from the image token count as the pipelines do.

* SD3 takes the concatenation of two CLIP sequences and a T5 sequence (77 + 256 tokens) plus a
  pooled CLIP vector (``pooled_projections``); guidance is classic CFG against ``""``.
* Flux takes a T5 sequence (512 tokens for dev, 256 for schnell: ``max_sequence_length``), a
  pooled CLIP vector, positional ids of text (``txt_ids``) and image tokens (``img_ids``), and
  works on 2×2-packed latents: the sampler keeps ``[C, h, w]`` latents (so the fixed initial
  noise is the pipeline's) and :meth:`FluxAdapter.forward_inputs` packs them into
  ``h/2 · w/2`` tokens of ``4·C`` channels. FLUX.1-dev is guidance-distilled: its guidance is an
  *input* (``distilled_guidance``, 3.5), so ``guidance_scale`` defaults to 1 (no CFG pass).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from qua2.models.base import CondBatch, ExampleInputs, config_of
from qua2.models.families.text import TextToImageAdapter


class FlowMatchingAdapter(TextToImageAdapter):
    """Shared by SD3 and Flux: flow-matching timesteps with optional dynamic shifting."""

    fallback_scheduler = "FlowMatchEulerDiscreteScheduler"
    #: Pass the pipelines' explicit sigmas ``linspace(1, 1/steps, steps)`` (Flux does).
    explicit_sigmas = False

    @property
    def image_tokens(self) -> int:
        """Number of image tokens the transformer sees (drives the dynamic shift)."""
        raise NotImplementedError

    def set_timesteps(self, scheduler: Any, steps: int) -> None:
        """Flow timesteps, shifted for this resolution when the scheduler asks for it."""
        kwargs: dict[str, Any] = {}
        config = scheduler.config
        if self.explicit_sigmas and not config.get("use_flow_sigmas", False):
            kwargs["sigmas"] = np.linspace(1.0, 1 / steps, steps)
        if config.get("use_dynamic_shifting", False):
            kwargs["mu"] = _shift_mu(self.image_tokens, config)
        scheduler.set_timesteps(steps, device=self.scheduler_device, **kwargs)


class SD3Adapter(FlowMatchingAdapter):
    """Stable Diffusion 3 / 3.5 (``SD3Transformer2DModel``, MMDiT)."""

    family = "sd3"
    default_guidance = 7.0
    default_max_sequence_length = 256
    text_encoder_names = ("text_encoder", "text_encoder_2")

    @property
    def image_tokens(self) -> int:
        patch = int(config_of(self.module).patch_size)
        return (self.latent_shape[1] // patch) * (self.latent_shape[2] // patch)

    def _encode_text(self, prompts: list[str]) -> dict[str, torch.Tensor | None]:
        # Without text_encoder_3 (T5) the pipeline pads with zeros, as diffusers does.
        embeds, _, pooled, _ = self.text_pipeline.encode_prompt(
            prompts, None, None, device=self.text_device, do_classifier_free_guidance=False,
            max_sequence_length=self.max_sequence_length,
        )
        return {"embeds": embeds, "pooled": pooled}

    @property
    def prompt_tokens(self) -> int:
        """CLIP tokens (77, or the tokenizer's maximum) followed by the T5 tokens."""
        tokenizer = getattr(self.pipeline, "tokenizer", None)
        clip = int(tokenizer.model_max_length) if tokenizer is not None else 77
        return clip + self.sequence_length

    def embedding_shapes(self) -> dict[str, tuple[int, ...]]:
        config = config_of(self.module)
        return {"embeds": (self.prompt_tokens, int(config.joint_attention_dim)),
                "pooled": (int(config.pooled_projection_dim),)}

    def forward_inputs(self, latents: torch.Tensor, t: torch.Tensor,
                       cond: CondBatch) -> ExampleInputs:
        kwargs = {
            "encoder_hidden_states": cond["embeds"],
            "pooled_projections": cond["pooled"],
            "timestep": self.timesteps_for(t, latents.shape[0]),
        }
        return ExampleInputs((latents,), kwargs)


class FluxAdapter(FlowMatchingAdapter):
    """Flux.1 dev/schnell (``FluxTransformer2DModel``) on packed latents."""

    family = "flux"
    default_guidance = 1.0
    default_max_sequence_length = 512
    explicit_sigmas = True
    text_encoder_names = ("text_encoder", "text_encoder_2")

    def __init__(self, module: nn.Module, scheduler: Any, *, distilled_guidance: float = 3.5,
                 **options: Any) -> None:
        super().__init__(module, scheduler, **options)
        self.distilled_guidance = float(distilled_guidance)

    def _latent_shape(self, module: nn.Module) -> tuple[int, int, int]:
        # Packing takes 2×2 latent pixels per token: latent sides are even, channels = in / 4.
        side = 2 * self.vae_scale_factor
        return (int(config_of(module).in_channels) // 4, 2 * (self.height // side),
                2 * (self.width // side))

    @property
    def image_tokens(self) -> int:
        return (self.latent_shape[1] // 2) * (self.latent_shape[2] // 2)

    def _encode_text(self, prompts: list[str]) -> dict[str, torch.Tensor | None]:
        embeds, pooled, _ = self.text_pipeline.encode_prompt(
            prompts, None, device=self.text_device, max_sequence_length=self.max_sequence_length,
        )
        return {"embeds": embeds, "pooled": pooled}

    def embedding_shapes(self) -> dict[str, tuple[int, ...]]:
        config = config_of(self.module)
        return {"embeds": (self.sequence_length, int(config.joint_attention_dim)),
                "pooled": (int(config.pooled_projection_dim),)}

    def forward_inputs(self, latents: torch.Tensor, t: torch.Tensor,
                       cond: CondBatch) -> ExampleInputs:
        batch, _, height, width = latents.shape
        timestep = self.timesteps_for(t, batch).to(latents.dtype) / 1000
        kwargs: dict[str, Any] = {
            "encoder_hidden_states": cond["embeds"],
            "pooled_projections": cond["pooled"],
            "timestep": timestep,
            "img_ids": _image_ids(height // 2, width // 2, self.device, latents.dtype),
            "txt_ids": torch.zeros(cond["embeds"].shape[1], 3, device=self.device,
                                   dtype=latents.dtype),
        }
        if config_of(self.module).guidance_embeds:
            kwargs["guidance"] = torch.full((batch,), self.distilled_guidance,
                                            device=self.device, dtype=torch.float32)
        return ExampleInputs((pack_latents(latents),), kwargs)

    def model_output(self, raw: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        return unpack_latents(raw, latents.shape[2], latents.shape[3])


def pack_latents(latents: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]`` → ``[B, H/2·W/2, 4·C]``: each token is one 2×2 latent patch."""
    b, c, h, w = latents.shape
    patches = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return patches.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack_latents(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`pack_latents` for latents of ``height`` × ``width``."""
    b, _, channels = tokens.shape
    patches = tokens.view(b, height // 2, width // 2, channels // 4, 2, 2)
    return patches.permute(0, 3, 1, 4, 2, 5).reshape(b, channels // 4, height, width)


def _image_ids(rows: int, cols: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Flux position ids of the packed image tokens: ``[rows·cols, 3]`` = (0, row, col)."""
    ids = torch.zeros(rows, cols, 3)
    ids[..., 1] = torch.arange(rows)[:, None]
    ids[..., 2] = torch.arange(cols)[None, :]
    return ids.reshape(rows * cols, 3).to(device=device, dtype=dtype)


def _shift_mu(image_tokens: int, config: Any) -> float:
    """The pipelines' ``calculate_shift``: mu linear in the token count between two anchors."""
    base_len = config.get("base_image_seq_len", 256)
    max_len = config.get("max_image_seq_len", 4096)
    base_shift = config.get("base_shift", 0.5)
    max_shift = config.get("max_shift", 1.15)
    slope = (max_shift - base_shift) / (max_len - base_len)
    return image_tokens * slope + base_shift - slope * base_len
