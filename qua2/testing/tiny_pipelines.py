"""Whole tiny pipelines of every diffusers family, assembled offline (tests, smoke runs).

Each pipeline has the real component classes — the family's denoiser from
:func:`qua2.testing.tiny_models.tiny_denoiser`, an ``AutoencoderKL``, the family's scheduler,
CLIP/T5/BERT text encoders built from transformers configs and tokenizers built from a
few-dozen-word vocabulary written on the fly — but only thousands of parameters, so
``tiny_pipeline("sdxl").save_pretrained(d)`` followed by ``load_model("sdxl", d)`` exercises the
exact loading path of a real checkpoint in about a second (64-px images). Nothing is
downloaded. Families qua2 has no name for: :mod:`qua2.testing.tiny_auto_pipelines`.
"""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from qua2.errors import Qua2Error
from qua2.models.base import config_of

#: Families :func:`tiny_pipeline` can assemble → the pipeline's denoiser component.
_DENOISER_COMPONENT = {"pixart-alpha": "transformer", "pixart-sigma": "transformer",
                       "dit": "transformer", "hunyuan-dit": "transformer", "sd15": "unet",
                       "sdxl": "unet", "sd3": "transformer", "flux": "transformer"}
TINY_PIPELINE_FAMILIES = tuple(_DENOISER_COMPONENT)
#: Padded prompt length of the tiny CLIP tokenizers (77 in the real ones).
CLIP_TOKENS = 16
_LETTERS = string.ascii_lowercase


# ------------------------------------------------------------------------------ tokenizers
def clip_tokenizer(max_length: int = CLIP_TOKENS) -> Any:
    """A byte-pair CLIP tokenizer over single letters (no merges): one token per letter."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for letter in _LETTERS:
        vocab[letter] = len(vocab)
        vocab[letter + "</w>"] = len(vocab)  # word-final form
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "vocab.json").write_text(json.dumps(vocab))
        (Path(folder) / "merges.txt").write_text("#version: 0.2\n")
        return CLIPTokenizer(str(Path(folder) / "vocab.json"), str(Path(folder) / "merges.txt"),
                             model_max_length=max_length)


def t5_tokenizer(max_length: int = 16) -> Any:
    """A T5-style tokenizer: word-level single letters, ``</s>`` appended, ``<pad>`` padding.

    A plain ``PreTrainedTokenizerFast``: T5's own tokenizer class rebuilds a sentencepiece
    Unigram model on load, which a word-level vocabulary cannot feed.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{c: i + 3 for i, c in enumerate(_LETTERS)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=max_length)


def bert_tokenizer(max_length: int = 16) -> Any:
    """A WordPiece BERT tokenizer over the single letters (Hunyuan-DiT's first encoder)."""
    from transformers import BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_LETTERS]
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "vocab.txt").write_text("\n".join(words) + "\n")
        return BertTokenizer(str(Path(folder) / "vocab.txt"), model_max_length=max_length)


# ------------------------------------------------------------------------------ encoders
def clip_text_encoder(hidden: int, projection: int | None = None) -> nn.Module:
    """A 2-layer CLIP text encoder (``WithProjection`` when ``projection`` is given)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=2 + 2 * len(_LETTERS), hidden_size=hidden, intermediate_size=2 * hidden,
        num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=CLIP_TOKENS,
        projection_dim=projection or hidden, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    )
    model_class = CLIPTextModelWithProjection if projection else CLIPTextModel
    return model_class(config).eval()


def t5_text_encoder(d_model: int) -> nn.Module:
    """A 2-layer T5 encoder with ``d_model`` features."""
    from transformers import T5Config, T5EncoderModel

    config = T5Config(vocab_size=3 + len(_LETTERS), d_model=d_model, d_kv=8, d_ff=2 * d_model,
                      num_layers=2, num_heads=2, relative_attention_num_buckets=8,
                      # transformers' @strict config takes extra kwargs its typing does not list
                      decoder_start_token_id=0,  # type: ignore[call-arg]
                      pad_token_id=0, eos_token_id=1)
    return T5EncoderModel(config).eval()


def bert_text_encoder(hidden: int) -> nn.Module:
    """A 2-layer BERT encoder (Hunyuan-DiT's bilingual CLIP text tower is a BertModel)."""
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=5 + len(_LETTERS), hidden_size=hidden, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=2 * hidden,
                        max_position_embeddings=80)
    return BertModel(config).eval()


def tiny_vae(latent_channels: int = 4, *, shift_factor: float | None = None) -> nn.Module:
    """A 4-level ``AutoencoderKL`` with ``latent_channels`` channels.

    Four levels give the real downscale factor 8, which some pipelines hard-code (Hunyuan-DiT's
    rotary grid), so the tiny 8 × 8 latents decode to 64-px images as in the real geometry.
    """
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=latent_channels,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16), layers_per_block=1, norm_num_groups=4,
        sample_size=64, shift_factor=shift_factor,
    )
    # diffusers' many-mixin bases hide nn.Module from mypy; AutoencoderKL is one.
    return cast(nn.Module, vae).eval()


# ------------------------------------------------------------------------------ pipelines
def tiny_scheduler(family: str) -> Any:
    """A fresh instance of ``family``'s published default scheduler (class and settings)."""
    return _schedulers()[family]


