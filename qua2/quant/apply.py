"""Applying a per-layer config: swap cached fake-quantized weights in, restore bit-exactly.

>>> with quantized(model, config, cache):
...     images = adapter.generate(...)

The swap rebinds each chosen layer's ``weight.data`` to the memoised dequantized tensor of its
option and afterwards rebinds it to the *original* tensor object, so restoring copies nothing
and is bit-exact by construction, also when the body raises. Nothing is re-quantized and no
forward is rewritten (docs/ARCHITECTURE.md, Conventions); the cost is a dictionary lookup
per layer once the cache's memo is warm (:meth:`OptionCache.preload`).

Average bits follow Qua²SeDiMo: ``16 × quantized bytes (codes + fp16 overheads) / FP16 bytes``
over the quantized layers; the whole-denoiser figure counts every other parameter at 16 bits.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from qua2.errors import Qua2Error
from qua2.quant.cache import OptionCache
from qua2.quant.cache_build import layer_weight
from qua2.quant.methods import METHODS
from qua2.specs import QuantConfig, QuantOption

ConfigLike = QuantConfig | Mapping[str, Any]


def as_config(config: ConfigLike) -> QuantConfig:
    """A :class:`QuantConfig` from itself, its ``to_dict()`` form, or ``{layer: option}``.

    Options may be :class:`QuantOption` objects, keys such as ``"uaq-w4"`` or dicts.
    """
    if isinstance(config, QuantConfig):
        return config
    if not isinstance(config, Mapping):
        raise Qua2Error(f"a quantization config must map layer names to options, got "
                        f"{type(config).__name__}.")
    if "layers" in config and isinstance(config["layers"], Mapping):
        return QuantConfig.from_dict(config)
    choices = {}
    for layer, option in config.items():
        if isinstance(option, str):
            option = QuantOption.parse(option)
        elif isinstance(option, Mapping):
            option = QuantOption.from_dict(option)
        elif not isinstance(option, QuantOption):
            raise Qua2Error(f"layer {layer!r} has option {option!r}; write it as a QuantOption "
                            "or a key such as 'uaq-w4'.")
        choices[str(layer)] = option
    return QuantConfig(choices)


def validate_config(config: ConfigLike, cache: OptionCache) -> QuantConfig:
    """Check every layer and option against the method registry and the cache; return it.

    Raises :class:`Qua2Error` with one sentence naming the first offending layer or option.
    """
    config = as_config(config)
    known = cache.layer_set
    for layer, option in config.items():
        if layer not in known:
            close = difflib.get_close_matches(layer, sorted(known), n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}" if close else ""
            raise Qua2Error(
                f"config names layer {layer!r}, which is not one of the {len(known)} quantizable "
                f"layers of the option cache{hint}."
            )
        if option.method not in METHODS:
            raise Qua2Error(
                f"layer {layer!r} uses unknown quantization method {option.method!r}; choose "
                f"one of {', '.join(sorted(METHODS))}."
            )
    config.validate(known, cache.space)
    return config


@contextlib.contextmanager
def quantized(module: nn.Module, config: ConfigLike, cache: OptionCache) -> Iterator[nn.Module]:
    """Within the block, the configured layers of ``module`` hold fake-quantized weights.

    Layers the config does not name keep their FP weights. On exit (normal or by exception)
    every swapped weight is rebound to its original tensor: bit-exact, no copies.
    """
    config = validate_config(config, cache)
    swapped: list[tuple[torch.Tensor, torch.Tensor]] = []
    try:
        for layer, option in config.items():
            weight = layer_weight(module, layer)
            new = cache.dequantized(layer, option, device=weight.device, dtype=weight.dtype)
            if new.shape != weight.shape:
                raise Qua2Error(
                    f"layer {layer!r} has shape {tuple(weight.shape)} but the option cache "
                    f"holds {tuple(new.shape)}; rebuild the cache for this model."
                )
            swapped.append((weight, weight.data))
            weight.data = new
        yield module
    finally:
        for weight, original in reversed(swapped):
            weight.data = original


@dataclass(frozen=True)
class BitsSummary:
    """Average bits of a config, over its quantized layers and over the whole denoiser."""

    layers_bits: float  # 16 × quantized bytes / FP16 bytes of the configured layers
    model_bits: float  # same over all parameters, unquantized ones at 16 bits
    quantized_bytes: int  # packed bytes of the configured layers (codes + overheads)
    layers_fp16_bytes: int
    model_bytes: int  # quantized_bytes + 2 bytes per other parameter
    model_fp16_bytes: int


def bits_summary(config: ConfigLike, cache: OptionCache) -> BitsSummary:
    """Average bits over the quantized layers and over the whole denoiser."""
    config = validate_config(config, cache)
    qbytes = fp16 = 0
    for layer, option in config.items():
        stats = cache.option_stats(layer, option)
        qbytes += stats.nbytes
        fp16 += stats.fp16_nbytes
    model_fp16 = 2 * cache.total_params
    model_bytes = qbytes + (model_fp16 - fp16)
    return BitsSummary(
        layers_bits=16.0 * qbytes / fp16 if fp16 else 16.0,
        model_bits=16.0 * model_bytes / model_fp16 if model_fp16 else 16.0,
        quantized_bytes=qbytes, layers_fp16_bytes=fp16,
        model_bytes=model_bytes, model_fp16_bytes=model_fp16,
    )


def average_bits(config: ConfigLike, cache: OptionCache, *, whole_model: bool = False) -> float:
    """Qua²SeDiMo's average bits of a config (incl. overheads); see :class:`BitsSummary`."""
    summary = bits_summary(config, cache)
    return summary.model_bits if whole_model else summary.layers_bits
