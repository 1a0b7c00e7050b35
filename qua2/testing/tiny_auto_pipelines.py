"""Tiny random pipelines of diffusers families qua2 has no adapter for (generic-adapter tests).

:mod:`qua2.testing.tiny_pipelines` builds tiny pipelines of the families qua2 models itself
(PixArt, DiT, Hunyuan-DiT, SD 1.5, SDXL, SD3, Flux). This module does the same for families
that only a generic adapter — one that drives a pipeline through its own ``__call__`` — can
reach: Sana, AuraFlow, Lumina-Image 2, CogView3-Plus, CogView4, Chroma, Z-Image, the latent
consistency model (whose ``LCMScheduler`` is stochastic) and Wan 2.1 (text to video).

Every pipeline has the real component classes — the family's transformer/UNet, its VAE class,
its scheduler with the published default settings, a ``transformers`` text encoder of the right
architecture built from a 2-layer config, and a tokenizer written on the fly over a vocabulary of
single letters — but only thousands of parameters, and nothing is downloaded. The tokenizers are
word-level like :func:`~qua2.testing.tiny_pipelines.t5_tokenizer`: a prompt word that is not a
single letter ("cat", "dog") is ``<unk>``, so use single-letter words for prompts that must
condition differently.

Public API::

    AUTO_TINY_FAMILIES: tuple[str, ...]
    TINY_AUTO_RESOLUTION: dict[str, int]        # image side (pixels) to call the pipeline at
    tiny_auto_pipeline(family, seed=0) -> DiffusionPipeline
    save_tiny_auto_pipeline(family, directory, seed=0) -> Path
"""

from __future__ import annotations

import string
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from qua2.errors import Qua2Error
from qua2.testing.tiny_pipelines import (
    clip_text_encoder,
    clip_tokenizer,
    t5_text_encoder,
    t5_tokenizer,
    tiny_vae,
)

_LETTERS = string.ascii_lowercase
#: Flux's VAE shift; the flow-matching pipelines below that decode with the Flux VAE read it.
_FLUX_SHIFT = 0.1159
#: Width of every tiny text encoder; each denoiser's text input is sized to it.
_TEXT = 16


# ------------------------------------------------------------------------------ tokenizers
def _word_tokenizer(specials: list[str], *, unk: str, pad: str, eos: str | None = None,
                    bos: str | None = None, template: str = "$A", padding_side: str = "right",
                    max_length: int = 1024, chat_template: str | None = None) -> Any:
    """A ``PreTrainedTokenizerFast`` over single letters with the given special tokens.

    ``specials`` are the special tokens in id order (the letters follow them); ``template``
    places them around a prompt (``"<bos> $A"``). They are registered as added tokens so that
    chat markers such as ``<|im_start|>`` survive the whitespace pre-tokenizer whole.
    """
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate([*specials, *_LETTERS])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token=unk))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    if template != "$A":
        used = [t for t in template.split() if t in vocab]
        backend.post_processor = processors.TemplateProcessing(
            single=template, special_tokens=[(t, vocab[t]) for t in used])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token=unk, pad_token=pad, eos_token=eos, bos_token=bos,
        padding_side=padding_side, model_max_length=max_length,
        model_input_names=["input_ids", "attention_mask"])
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer


def gemma_tokenizer() -> Any:
    """Gemma's special tokens and ids (``<pad>`` 0, ``<eos>`` 1, ``<bos>`` 2), ``<bos>`` first.

    Sana keeps the first token of every prompt (its ``select_index``), which is Gemma's
    ``<bos>``, so the tokenizer must prepend it as the real one does.
    """
    return _word_tokenizer(["<pad>", "<eos>", "<bos>", "<unk>"], unk="<unk>", pad="<pad>",
                           eos="<eos>", bos="<bos>", template="<bos> $A")


#: Qwen3's chat format reduced to what Z-Image renders: one user turn, then the assistant cue.
_QWEN_CHAT = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def qwen_tokenizer() -> Any:
    """A Qwen3-style tokenizer: no BOS, ``<|endoftext|>`` padding, a ChatML chat template."""
    return _word_tokenizer(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"],
                           unk="<unk>", pad="<|endoftext|>", eos="<|im_end|>",
                           chat_template=_QWEN_CHAT)


def glm_tokenizer() -> Any:
    """A GLM-4-style tokenizer: ``[gMASK] <sop>`` before every prompt, padding on the left.

    The prefix matters: CogView4 encodes the empty negative prompt, which without it would be
    a zero-length sequence (its pipeline only pads up to a multiple of 16).
    """
    return _word_tokenizer(["<|endoftext|>", "[gMASK]", "<sop>", "<unk>"], unk="<unk>",
                           pad="<|endoftext|>", eos="<|endoftext|>",
                           template="[gMASK] <sop> $A", padding_side="left")


