"""Weight quantization methods and their registry.

Every method maps a weight (output channel first) and a bit-width 2–8 to integer codes plus fp16
parameters, and back. The names are the ``QuantOption.method`` strings of :mod:`qua2.specs`:

``uaq``       uniform affine asymmetric per output channel, clipping ratio searched per channel
              over {0, 0.1, …, 0.9} minimising the L_p error, p = 2.4 (Qua²SeDiMo, Mills et al.
              2025; the p = 2.4 L_p criterion of PTQ4DM, Shang et al. 2023).
``kmeans_c``  1-D k-means with 2^b centroids per output channel (Qua²SeDiMo's K-Means-C).
``kmeans_a``  one 1-D k-means with 2^b centroids over the whole layer (K-Means-A).
``group``     uniform asymmetric min-max per group of ``group_size`` consecutive input channels
              (Yang et al., "An Analysis on Quantizing Diffusion Transformers", 2406.11100).
``rtn``       symmetric per-channel min-max round-to-nearest (the plain baseline of PTQ4DM and
              MixDQ, Zhao et al. 2024).

For Conv weights ``[out, in, *kernel]`` the "input channels" of ``group`` are the flattened
``in·∏kernel`` reduction axis, i.e. the GEMM columns an im2col kernel would see.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from qua2.errors import Qua2Error
from qua2.quant.kmeans import assign_codes, kmeans_1d_centroids, sort_rows
from qua2.quant.primitives import (
    affine_codes,
    affine_dequant,
    affine_params,
    as_rows,
    fp16_round,
    fp16_scale,
    pad_columns,
    squared_error,
)
from qua2.quant.qweight import QuantizedWeight
from qua2.specs import GROUPED_METHODS, MAX_BITS, MIN_BITS, QuantOption

Params = dict[str, Tensor]
#: ``quantize(rows [out, cols] float32, bits, shared, **options) -> (codes, params)``.
QuantizeFn = Callable[..., tuple[Tensor, Params]]
#: ``dequantize(codes, params, bits, group_size) -> rows float32``.
DequantizeFn = Callable[[Tensor, Mapping[str, Tensor], int, "int | None"], Tensor]

#: Qua²SeDiMo's clipping ratios for UAQ: the range (min, max) is shrunk by (1 − r).
UAQ_CLIP_RATIOS: tuple[float, ...] = tuple(i / 10 for i in range(10))
UAQ_P = 2.4


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: how to quantize and dequantize, and which options it accepts."""

    name: str
    quantize: QuantizeFn
    dequantize: DequantizeFn
    defaults: Mapping[str, Any]
    summary: str
    required: tuple[str, ...] = ()
    #: Rows (output channels) are quantized independently, and every parameter tensor has
    #: one leading entry per row: rows of several layers can then be quantized in one batch.
    rowwise: bool = True
    #: ``codes`` are the stored bytes themselves (``uint8 [rows, bytes per row]``, e.g. GGUF
    #: blocks), not one code per weight: storage is their size, with nothing packed or added,
    #: and ``dequantize`` receives the row length (weights per row) as its last argument.
    raw: bool = False

    def resolve(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Options merged over the defaults; unknown or missing ones raise :class:`Qua2Error`."""
        allowed = set(self.defaults) | set(self.required)
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise Qua2Error(
                f"method {self.name!r} takes no option(s) {unknown}; it accepts "
                f"{sorted(allowed) or 'none'}."
            )
        missing = [k for k in self.required if options.get(k) is None]
        if missing:
            raise Qua2Error(f"method {self.name!r} needs option(s) {missing}, e.g. group_size=64.")
        return {**self.defaults, **options}


METHODS: dict[str, MethodSpec] = {}


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add (or replace) a method in the registry; its name is what ``QuantOption.method`` uses.

    The registry is the source of truth for methods: graph features (one-hot order), colours
    and the data layer's index of grouped methods (:data:`qua2.specs.GROUPED_METHODS`, which
    lets ``QuantOption`` check ``group_size`` without importing torch) are derived from it.
    """
    METHODS[spec.name] = spec
    if "group_size" in spec.required:
        GROUPED_METHODS.add(spec.name)
    else:
        GROUPED_METHODS.discard(spec.name)
    return spec


def get_method(name: str) -> MethodSpec:
    """The registered method called ``name``; an unknown name raises :class:`Qua2Error`."""
    if name not in METHODS:
        raise Qua2Error(
            f"unknown quantization method {name!r}; choose one of {', '.join(sorted(METHODS))}."
        )
    return METHODS[name]


# --------------------------------------------------------------------------------- uaq
def _uaq_quantize(rows: Tensor, bits: int, shared: dict, clip_ratios: Iterable[float],
                  p: float) -> tuple[Tensor, Params]:
    ratios = tuple(float(r) for r in clip_ratios)
    if not ratios or any(not 0.0 <= r < 1.0 for r in ratios) or p <= 0:
        raise Qua2Error("uaq needs clip ratios in [0, 1) and a positive p, e.g. p=2.4.")
    lo, hi = rows.amin(dim=1), rows.amax(dim=1)
    best_err = torch.full_like(lo, float("inf"))
    best_scale, best_zero = torch.ones_like(lo), torch.zeros_like(lo)
    levels = 2**bits - 1
    buf = torch.empty_like(rows)  # one work buffer for all candidates: no per-ratio allocation
    for ratio in ratios:
        # Clipping ratio r keeps (1 − r) of the channel's (min, max) range.
        scale, zero = affine_params(lo * (1 - ratio), hi * (1 - ratio), bits)
        s, z = scale[:, None], zero[:, None]
        torch.div(rows, s, out=buf)
        buf.round_().add_(z).clamp_(0, levels).sub_(z).mul_(s).sub_(rows).abs_()
        # |e|^p as exp(p·log|e|): twice as fast as pow on the CPU, and exp(−inf) = 0 for e = 0.
        err = (buf.square_() if p == 2.0 else buf.log_().mul_(p).exp_()).sum(dim=1)
        better = err < best_err  # strict: ties keep the smaller clipping ratio
        best_err = torch.where(better, err, best_err)
        best_scale = torch.where(better, scale, best_scale)
        best_zero = torch.where(better, zero, best_zero)
    codes = affine_codes(rows, best_scale[:, None], best_zero[:, None], bits)
    return codes, {"scale": best_scale.half(), "zero": best_zero.half()}


def _uaq_dequantize(codes: Tensor, params: Mapping[str, Tensor], bits: int,
                    group_size: int | None) -> Tensor:
    return affine_dequant(codes, params["scale"][:, None], params["zero"][:, None])


# --------------------------------------------------------------------------------- rtn
def _rtn_quantize(rows: Tensor, bits: int, shared: dict) -> tuple[Tensor, Params]:
    qmax = 2 ** (bits - 1) - 1
    scale = fp16_scale(rows.abs().amax(dim=1), qmax)
    codes = torch.round(rows / scale[:, None]).clamp_(-qmax - 1, qmax).add_(2 ** (bits - 1))
    return codes, {"scale": scale.half()}


def _rtn_dequantize(codes: Tensor, params: Mapping[str, Tensor], bits: int,
                    group_size: int | None) -> Tensor:
    # Codes are stored unsigned with an implicit zero point of 2^(b−1).
    offset = torch.tensor(float(2 ** (bits - 1)), device=codes.device)
    return affine_dequant(codes, params["scale"][:, None], offset)


# --------------------------------------------------------------------------------- group
def _group_quantize(rows: Tensor, bits: int, shared: dict,
                    group_size: int) -> tuple[Tensor, Params]:
    if not isinstance(group_size, int) or group_size < 1:
        raise Qua2Error(f"group needs a positive integer group_size, got {group_size!r}.")
    out, cols = rows.shape
    groups = pad_columns(rows, group_size).view(out, -1, group_size)
    scale, zero = affine_params(groups.amin(dim=2), groups.amax(dim=2), bits)
    codes = affine_codes(groups, scale[..., None], zero[..., None], bits)
    return codes.view(out, -1)[:, :cols], {"scale": scale.half(), "zero": zero.half()}


def _group_dequantize(codes: Tensor, params: Mapping[str, Tensor], bits: int,
                      group_size: int | None) -> Tensor:
    if group_size is None:
        raise Qua2Error("a group-quantized weight needs its group_size to be dequantized.")
    out, cols = codes.shape
    groups = pad_columns(codes, group_size).view(out, -1, group_size)
    rows = affine_dequant(groups, params["scale"][..., None], params["zero"][..., None])
    return rows.view(out, -1)[:, :cols]


# --------------------------------------------------------------------------------- k-means
def _sorted(shared: dict, key: str, rows: Tensor) -> Tensor:
    """Sorted rows memoised in ``shared``, so both bit-widths of a layer sort only once."""
    if key not in shared:
        shared[key] = sort_rows(rows)
    return shared[key]


def _kmeans(x: Tensor, sorted_x: Tensor, bits: int) -> tuple[Tensor, Tensor]:
    centroids = fp16_round(kmeans_1d_centroids(sorted_x, 2**bits))  # rounding keeps the order
    return assign_codes(x, centroids), centroids


def _kmeans_c_quantize(rows: Tensor, bits: int, shared: dict) -> tuple[Tensor, Params]:
    codes, centroids = _kmeans(rows, _sorted(shared, "rows", rows), bits)
    return codes, {"codebook": centroids.half()}


def _kmeans_c_dequantize(codes: Tensor, params: Mapping[str, Tensor], bits: int,
                         group_size: int | None) -> Tensor:
    return params["codebook"].float().gather(1, codes.long())


def _kmeans_a_quantize(rows: Tensor, bits: int, shared: dict) -> tuple[Tensor, Params]:
    flat = rows.reshape(1, -1)
    codes, centroids = _kmeans(flat, _sorted(shared, "layer", flat), bits)
    return codes.view(rows.shape), {"codebook": centroids.reshape(-1).half()}


def _kmeans_a_dequantize(codes: Tensor, params: Mapping[str, Tensor], bits: int,
                         group_size: int | None) -> Tensor:
    return params["codebook"].float()[codes.long()]


for _spec in (
    MethodSpec("uaq", _uaq_quantize, _uaq_dequantize, {"clip_ratios": UAQ_CLIP_RATIOS, "p": UAQ_P},
               "uniform asymmetric per output channel, L_2.4-searched clipping"),
    MethodSpec("kmeans_c", _kmeans_c_quantize, _kmeans_c_dequantize, {},
               "1-D k-means per output channel"),
    MethodSpec("kmeans_a", _kmeans_a_quantize, _kmeans_a_dequantize, {},
               "1-D k-means over the whole layer", rowwise=False),
    MethodSpec("group", _group_quantize, _group_dequantize, {}, "uniform asymmetric per group "
               "of input channels", required=("group_size",)),
    MethodSpec("rtn", _rtn_quantize, _rtn_dequantize, {}, "symmetric per-channel round-to-"
               "nearest"),
):
    register_method(_spec)


# --------------------------------------------------------------------------------- entry points
def _check_bits(bits: Any) -> None:
    if not isinstance(bits, int) or isinstance(bits, bool) or not MIN_BITS <= bits <= MAX_BITS:
        raise Qua2Error(f"bits must be an integer from {MIN_BITS} to {MAX_BITS}, got {bits!r}.")


def resolve_option(option: QuantOption | str, **options: Any) -> tuple[MethodSpec, dict]:
    """The method of ``option`` (or of its key, e.g. ``"uaq-w4"``) and its checked options."""
    if isinstance(option, str):
        option = QuantOption.parse(option)
    spec = get_method(option.method)
    _check_bits(option.bits)
    extra = {"group_size": option.group_size} if option.group_size is not None else {}
    return spec, spec.resolve({**extra, **options})


def finish(weight: Tensor, rows: Tensor, method: str, bits: int, codes: Tensor,
           params: Params, group_size: int | None) -> QuantizedWeight:
    """Wrap codes and parameters of ``weight`` (as ``rows``) with their exact error."""
    spec = get_method(method)
    deq = spec.dequantize(codes, params, bits, rows.shape[1] if spec.raw else group_size)
    mse, relative = squared_error(rows, deq)
    return QuantizedWeight(
        method=method, bits=bits, shape=tuple(weight.shape), dtype=weight.dtype,
        codes=codes.to(torch.uint8), params=params, error=relative, mse=mse,
        group_size=group_size,
    )


def _quantize(weight: Tensor, rows: Tensor, method: str, bits: int, shared: dict,
              options: Mapping[str, Any]) -> QuantizedWeight:
    spec = get_method(method)
    _check_bits(bits)
    opts = spec.resolve(options)
    shared.setdefault("weight_shape", tuple(weight.shape))  # one layer's: methods may read it
    codes, params = spec.quantize(rows, bits, shared, **opts)
    return finish(weight, rows, method, bits, codes, params, opts.get("group_size"))


@torch.no_grad()
def quantize_weight(weight: Tensor, method: str, bits: int, **options: Any) -> QuantizedWeight:
    """Quantize one weight tensor (output channel first) with a registered method.

    ``options`` are method specific: ``group_size`` for ``group`` (required), ``clip_ratios``
    and ``p`` for ``uaq``. Runs on the weight's device.
    """
    return _quantize(weight, as_rows(weight), method, bits, {}, options)


def quantize_options(weight: Tensor, options: Iterable[QuantOption]) -> dict[QuantOption,
                                                                            QuantizedWeight]:
    """Quantize one weight with several options, sharing work between them (e.g. the sort)."""
    from qua2.quant.batch import quantize_layers

    return quantize_layers({"weight": weight}, list(options))["weight"]


# GGUF block types (qua2/quant/gguf_methods.py) register themselves as further methods.
from qua2.quant.gguf_methods import register_gguf_methods  # noqa: E402  (needs the above)

register_gguf_methods()
