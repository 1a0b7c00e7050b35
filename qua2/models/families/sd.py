"""Stable Diffusion 1.5 and SDXL: CLIP-conditioned UNets.

SD1.5 cross-attends to one CLIP-L sequence (77 × 768). SDXL concatenates the sequences of two
CLIP encoders (77 × 2048) and adds ``added_cond_kwargs``: the pooled text embedding of the
second encoder (``text_embeds``) and six size/crop numbers (``time_ids`` = original size, crop
top-left, target size; here the generated size and no crop, as the pipeline's defaults). SDXL's
unconditional branch is all zeros (``force_zeros_for_empty_prompt``) unless a negative prompt
is given, exactly as in ``StableDiffusionXLPipeline``.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from qua2.models.base import CondBatch, ExampleInputs, config_of
from qua2.models.families.conditions import PromptEmbedding
from qua2.models.families.text import TextToImageAdapter


class SD15Adapter(TextToImageAdapter):
    """Stable Diffusion 1.x/2.x (``UNet2DConditionModel`` + one CLIP text encoder)."""

    family = "sd15"
    default_guidance = 7.5
    denoiser_component: ClassVar[str] = "unet"

    @property
    def prompt_tokens(self) -> int:
        """CLIP's padded prompt length (77; the tokenizer's ``model_max_length`` if loaded)."""
        tokenizer = getattr(self.pipeline, "tokenizer", None)
        return int(tokenizer.model_max_length) if tokenizer is not None else 77

    def _encode_text(self, prompts: list[str]) -> dict[str, torch.Tensor | None]:
        embeds, _ = self.text_pipeline.encode_prompt(prompts, self.text_device, 1, False)
        return {"embeds": embeds}

    def embedding_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"embeds": (self.prompt_tokens, int(config_of(self.module).cross_attention_dim))}

    def forward_inputs(self, latents: torch.Tensor, t: torch.Tensor,
                       cond: CondBatch) -> ExampleInputs:
        timesteps = self.timesteps_for(t, latents.shape[0])
        return ExampleInputs((latents, timesteps), {"encoder_hidden_states": cond["embeds"]})


class SDXLAdapter(SD15Adapter):
    """SDXL base (two CLIP encoders, pooled text and size micro-conditions)."""

    family = "sdxl"
    default_guidance = 5.0
    text_encoder_names = ("text_encoder", "text_encoder_2")

    def _encode_text(self, prompts: list[str]) -> dict[str, torch.Tensor | None]:
        embeds, _, pooled, _ = self.text_pipeline.encode_prompt(
            prompts, device=self.text_device, num_images_per_prompt=1,
            do_classifier_free_guidance=False,
        )
        return {"embeds": embeds, "pooled": pooled}

    def embedding_shapes(self) -> dict[str, tuple[int, ...]]:
        config = config_of(self.module)
        # The pooled vector fills the add-embedding input next to 6 Fourier-embedded sizes.
        pooled = int(config.projection_class_embeddings_input_dim) - 6 * int(
            config.addition_time_embed_dim)
        return {"embeds": (self.prompt_tokens, int(config.cross_attention_dim)),
                "pooled": (pooled,)}

    @property
    def zero_negative(self) -> bool:
        """Unconditional branch = zeros (SDXL's ``force_zeros_for_empty_prompt`` with no
        negative prompt)."""
        force = True
        if self.pipeline is not None:
            force = bool(self.pipeline.config.get("force_zeros_for_empty_prompt", True))
        return force and isinstance(self.negative, str) and self.negative == ""

    def null_embedding(self) -> PromptEmbedding:
        if self._null is None and self.zero_negative:
            shapes = self.embedding_shapes()
            self._null = PromptEmbedding(embeds=torch.zeros(shapes["embeds"]),
                                         pooled=torch.zeros(shapes["pooled"]))
        return super().null_embedding()

    def forward_inputs(self, latents: torch.Tensor, t: torch.Tensor,
                       cond: CondBatch) -> ExampleInputs:
        batch = latents.shape[0]
        size = [self.height, self.width]
        time_ids = torch.tensor([[*size, 0, 0, *size]], dtype=latents.dtype, device=self.device)
        added = {"text_embeds": cond["pooled"], "time_ids": time_ids.repeat(batch, 1)}
        kwargs = {"encoder_hidden_states": cond["embeds"], "added_cond_kwargs": added}
        return ExampleInputs((latents, self.timesteps_for(t, batch)), kwargs)