# ------------------------------------------------------------------------------ encoders
def _vocab(tokenizer: Any) -> int:
    return len(tokenizer.get_vocab())


def gemma2_text_encoder(vocab_size: int) -> nn.Module:
    """A 2-layer ``Gemma2Model`` (Sana and Lumina 2 read its last or second-to-last layer)."""
    from transformers import Gemma2Config, Gemma2Model

    config = Gemma2Config(vocab_size=vocab_size, hidden_size=_TEXT, intermediate_size=2 * _TEXT,
                          num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                          head_dim=8, query_pre_attn_scalar=8, pad_token_id=0, eos_token_id=1,
                          bos_token_id=2)
    return Gemma2Model(config).eval()


def qwen3_text_encoder(vocab_size: int) -> nn.Module:
    """A 2-layer ``Qwen3Model`` (Z-Image reads its second-to-last layer)."""
    from transformers import Qwen3Config, Qwen3Model

    config = Qwen3Config(vocab_size=vocab_size, hidden_size=_TEXT, intermediate_size=2 * _TEXT,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         head_dim=8, pad_token_id=0, eos_token_id=2)
    return Qwen3Model(config).eval()


def glm_text_encoder(vocab_size: int) -> nn.Module:
    """A 2-layer ``GlmModel`` (CogView4 reads its second-to-last layer)."""
    from transformers import GlmConfig, GlmModel

    config = GlmConfig(vocab_size=vocab_size, hidden_size=_TEXT, intermediate_size=2 * _TEXT,
                       num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                       head_dim=8, pad_token_id=0, eos_token_id=0)
    return GlmModel(config).eval()


def umt5_text_encoder() -> nn.Module:
    """A 2-layer ``UMT5EncoderModel`` over :func:`t5_tokenizer`'s vocabulary."""
    from transformers import UMT5Config, UMT5EncoderModel

    config = UMT5Config(vocab_size=3 + len(_LETTERS), d_model=_TEXT, d_kv=8, d_ff=2 * _TEXT,
                        num_layers=2, num_heads=2, relative_attention_num_buckets=8,
                        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    return UMT5EncoderModel(config).eval()


# ------------------------------------------------------------------------------ components
def _diffusers(class_name: str, **config: Any) -> nn.Module:
    """An instance of diffusers' ``class_name`` in eval mode.

    diffusers' many-mixin model bases hide ``nn.Module`` from mypy, hence the cast.
    """
    import diffusers

    return cast(nn.Module, getattr(diffusers, class_name)(**config)).eval()


def _flow_scheduler(**settings: Any) -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(**settings)


def _sana() -> dict[str, Any]:
    from diffusers import DPMSolverMultistepScheduler

    tokenizer = gemma_tokenizer()
    return {
        "tokenizer": tokenizer, "text_encoder": gemma2_text_encoder(_vocab(tokenizer)),
        # Sana's default resolution binning only knows sample sizes 16-128; 16 picks the 512-px
        # bins, so every call denoises 512 px (16 × 16 latents) and resizes to the asked size.
        "transformer": _diffusers(
            "SanaTransformer2DModel", in_channels=4, out_channels=4, num_attention_heads=2,
            attention_head_dim=8, num_layers=2, num_cross_attention_heads=2,
            cross_attention_head_dim=8, cross_attention_dim=16, caption_channels=_TEXT,
            sample_size=16),
        "vae": _sana_vae(),
        # Sana 1.0 1024 px: DPM-Solver++ over flow sigmas with shift 3.
        "scheduler": DPMSolverMultistepScheduler(
            prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0),
    }


def _sana_vae() -> nn.Module:
    """A 6-level ``AutoencoderDC`` (factor 32 as in DC-AE f32): ResBlocks, then EfficientViT."""
    levels = ("ResBlock",) * 3 + ("EfficientViTBlock",) * 3
    widths = (4, 4, 8, 8, 8, 8)
    return _diffusers(
        "AutoencoderDC", latent_channels=4, attention_head_dim=4,
        encoder_block_types=levels, decoder_block_types=levels,
        encoder_block_out_channels=widths, decoder_block_out_channels=widths,
        encoder_layers_per_block=(1,) * 6, decoder_layers_per_block=(1,) * 6,
        encoder_qkv_multiscales=((),) * 3 + ((5,),) * 3,
        decoder_qkv_multiscales=((),) * 3 + ((5,),) * 3,
        upsample_block_type="interpolate", downsample_block_type="Conv",
        decoder_norm_types=("batch_norm",) * 3 + ("rms_norm",) * 3,
        decoder_act_fns=("relu",) * 3 + ("silu",) * 3, scaling_factor=0.41407)


def _auraflow() -> dict[str, Any]:
    return {
        "tokenizer": t5_tokenizer(max_length=256), "text_encoder": umt5_text_encoder(),
        # pos_embed_max_size counts patches (an 8 × 8 grid: up to 128 px).
        "transformer": _diffusers(
            "AuraFlowTransformer2DModel", sample_size=8, patch_size=2, in_channels=4,
            out_channels=4, num_mmdit_layers=1, num_single_dit_layers=1, attention_head_dim=8,
            num_attention_heads=2, joint_attention_dim=_TEXT, caption_projection_dim=16,
            pos_embed_max_size=64),
        "vae": tiny_vae(4),
        "scheduler": _flow_scheduler(shift=1.73),  # fal/AuraFlow
    }


def _lumina2() -> dict[str, Any]:
    tokenizer = gemma_tokenizer()
    return {
        "tokenizer": tokenizer, "text_encoder": gemma2_text_encoder(_vocab(tokenizer)),
        # The rotary axes split the head dimension 8 into caption index, row and column.
        "transformer": _diffusers(
            "Lumina2Transformer2DModel", sample_size=8, patch_size=2, in_channels=4,
            hidden_size=16, num_layers=1, num_refiner_layers=1, num_attention_heads=2,
            num_kv_heads=1, multiple_of=16, axes_dim_rope=(4, 2, 2), cap_feat_dim=_TEXT),
        "vae": tiny_vae(4, shift_factor=_FLUX_SHIFT),  # Lumina 2 decodes with the Flux VAE
        "scheduler": _flow_scheduler(shift=6.0),
    }


def _cogview3plus() -> dict[str, Any]:
    from diffusers import CogVideoXDDIMScheduler

    return {
        "tokenizer": t5_tokenizer(max_length=224), "text_encoder": t5_text_encoder(_TEXT),
        "transformer": _diffusers(
            "CogView3PlusTransformer2DModel", patch_size=2, in_channels=4, out_channels=4,
            num_layers=1, attention_head_dim=8, num_attention_heads=2, text_embed_dim=_TEXT,
            time_embed_dim=16, condition_dim=4, pos_embed_max_size=8, sample_size=8),
        "vae": tiny_vae(4),
        # THUDM/CogView3-Plus-3B: v-prediction DDIM on a zero-terminal-SNR, shifted schedule.
        "scheduler": CogVideoXDDIMScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
            prediction_type="v_prediction", rescale_betas_zero_snr=True, set_alpha_to_one=True,
            snr_shift_scale=4.0, timestep_spacing="trailing"),
    }


