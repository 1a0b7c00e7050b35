"""Quantizing attention probabilities without editing diffusers: a wrapping attention processor.

diffusers attention modules delegate their computation to a swappable *processor*. To reach
the softmax output (the attention probabilities, which Qua²SeDiMo quantizes at the activation
bit-width and PTQ-for-DiT work often at a separate one), qua2 temporarily replaces each
module's processor with :class:`ProbsQuantProcessor`, which runs the *original* processor
inside a :class:`torch.overrides.TorchFunctionMode` that

* turns every ``scaled_dot_product_attention`` call into the explicit
  ``softmax(Q Kᵀ · scale + mask) · V`` so the probabilities exist as a tensor, and
* hands every ``softmax`` result (processors that compute attention explicitly) to the site
  function, which quantizes or observes it.

The original processor is restored on exit (:func:`swap_processor`). Nothing of diffusers is
patched, so any processor built on ``F.scaled_dot_product_attention`` or ``softmax`` works.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

ProbsFn = Callable[[torch.Tensor], torch.Tensor]
_SDPA = torch.nn.functional.scaled_dot_product_attention


def explicit_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                       attn_mask: torch.Tensor | None = None, dropout_p: float = 0.0,
                       is_causal: bool = False, scale: float | None = None,
                       enable_gqa: bool = False, on_probs: ProbsFn | None = None) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` written out; the probabilities go through ``on_probs``.

    Dropout is ignored: sampling runs the denoiser in eval mode.
    """
    del dropout_p
    if enable_gqa and key.shape[-3] != query.shape[-3]:
        repeat = query.shape[-3] // key.shape[-3]
        key = key.repeat_interleave(repeat, dim=-3)
        value = value.repeat_interleave(repeat, dim=-3)
    scale = query.shape[-1] ** -0.5 if scale is None else scale
    scores = (query @ key.transpose(-2, -1)).float() * scale
    if is_causal:
        causal = torch.ones(scores.shape[-2:], dtype=torch.bool, device=scores.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask.float()
    probs = scores.softmax(dim=-1).to(query.dtype)
    if on_probs is not None:
        probs = on_probs(probs)
    return probs @ value


class _ProbsMode(TorchFunctionMode):
    """Routes attention probabilities computed inside an attention processor to ``on_probs``."""

    def __init__(self, on_probs: ProbsFn) -> None:
        super().__init__()
        self.on_probs = on_probs

    def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func is _SDPA:
            return explicit_attention(*args, **{**kwargs, "on_probs": self.on_probs})
        out = func(*args, **kwargs)
        if getattr(func, "__name__", "") == "softmax":
            return self.on_probs(out)
        return out


@functools.cache
def _wrapper_class(inner_type: type) -> type:
    """A processor class whose ``__call__`` advertises ``inner_type``'s signature.

    diffusers drops keyword arguments (``image_rotary_emb``, ``temb`` …) that the processor's
    ``__call__`` signature does not name, so the wrapper must expose the inner signature.
    """

    def call(self: ProbsQuantProcessor, attn: nn.Module, *args: Any, **kwargs: Any) -> Any:
        with _ProbsMode(self.on_probs):
            return self.inner(attn, *args, **kwargs)

    functools.update_wrapper(call, inner_type.__call__)
    return type(f"ProbsQuant{inner_type.__name__}", (ProbsQuantProcessor,), {"__call__": call})


class ProbsQuantProcessor:
    """Wraps an attention processor; the attention probabilities go through ``on_probs``."""

    def __new__(cls, inner: Any, on_probs: ProbsFn) -> ProbsQuantProcessor:
        inner_type: type = type(inner)
        target = _wrapper_class(inner_type) if cls is ProbsQuantProcessor else cls
        return super().__new__(target)

    def __init__(self, inner: Any, on_probs: ProbsFn) -> None:
        self.inner = inner
        self.on_probs = on_probs

    def __getattr__(self, name: str) -> Any:
        # Processors expose attributes (e.g. fusion flags) that models read; forward them.
        if name in {"inner", "on_probs"}:
            raise AttributeError(name)
        return getattr(self.inner, name)


def swap_processor(attn: nn.Module, processor: Any) -> Any:
    """Install ``processor`` on ``attn`` and return the previous one (to restore later)."""
    previous = attn.processor
    set_processor = getattr(attn, "set_processor", None)  # diffusers' Attention has one
    if set_processor is not None:
        set_processor(processor)
    else:
        attn.processor = processor
    return previous