def _schedulers() -> dict[str, Any]:
    import diffusers as d

    sd = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}
    return {
        "pixart-alpha": d.DPMSolverMultistepScheduler(),
        "pixart-sigma": d.DPMSolverMultistepScheduler(),
        "dit": d.DDIMScheduler(clip_sample=False),
        "hunyuan-dit": d.DDPMScheduler(beta_start=0.00085, beta_end=0.03,
                                       beta_schedule="scaled_linear", clip_sample=False,
                                       prediction_type="v_prediction", steps_offset=1),
        "sd15": d.PNDMScheduler(skip_prk_steps=True, steps_offset=1, **sd),
        "sdxl": d.EulerDiscreteScheduler(steps_offset=1, **sd),
        "sd3": d.FlowMatchEulerDiscreteScheduler(shift=3.0),
        "flux": d.FlowMatchEulerDiscreteScheduler(
            shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
            base_image_seq_len=256, max_image_seq_len=4096),
    }


def _text_components(family: str) -> dict[str, Any]:
    """Text encoders and tokenizers sized to the tiny denoiser of ``family``."""
    if family in ("pixart-alpha", "pixart-sigma"):
        return {"text_encoder": t5_text_encoder(32), "tokenizer": t5_tokenizer()}
    if family == "hunyuan-dit":
        return {"text_encoder": bert_text_encoder(16), "tokenizer": bert_tokenizer(),
                "text_encoder_2": t5_text_encoder(24), "tokenizer_2": t5_tokenizer()}
    if family == "sd15":
        return {"text_encoder": clip_text_encoder(16), "tokenizer": clip_tokenizer()}
    if family == "sdxl":  # 16 + 16 = cross_attention_dim 32; pooled 16 = 64 − 6·8
        return {"text_encoder": clip_text_encoder(16), "tokenizer": clip_tokenizer(),
                "text_encoder_2": clip_text_encoder(16, projection=16),
                "tokenizer_2": clip_tokenizer()}
    if family == "sd3":  # CLIP 8 + 8 padded to T5's 16 = joint_attention_dim; pooled 6 + 6
        return {"text_encoder": clip_text_encoder(8, projection=6), "tokenizer": clip_tokenizer(),
                "text_encoder_2": clip_text_encoder(8, projection=6),
                "tokenizer_2": clip_tokenizer(),
                "text_encoder_3": t5_text_encoder(16), "tokenizer_3": t5_tokenizer()}
    if family == "flux":  # CLIP pooled 12 = pooled_projection_dim; T5 16 = joint_attention_dim
        return {"text_encoder": clip_text_encoder(12), "tokenizer": clip_tokenizer(),
                "text_encoder_2": t5_text_encoder(16), "tokenizer_2": t5_tokenizer()}
    return {}


_TINY_DENOISER = {"pixart-alpha": "pixart", "pixart-sigma": "pixart", "hunyuan-dit": "hunyuan"}


def tiny_pipeline(family: str, seed: int = 0) -> Any:
    """A seeded, float32, CPU diffusers pipeline of ``family`` with tiny random components."""
    import diffusers

    from qua2.models.registry import get_family

    if family not in _DENOISER_COMPONENT:
        raise Qua2Error(
            f"no tiny pipeline for family {family!r}; choose one of "
            f"{', '.join(TINY_PIPELINE_FAMILIES)}."
        )
    denoiser = _pipeline_denoiser(family, seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # transformers/diffusers initialise from the global generator
        latent_channels = config_of(denoiser).in_channels // (4 if family == "flux" else 1)
        shift = 0.1159 if family in ("sd3", "flux") else None
        components: dict[str, Any] = {
            _DENOISER_COMPONENT[family]: denoiser,
            "vae": tiny_vae(latent_channels, shift_factor=shift),
            "scheduler": tiny_scheduler(family), **_text_components(family),
        }
    pipeline_class = getattr(diffusers, str(get_family(family).pipeline))
    return pipeline_class(**_pipeline_extras(family), **components)


def _pipeline_denoiser(family: str, seed: int) -> nn.Module:
    """The tiny denoiser of ``family``, with the prompt lengths its pipeline hard-codes.

    ``HunyuanDiTPipeline`` always encodes 77 CLIP and 256 T5 tokens, so its denoiser must be
    built for those lengths (``qua2.testing.tiny_models`` uses 5 and 7 for speed).
    """
    from qua2.testing.tiny_models import tiny_config, tiny_denoiser

    if family != "hunyuan-dit":
        return tiny_denoiser(_TINY_DENOISER.get(family, family), seed=seed)[0]
    from diffusers import HunyuanDiT2DModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        config = {**tiny_config("hunyuan"), "text_len": 77, "text_len_t5": 256}
        return cast(nn.Module, HunyuanDiT2DModel(**config)).eval()  # (see tiny_vae)


def _pipeline_extras(family: str) -> dict[str, Any]:
    """Constructor arguments besides the components (label names, no safety checker)."""
    if family == "dit":
        return {"id2label": {0: "tench, Tinca tinca", 1: "goldfish", 2: "great white shark"}}
    if family in ("sd15", "hunyuan-dit"):
        return {"safety_checker": None, "feature_extractor": None,
                "requires_safety_checker": False}
    return {}