def _cogview4() -> dict[str, Any]:
    tokenizer = glm_tokenizer()
    return {
        "tokenizer": tokenizer, "text_encoder": glm_text_encoder(_vocab(tokenizer)),
        "transformer": _diffusers(
            "CogView4Transformer2DModel", patch_size=2, in_channels=4, out_channels=4,
            num_layers=1, attention_head_dim=8, num_attention_heads=2, text_embed_dim=_TEXT,
            time_embed_dim=16, condition_dim=4, pos_embed_max_size=8, sample_size=8),
        "vae": tiny_vae(4),
        # THUDM/CogView4-6B: shift mu grows linearly with sqrt(image tokens / 256).
        "scheduler": _flow_scheduler(use_dynamic_shifting=True, base_shift=0.25, max_shift=0.75,
                                     base_image_seq_len=256, time_shift_type="linear"),
    }


def _chroma() -> dict[str, Any]:
    return {
        "tokenizer": t5_tokenizer(max_length=512), "text_encoder": t5_text_encoder(_TEXT),
        # Flux packs 2 × 2 latent patches: 4 latent channels -> 16 transformer channels. The
        # rotary axes (text, row, column) split the head dimension 16.
        "transformer": _diffusers(
            "ChromaTransformer2DModel", in_channels=16, num_layers=1, num_single_layers=1,
            attention_head_dim=16, num_attention_heads=2, joint_attention_dim=_TEXT,
            axes_dims_rope=(4, 6, 6), approximator_num_channels=16, approximator_hidden_dim=16,
            approximator_layers=1),
        "vae": tiny_vae(4, shift_factor=_FLUX_SHIFT),
        "scheduler": _flow_scheduler(  # lodestones/Chroma: Flux.1-dev's dynamic shifting
            shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
            base_image_seq_len=256, max_image_seq_len=4096),
    }


