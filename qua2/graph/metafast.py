"""Shape-only shortcuts for slow ``meta`` kernels, used while tracing on the meta device.

On ``meta`` tensors torch computes output shapes through its Python reference
implementations: a broadcasting ``add`` takes ~1 ms, ``group_norm``/``layer_norm`` ~4 ms and
``scaled_dot_product_attention`` ~10 ms, which makes a meta forward of SDXL take seconds. The
tracer only needs shapes and dtypes, and for these ops they are simple: broadcasting for
pointwise ops, "same as the input" for norms and softmax, ``(*q.shape[:-1], v.shape[-1])`` for
attention, ``(*x.shape[:-1], out_features)`` for ``linear`` (whose meta path decomposes into
``addmm`` at ~4 ms a call). :func:`shortcut` returns such an empty meta tensor, or ``None``
to run the real op.

Only float tensors are short-cut (integer division and comparisons promote dtypes in ways not
worth re-implementing), and only when every tensor argument is on ``meta``.
"""

from __future__ import annotations

from typing import Any

import torch

_BINARY = frozenset({
    "add", "__add__", "__radd__", "sub", "__sub__", "__rsub__", "rsub", "mul", "__mul__",
    "__rmul__", "div", "__truediv__", "__rtruediv__", "true_divide", "pow", "__pow__",
    "__rpow__", "maximum", "minimum",
})
_INPLACE = frozenset({"add_", "__iadd__", "sub_", "__isub__", "mul_", "__imul__", "div_",
                      "__itruediv__", "clamp_", "silu_", "relu_", "sigmoid_", "tanh_"})
_SAME_SHAPE = frozenset({
    "silu", "gelu", "relu", "sigmoid", "tanh", "mish", "softplus", "exp", "neg", "__neg__",
    "sqrt", "rsqrt", "sin", "cos", "abs", "clamp", "erf", "reciprocal", "square",
    "layer_norm", "group_norm", "rms_norm", "softmax", "log_softmax", "normalize",
})
_SHORT_CUT = _BINARY | _INPLACE | _SAME_SHAPE | {"scaled_dot_product_attention", "linear"}


def shortcut(name: str, args: tuple, kwargs: dict) -> torch.Tensor | None:
    """An empty meta result of ``name(*args, **kwargs)``, or ``None`` to run the real op."""
    if name not in _SHORT_CUT:
        return None
    tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
    if not tensors or "out" in kwargs or not all(t.is_meta and t.is_floating_point()
                                                 for t in tensors):
        return None
    if name in _INPLACE:
        return args[0]
    if name == "scaled_dot_product_attention":
        return _attention(args, kwargs)
    if name == "linear":
        return _linear(args, kwargs)
    if name in _SAME_SHAPE:
        dtype = kwargs.get("dtype") or tensors[0].dtype
        return torch.empty(tensors[0].shape, dtype=dtype, device="meta")
    return _binary(args)


def _binary(args: tuple) -> torch.Tensor | None:
    operands = [a for a in args[:2] if isinstance(a, (torch.Tensor, int, float))]
    if len(operands) != 2 or any(isinstance(a, bool) for a in operands):
        return None
    shape = _broadcast([a.shape for a in operands if isinstance(a, torch.Tensor)])
    if shape is None:
        return None  # let the real op raise its shape error
    first, second = operands
    return torch.empty(shape, dtype=torch.result_type(first, second), device="meta")


def _broadcast(shapes: list[torch.Size]) -> list[int] | None:
    """NumPy broadcasting of ``shapes`` (``torch.broadcast_shapes`` is slow Python here)."""
    ndim = max(len(s) for s in shapes)
    out = [1] * ndim
    for shape in shapes:
        for i, size in enumerate(shape, ndim - len(shape)):
            if size != 1:
                if out[i] not in (1, size):
                    return None
                out[i] = size
    return out


def _linear(args: tuple, kwargs: dict[str, Any]) -> torch.Tensor | None:
    x = args[0] if args else kwargs["input"]
    weight = args[1] if len(args) > 1 else kwargs["weight"]
    if weight.dim() != 2 or x.shape[-1] != weight.shape[1]:
        return None
    return torch.empty((*x.shape[:-1], weight.shape[0]), dtype=x.dtype, device="meta")


def _attention(args: tuple, kwargs: dict[str, Any]) -> torch.Tensor | None:
    names = ("query", "key", "value")
    query, _, value = (args[i] if i < len(args) else kwargs[n] for i, n in enumerate(names))
    batch = _broadcast([query.shape[:-2], value.shape[:-2]])
    if batch is None:
        return None
    return torch.empty((*batch, query.shape[-2], value.shape[-1]), dtype=query.dtype,
                       device="meta")
