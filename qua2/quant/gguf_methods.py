"""GGUF block types as quantization methods of the registry (``q4_k``, ``q8_0`` …).

A GGUF option stores the weight exactly as a GGUF file would: its ``codes`` are the raw block
bytes of :func:`qua2.quant.gguf.quantize_gguf` (``MethodSpec.raw``), so an option's bytes,
average bits (``16 · bytes / fp16 bytes`` = the type's bits per weight) and error are those of
the real file, and the GGUF export writes the cached bytes unchanged.

Convolution weights stay F16 under every GGUF option (a GGUF tensor keeps the weight's shape,
and a kernel row holds no block), as GGUF converters do.

**Per-layer option sets, by fallback.** A type needs rows whose length is a multiple of its
block (256 for K-quants, 32 for the others). Like ``llama-quantize``, which falls back per
tensor, a layer that cannot hold the asked type takes the nearest type it can hold:
Q2_K/Q3_K → IQ4_NL, Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, and a row that no 32-block fits
stays F16. Every option therefore exists for every layer — the sampler, surrogates and search
need no per-layer option sets — and what each (layer, option) really costs and loses is what
the option cache records, so budgets stay exact. :func:`actual_type` says which type a layer
gets; `qua2 export --format gguf` writes that type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from qua2.quant.gguf import _LAYOUT, GGUF_TYPES, dequantize_gguf, gguf_block_size, quantize_gguf

if TYPE_CHECKING:
    from qua2.quant.methods import DequantizeFn, QuantizeFn

#: llama.cpp's per-tensor fallback when a row does not hold a K-quant super-block.
FALLBACK = {"q2_k": "iq4_nl", "q3_k": "iq4_nl", "q4_k": "q5_0", "q5_k": "q5_1", "q6_k": "q8_0"}
F16 = "f16"


def actual_type(type_name: str, row_length: int) -> str:
    """The type a layer with rows of ``row_length`` weights really gets for ``type_name``."""
    current = type_name
    while row_length % gguf_block_size(current):
        current = FALLBACK.get(current, F16)
        if current == F16:
            return F16
    return current


def _quantizer(type_name: str) -> tuple[QuantizeFn, DequantizeFn]:
    def quantize(rows: Tensor, bits: int, shared: dict) -> tuple[Tensor, dict]:
        # Convolutions stay F16: a GGUF tensor keeps the weight's own shape, whose innermost
        # axis (the kernel width) holds no block; GGUF converters keep them F16 too.
        conv = len(shared.get("weight_shape", rows.shape)) > 2
        real = F16 if conv else actual_type(type_name, rows.shape[1])
        if real == F16:
            return rows.to(torch.float16).contiguous().view(torch.uint8), {}
        return quantize_gguf(rows, real), {}

    def dequantize(codes: Tensor, params: Mapping[str, Tensor], bits: int,
                   row_length: int | None) -> Tensor:
        assert row_length is not None  # raw methods receive it (MethodSpec.raw)
        real = stored_type(type_name, row_length, codes.shape[1])
        if real == F16:
            return codes.contiguous().view(torch.float16).float()
        return dequantize_gguf(codes, real, (codes.shape[0], row_length))

    return quantize, dequantize


def _layout(type_name: str) -> tuple[int, int]:
    """(weights, bytes) per block; F16 is one weight in two bytes."""
    return (1, 2) if type_name == F16 else _LAYOUT[type_name]


def stored_type(type_name: str, row_length: int, row_bytes: int) -> str:
    """The type whose bytes a stored row holds: F16 takes 2 bytes a weight, which no block type
    does (Q8_0 takes 34/32); otherwise the row length decides, as when quantizing."""
    return F16 if row_bytes == 2 * row_length else actual_type(type_name, row_length)


def register_gguf_methods() -> None:
    """Register every GGUF type as a method (called once by :mod:`qua2.quant.methods`)."""
    from qua2.quant.methods import MethodSpec, register_method

    for name in GGUF_TYPES:
        quantize, dequantize = _quantizer(name)
        register_method(MethodSpec(name, quantize, dequantize, {},
                                   f"GGUF {name.upper()} (ggml reference quantizer)",
                                   rowwise=False, raw=True))