def _z_image() -> dict[str, Any]:
    tokenizer = qwen_tokenizer()
    return {
        "tokenizer": tokenizer, "text_encoder": qwen3_text_encoder(_vocab(tokenizer)),
        # The timestep MLP's 1024-wide hidden layer is hard-coded (about 280 k of the weights).
        "transformer": _diffusers(
            "ZImageTransformer2DModel", in_channels=4, dim=16, n_layers=1, n_refiner_layers=1,
            n_heads=2, n_kv_heads=2, cap_feat_dim=_TEXT, axes_dims=[2, 4, 2]),
        "vae": tiny_vae(4, shift_factor=_FLUX_SHIFT),  # Z-Image decodes with the Flux VAE
        "scheduler": _flow_scheduler(shift=3.0),  # Tongyi-MAI/Z-Image-Turbo
    }


def _lcm() -> dict[str, Any]:
    from diffusers import LCMScheduler

    from qua2.testing.tiny_models import tiny_config

    # An SD 1.5 UNet distilled with guidance embedded: w enters through time_cond_proj_dim.
    unet = _diffusers("UNet2DConditionModel", **tiny_config("sd15"), time_cond_proj_dim=8)
    return {
        "tokenizer": clip_tokenizer(), "text_encoder": clip_text_encoder(16), "unet": unet,
        "vae": tiny_vae(4),
        # SimianLuo/LCM_Dreamshaper_v7
        "scheduler": LCMScheduler(beta_start=0.00085, beta_end=0.012,
                                  beta_schedule="scaled_linear", clip_sample=False,
                                  set_alpha_to_one=True, steps_offset=1, timestep_scaling=10.0,
                                  original_inference_steps=50),
        "safety_checker": None, "feature_extractor": None, "requires_safety_checker": False,
    }


def _wan() -> dict[str, Any]:
    from diffusers import UniPCMultistepScheduler

    return {
        "tokenizer": t5_tokenizer(max_length=512), "text_encoder": umt5_text_encoder(),
        "transformer": _diffusers(
            "WanTransformer3DModel", num_attention_heads=2, attention_head_dim=8, in_channels=4,
            out_channels=4, text_dim=_TEXT, freq_dim=16, ffn_dim=32, num_layers=1,
            rope_max_seq_len=32),
        # 8 channels at every level: with 4 the decoder's RMS norms amplify rounding so much
        # that batch size alone moves pixels by > 1e-5; the factors 4 (time) and 8 are real.
        "vae": _diffusers("AutoencoderKLWan", base_dim=8, z_dim=4, dim_mult=[1, 1, 1, 1],
                          num_res_blocks=1, latents_mean=[0.0] * 4, latents_std=[1.0] * 4),
        # Wan2.1-T2V-1.3B at 480 p: UniPC over flow sigmas with shift 3.
        "scheduler": UniPCMultistepScheduler(prediction_type="flow_prediction",
                                             use_flow_sigmas=True, flow_shift=3.0),
    }


# ------------------------------------------------------------------------------ public API
#: Family -> (diffusers pipeline class, component builder).
_BUILDERS: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
    "sana": ("SanaPipeline", _sana),
    "auraflow": ("AuraFlowPipeline", _auraflow),
    "lumina2": ("Lumina2Pipeline", _lumina2),
    "cogview3plus": ("CogView3PlusPipeline", _cogview3plus),
    "cogview4": ("CogView4Pipeline", _cogview4),
    "chroma": ("ChromaPipeline", _chroma),
    "z-image": ("ZImagePipeline", _z_image),
    "lcm": ("LatentConsistencyModelPipeline", _lcm),
    "wan": ("WanPipeline", _wan),
}

#: Families :func:`tiny_auto_pipeline` can assemble.
AUTO_TINY_FAMILIES: tuple[str, ...] = tuple(_BUILDERS)
#: Image side in pixels to call each tiny pipeline at (a multiple of its latent patch grid).
#: Sana still denoises at 512 px unless called with ``use_resolution_binning=False``.
TINY_AUTO_RESOLUTION: dict[str, int] = {family: 64 for family in AUTO_TINY_FAMILIES}
TINY_AUTO_RESOLUTION["wan"] = 32  # 81 frames by default (``out.frames``): keep each frame small


def tiny_auto_pipeline(family: str, seed: int = 0) -> Any:
    """A seeded, float32, CPU diffusers pipeline of ``family`` with tiny random components."""
    import diffusers

    if family not in _BUILDERS:
        raise Qua2Error(
            f"no tiny auto pipeline for family {family!r}; choose one of "
            f"{', '.join(AUTO_TINY_FAMILIES)}."
        )
    pipeline_name, build = _BUILDERS[family]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # transformers/diffusers initialise from the global generator
        components = build()
    return getattr(diffusers, pipeline_name)(**components)


def save_tiny_auto_pipeline(family: str, directory: str | Path, seed: int = 0) -> Path:
    """Save :func:`tiny_auto_pipeline` ``(family, seed)`` to ``directory`` (safetensors)."""
    directory = Path(directory)
    tiny_auto_pipeline(family, seed).save_pretrained(directory, safe_serialization=True)
    return directory
