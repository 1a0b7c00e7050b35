"""PixArt-α and PixArt-Σ: a DiT with T5 cross-attention and a single adaLN table.

Prompts go through T5 with an attention mask (120 tokens for α, 300 for Σ, as in the
pipelines; ``clean_caption`` is off because it needs ``bs4``/``ftfy``). The 1024-px PixArt-α
conditions on resolution and aspect ratio (``use_additional_conditions``); the transformer
learns the variance, so the first half of its output channels is the noise prediction.
"""

from __future__ import annotations

from typing import Any

import torch

from qua2.models.base import CondBatch, ExampleInputs, config_of
from qua2.models.families.text import TextToImageAdapter


class PixArtAdapter(TextToImageAdapter):
    """PixArt-α (``family="pixart-alpha"``); :class:`PixArtSigmaAdapter` for Σ."""

    family = "pixart-alpha"
    default_guidance = 4.5
    default_max_sequence_length = 120

    def _encode_text(self, prompts: list[str]) -> dict[str, torch.Tensor | None]:
        embeds, mask, _, _ = self.text_pipeline.encode_prompt(
            prompts, do_classifier_free_guidance=False, device=self.text_device,
            clean_caption=False, max_sequence_length=self.max_sequence_length,
        )
        return {"embeds": embeds, "mask": mask}

    def embedding_shapes(self) -> dict[str, tuple[int, ...]]:
        tokens = self.sequence_length
        return {"embeds": (tokens, int(config_of(self.module).caption_channels)), "mask": (tokens,)}

    def forward_inputs(self, latents: torch.Tensor, t: torch.Tensor,
                       cond: CondBatch) -> ExampleInputs:
        batch = latents.shape[0]
        added: dict[str, Any] = {"resolution": None, "aspect_ratio": None}
        if getattr(self.module, "use_additional_conditions", False):
            size = torch.tensor([[float(self.height), float(self.width)]], device=self.device)
            added = {
                "resolution": size.repeat(batch, 1).to(self.dtype),
                "aspect_ratio": (size[:, :1] / size[:, 1:]).repeat(batch, 1).to(self.dtype),
            }
        kwargs = {
            "encoder_hidden_states": cond["embeds"],
            "encoder_attention_mask": cond["mask"],
            "timestep": self.timesteps_for(t, batch),
            "added_cond_kwargs": added,
        }
        return ExampleInputs((latents,), kwargs)


class PixArtSigmaAdapter(PixArtAdapter):
    """PixArt-Σ: the same denoiser interface, 300-token T5 prompts."""

    family = "pixart-sigma"
    default_max_sequence_length = 300
