"""Hunyuan-DiT: a U-shaped DiT with two text streams (bilingual CLIP/BERT and mT5).

A :class:`PromptEmbedding` carries both streams: ``embeds``/``mask`` from the CLIP-like encoder
(``text_len`` tokens, 77) and ``embeds_2``/``mask_2`` from mT5 (``text_len_t5``, 256). Besides
the text the transformer takes a float timestep, 2-D rotary position embeddings of the latent
grid, the image size/crop ``image_meta_size`` (original 1024², target = generated size, no crop)
and a ``style`` id (0), built here with the pipeline's defaults. Its default scheduler is DDPM,
which draws noise at every step; qua2 samples with DDIM of the same configuration instead (see
:mod:`qua2.models.families.common`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from qua2.models.base import CondBatch, ExampleInputs, config_of
from qua2.models.families.text import TextToImageAdapter

#: The "original image size" micro-condition ``HunyuanDiTPipeline`` passes by default.
ORIGINAL_SIZE = (1024, 1024)


class HunyuanDiTAdapter(TextToImageAdapter):
    """Hunyuan-DiT (``HunyuanDiT2DModel``) with its two text encoders."""

    family = "hunyuan-dit"
    default_guidance = 5.0
    text_encoder_names = ("text_encoder", "text_encoder_2")

    def __init__(self, module: nn.Module, scheduler: Any, **options: Any) -> None:
        super().__init__(module, scheduler, **options)
        self._rotary = self._rotary_embedding()

    def _rotary_embedding(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, sin) rotary tables of the latent patch grid, centred in the 512-px base grid."""
        from diffusers.models.embeddings import get_2d_rotary_pos_embed

        patch = int(config_of(self.module).patch_size)
        grid = (self.latent_shape[1] // patch, self.latent_shape[2] // patch)
        base = 512 // self.vae_scale_factor // patch
        module: Any = self.module  # HunyuanDiT2DModel (plain attributes, not nn.Module ones)
        head_dim = module.inner_dim // module.num_heads
        crop = _centred_crop(grid, base)
        cos, sin = get_2d_rotary_pos_embed(head_dim, crop, grid, output_type="pt")
        return cos, sin

    def _encode_text(self, prompts: list[str]) -> dict[str, torch.Tensor | None]:
        config = config_of(self.module)
        streams = {}
        for index, length in ((0, config.text_len), (1, config.text_len_t5)):
            embeds, _, mask, _ = self.text_pipeline.encode_prompt(
                prompts, device=self.text_device, dtype=self.dtype,
                do_classifier_free_guidance=False, max_sequence_length=int(length),
                text_encoder_index=index,
            )
            streams[index] = (embeds, mask)
        return {"embeds": streams[0][0], "mask": streams[0][1],
                "embeds_2": streams[1][0], "mask_2": streams[1][1]}

    def embedding_shapes(self) -> dict[str, tuple[int, ...]]:
        config = config_of(self.module)
        clip, t5 = int(config.text_len), int(config.text_len_t5)
        return {"embeds": (clip, int(config.cross_attention_dim)), "mask": (clip,),
                "embeds_2": (t5, int(config.cross_attention_dim_t5)), "mask_2": (t5,)}

    def forward_inputs(self, latents: torch.Tensor, t: torch.Tensor,
                       cond: CondBatch) -> ExampleInputs:
        batch = latents.shape[0]
        cos, sin = self._rotary
        kwargs: dict[str, Any] = {
            # Hunyuan embeds a float timestep (the pipeline casts to the latents' dtype).
            "timestep": self.timesteps_for(t, batch).to(latents.dtype),
            "encoder_hidden_states": cond["embeds"],
            "text_embedding_mask": cond["mask"],
            "encoder_hidden_states_t5": cond["embeds_2"],
            "text_embedding_mask_t5": cond["mask_2"],
            "image_rotary_emb": (cos.to(self.device), sin.to(self.device)),
        }
        if config_of(self.module).use_style_cond_and_image_meta_size:
            # original size, target size, crop top-left: the pipeline's defaults.
            sizes = [*ORIGINAL_SIZE, self.height, self.width, 0, 0]
            meta = torch.tensor([sizes], dtype=latents.dtype, device=self.device)
            kwargs["image_meta_size"] = meta.repeat(batch, 1)
            kwargs["style"] = torch.zeros(batch, dtype=torch.long, device=self.device)
        return ExampleInputs((latents,), kwargs)


def _centred_crop(grid: tuple[int, int], base: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Where a ``grid`` resized to fit a ``base``-square lands in it: (top, left), (bottom, right).

    Hunyuan-DiT's rotary positions are those of the 512-px training grid, so a non-square or
    larger image reuses the base grid's coordinate range instead of extrapolating.
    """
    rows, cols = grid
    if rows > cols:
        height, width = base, round(base / rows * cols)
    else:
        height, width = round(base / cols * rows), base
    top, left = round((base - height) / 2.0), round((base - width) / 2.0)
    return (top, left), (top + height, left + width)
