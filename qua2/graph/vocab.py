"""The fixed vocabularies of the operation graph: op types, role components and stages.

Node features are one-hot over these tuples, so their order is part of the feature layout:
append new entries at the end, never reorder (a trained GNN would silently read the wrong
columns). ``docs/graph.md`` explains every entry.

Op types come from two sources:

* leaf-module calls, mapped by class (:func:`module_op_type`), e.g. ``nn.Linear`` → ``linear``;
* torch functions called outside leaf modules, mapped by name (:func:`function_kind`), e.g.
  ``F.scaled_dot_product_attention`` → ``attention``, ``Tensor.__add__`` → ``add``.

Functions that only re-view or re-type data (``view``, ``permute``, ``chunk``, ``to`` …) are
*contracted*: they make no node, their outputs keep the producers of their inputs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Final

from torch import nn

#: Every ``op_type`` a node can have (feature order: append only).
OP_TYPES: Final[tuple[str, ...]] = (
    "input",        # a tensor argument of the traced forward call
    "output",       # the returned tensor(s)
    "linear",       # nn.Linear or F.linear (weight layer)
    "conv",         # nn.Conv1d/2d/3d or F.conv* (weight layer)
    "norm",         # LayerNorm, GroupNorm, RMSNorm … (module or functional)
    "embedding",    # nn.Embedding lookup (class labels, style ids)
    "activation",   # SiLU, GELU, sigmoid, tanh …
    "attention",    # softmax(QKᵀ)V as one op: SDPA or multi-head-attention core
    "matmul",       # matmul / bmm / baddbmm / einsum of two tensors
    "softmax",
    "add",          # add and subtract, incl. residual connections
    "mul",          # multiply and divide, incl. AdaLN modulation and gating
    "cat",          # concatenation / stacking, incl. U-Net skip connections
    "resample",     # interpolate / up- and down-sampling / pooling
    "reduce",       # mean, sum, max … over a dimension
    "elementwise",  # other pointwise maths: exp, pow, where, comparisons …
    "sinusoidal",   # sinusoidal timestep/size features (diffusers Timesteps)
    "rope",         # rotary position-embedding tables computed from ids
    "other",        # anything not listed above (kept, with its name in ``func``)
)

#: Role components: the first part of a node's ``role`` (``component`` or ``component.part``).
ROLE_COMPONENTS: Final[tuple[str, ...]] = (
    "input", "output",
    "self_attn", "cross_attn", "joint_attn", "ff", "adaln", "norm", "residual", "skip",
    "resnet", "sampler", "transformer",
    "time_embed", "text_embed", "class_embed", "cond_embed", "pos_embed",
    "patch_in", "patch_out", "other",
)

#: Where in the network a node sits.
STAGES: Final[tuple[str, ...]] = ("embed", "down", "mid", "up", "trunk", "head")

# --------------------------------------------------------------------------- functions
def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


VIEW: Final = "view"      # contracted: outputs alias their inputs' producers
IGNORE: Final = "ignore"  # no tensor result worth recording (shape queries, metadata)

_VIEW_NAMES = _words("""
view view_as reshape reshape_as permute transpose transpose_ t flatten unflatten squeeze
unsqueeze squeeze_ unsqueeze_ expand expand_as broadcast_to contiguous chunk split
split_with_sizes tensor_split unbind __getitem__ narrow select movedim moveaxis swapaxes
swapdims to type type_as float half double bfloat16 int long bool clone detach detach_
repeat repeat_interleave tile pad as_strided cpu cuda requires_grad_ flip roll diagonal
unfold view_as_real view_as_complex pixel_shuffle pixel_unshuffle __iter__ real imag
""")

_IGNORE_NAMES = _words("""
size dim numel __get__ __len__ is_floating_point element_size __bool__ item tolist
__format__ __hash__ data_ptr stride get_device is_contiguous __repr__ __contains__
__index__ __int__ __float__ nelement ndimension is_complex __array__ numpy
new_zeros new_ones new_full new_empty
""")

_FUNCTION_OPS: dict[str, tuple[str, ...]] = {
    "attention": ("scaled_dot_product_attention", "multi_head_attention_forward"),
    "matmul": ("matmul", "__matmul__", "__rmatmul__", "bmm", "baddbmm", "mm", "addmm",
               "einsum", "outer", "bilinear"),
    "softmax": ("softmax", "log_softmax", "_softmax"),
    "add": ("add", "__add__", "__radd__", "__iadd__", "add_", "sub", "__sub__", "__rsub__",
            "__isub__", "sub_", "rsub"),
    "mul": ("mul", "__mul__", "__rmul__", "__imul__", "mul_", "div", "__truediv__",
            "__rtruediv__", "__itruediv__", "div_", "true_divide", "addcmul"),
    "cat": ("cat", "concat", "concatenate", "stack", "hstack", "vstack"),
    "activation": ("silu", "gelu", "relu", "sigmoid", "tanh", "mish", "softplus",
                   "leaky_relu", "elu", "hardswish", "hardtanh", "relu6", "glu", "softsign",
                   "silu_", "relu_", "sigmoid_", "tanh_"),
    "norm": ("layer_norm", "group_norm", "rms_norm", "batch_norm", "instance_norm",
             "normalize"),
    "linear": ("linear",),
    "conv": ("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
             "conv_transpose3d"),
    "embedding": ("embedding",),
    "resample": ("interpolate", "upsample", "upsample_nearest", "upsample_bilinear",
                 "avg_pool1d", "avg_pool2d", "avg_pool3d", "max_pool1d", "max_pool2d",
                 "adaptive_avg_pool1d", "adaptive_avg_pool2d", "grid_sample"),
    "reduce": ("mean", "sum", "amax", "amin", "max", "min", "var", "std", "var_mean",
               "prod", "norm", "logsumexp", "cumsum", "argmax", "argmin"),
    "elementwise": ("exp", "log", "pow", "__pow__", "__rpow__", "sqrt", "rsqrt", "neg",
                    "__neg__", "abs", "sin", "cos", "clamp", "clamp_", "clip", "where",
                    "masked_fill", "masked_fill_", "lerp", "erf", "reciprocal", "square",
                    "__and__", "__or__", "__xor__", "__invert__", "eq", "ne", "gt", "lt",
                    "ge", "le", "__eq__", "__ne__", "__gt__", "__lt__", "__ge__", "__le__",
                    "logical_not", "logical_and", "logical_or", "floor", "ceil", "round",
                    "sign", "maximum", "minimum", "fill_", "zero_", "copy_", "__setitem__",
                    "__floordiv__", "__rfloordiv__", "__mod__", "exp_", "mul_scalar",
                    "nan_to_num", "polar", "complex", "tril", "triu", "cumprod"),
}
_OP_BY_NAME: dict[str, str] = {n: op for op, names in _FUNCTION_OPS.items() for n in names}
_KIND_CACHE: dict[Callable, tuple[str, str]] = {}


def function_name(func: Callable) -> str:
    """The short name of a torch function or Tensor method (``add``, ``__getitem__`` …)."""
    return getattr(func, "__name__", None) or type(func).__name__


def function_kind(func: Callable) -> tuple[str, str]:
    """``(kind, op_type)`` of a torch function: kind is ``view``, ``ignore`` or ``op``."""
    try:
        return _KIND_CACHE[func]
    except (KeyError, TypeError):
        pass
    name = function_name(func)
    if name in _VIEW_NAMES:
        kind = (VIEW, "")
    elif name in _IGNORE_NAMES:
        kind = (IGNORE, "")
    else:
        kind = ("op", _OP_BY_NAME.get(name, "other"))
    with contextlib.suppress(TypeError):  # unhashable callables are classified each time
        _KIND_CACHE[func] = kind
    return kind


# --------------------------------------------------------------------------- modules
_MODULE_OPS: tuple[tuple[tuple[type[nn.Module], ...], str], ...] = (
    ((nn.Linear,), "linear"),
    ((nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
      nn.ConvTranspose3d), "conv"),
    ((nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm2d,
      nn.RMSNorm), "norm"),
    ((nn.Embedding,), "embedding"),
    ((nn.SiLU, nn.GELU, nn.ReLU, nn.Sigmoid, nn.Tanh, nn.Mish, nn.LeakyReLU, nn.ELU,
      nn.Softplus, nn.Hardswish), "activation"),
    ((nn.Softmax,), "softmax"),
    ((nn.Upsample, nn.AvgPool1d, nn.AvgPool2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d),
     "resample"),
)
#: Leaf modules that only pass data through (contracted like views).
PASS_THROUGH: tuple[type[nn.Module], ...] = (nn.Identity, nn.Dropout, nn.Dropout1d,
                                             nn.Dropout2d, nn.Flatten, nn.Unflatten)
# diffusers leaf classes without a torch base class, matched by name to keep imports light.
_NAMED_MODULE_OPS: dict[str, str] = {
    "RMSNorm": "norm", "LayerNorm": "norm", "FP32LayerNorm": "norm", "AdaGroupNorm": "norm",
    "FP32SiLU": "activation", "GELU": "activation", "SiLU": "activation",
    "Timesteps": "sinusoidal", "GaussianFourierProjection": "sinusoidal",
    "SinusoidalPositionalEmbedding": "sinusoidal",
    "FluxPosEmbed": "rope", "HunyuanDiTRotaryPosEmbed": "rope",
}


def module_op_type(module: nn.Module) -> str:
    """The op type of a leaf-module call (``other`` when the class is unknown)."""
    for types, op in _MODULE_OPS:
        if isinstance(module, types):
            return op
    for cls in type(module).__mro__:
        if cls.__name__ in _NAMED_MODULE_OPS:
            return _NAMED_MODULE_OPS[cls.__name__]
        if "RotaryPosEmbed" in cls.__name__ or cls.__name__.endswith("PosEmbed"):
            return "rope"
    return "other"
