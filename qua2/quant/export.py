"""Packed export of a quantized config: a model that is really smaller on disk.

Two files in one directory (format version 1)::

    qua2_quant.json          what was done: format and qua2 versions, model id and hash,
                             search space, config, average bits, sizes, the weights file's
                             hash, and per quantized layer its option, shape, error, method
                             metadata and where its codes and parameters lie in the blobs
    qua2_quant.safetensors   "qua2::codes"   uint8: every quantized layer's b-bit codes,
                                             bit-packed (:mod:`qua2.quant.packing`), layer
                                             after layer (each starts on a byte)
                             "qua2::params"  float16: every layer's scales / zero points /
                                             codebooks, flattened, layer after layer
                             "qua2::rest::<dtype>"  every other parameter and buffer (as is or
                                             cast to ``unquantized_dtype``), flattened and
                                             concatenated per dtype; the manifest lists each
                                             one's name, dtype, offset and shape

Blobs instead of one safetensors entry per tensor keep the header to a few entries, so even a
1 M-parameter model meets (average bits / 16) × FP16 size + 2 %.
:func:`load_packed` fills a fresh instance of the same architecture layer by layer (lazy
slices of the blobs; one layer's codes are unpacked and dequantized at a time; a module built
on the ``meta`` device gets real tensors assigned), reproducing the fake-quantized weights bit
for bit. Only JSON and safetensors are read: no pickle, no ``torch.load``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import Tensor, nn

from qua2.errors import Qua2Error
from qua2.io import atomic_write_json, file_digest, write_safetensors
from qua2.quant.apply import ConfigLike, validate_config
from qua2.quant.cache import OptionCache
from qua2.quant.cache_build import layer_weight
from qua2.quant.qweight import QuantizedWeight
from qua2.quant.store import module_digest, tensor_digest
from qua2.specs import QuantConfig
from qua2.version import __version__

EXPORT_FORMAT = "qua2-packed"
EXPORT_FORMAT_VERSION = 1
CONFIG_NAME = "qua2_quant.json"
WEIGHTS_NAME = "qua2_quant.safetensors"
CODES_BLOB = "qua2::codes"
PARAMS_BLOB = "qua2::params"
REST_BLOB = "qua2::rest::"


@dataclass(frozen=True)
class ExportSummary:
    """Where the export went and how big it is against the FP16 checkpoint."""

    config_path: Path
    weights_path: Path
    file_bytes: int  # size of the safetensors file
    payload_bytes: int  # its tensor bytes (file minus header)
    fp16_bytes: int  # the same state_dict stored in fp16 (integer tensors as they are)
    layers_bits: float  # average bits over the quantized layers
    model_bits: float  # 16 × packed model bytes / fp16_bytes

    @property
    def size_bound(self) -> float:
        """The target: (average bits / 16) × FP16 size + 2 %."""
        return self.model_bits / 16 * self.fp16_bytes * 1.02


def _fp16_size(t: Tensor) -> int:
    return t.numel() * (2 if t.is_floating_point() else t.element_size())


def export_packed(
    module: nn.Module,
    config: ConfigLike,
    cache: OptionCache,
    directory: str | Path,
    *,
    model_id: str,
    unquantized_dtype: torch.dtype | None = None,
) -> ExportSummary:
    """Write ``config`` applied to ``module`` as packed low-bit safetensors plus JSON.

    The codes come from ``cache`` (not re-quantized); the module's current FP weights must be
    the ones the cache was built from. ``unquantized_dtype`` (e.g. ``torch.float16``) casts
    the floating tensors that stay unquantized; by default they keep their dtype, so a reload
    reproduces the fake-quantized model exactly.
    """
    config = validate_config(config, cache)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    codes, params, layers = _pack_layers(module, config, cache)
    quantized_bytes = sum(entry["nbytes"] for entry in layers.values())
    layers_fp16 = sum(2 * cache.numel(layer) for layer in layers)
    unquantized, fp16_bytes = _unquantized(module, {f"{la}.weight" for la in layers},
                                           unquantized_dtype)
    fp16_bytes += layers_fp16
    tensors, rest = _blobs(unquantized)
    if codes:
        tensors[CODES_BLOB] = torch.cat(codes)
        tensors[PARAMS_BLOB] = torch.cat(params) if params else torch.zeros(0, dtype=torch.half)
    weights_path = directory / WEIGHTS_NAME
    write_safetensors(weights_path, tensors, {"format": EXPORT_FORMAT, "format_version": "1"})
    payload = sum(t.numel() * t.element_size() for t in tensors.values())
    model_bytes = quantized_bytes + sum(_fp16_size(t) for t in unquantized.values())
    summary = ExportSummary(
        config_path=directory / CONFIG_NAME, weights_path=weights_path,
        file_bytes=weights_path.stat().st_size, payload_bytes=payload, fp16_bytes=fp16_bytes,
        layers_bits=16.0 * quantized_bytes / layers_fp16 if layers_fp16 else 16.0,
        model_bits=16.0 * model_bytes / fp16_bytes if fp16_bytes else 16.0,
    )
    atomic_write_json(summary.config_path, _manifest(module, config, cache, model_id, layers,
                                                      rest, summary))
    return summary


def _blobs(tensors: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Concatenate tensors per dtype: ({blob name: flat tensor}, {name: where it lies})."""
    parts: dict[str, list[Tensor]] = {}
    sizes: dict[str, int] = {}
    where: dict[str, Any] = {}
    for name, t in tensors.items():
        blob = f"{REST_BLOB}{str(t.dtype).removeprefix('torch.')}"
        offset = sizes.get(blob, 0)
        parts.setdefault(blob, []).append(t.reshape(-1))
        sizes[blob] = offset + t.numel()
        where[name] = {"blob": blob, "offset": offset, "shape": list(t.shape)}
    return {blob: torch.cat(flat) for blob, flat in parts.items()}, where


def _pack_layers(module: nn.Module, config: QuantConfig, cache: OptionCache
                 ) -> tuple[list[Tensor], list[Tensor], dict[str, Any]]:
    """Packed codes and fp16 params of every configured layer, and their manifest entries."""
    codes: list[Tensor] = []
    params: list[Tensor] = []
    layers: dict[str, Any] = {}
    code_at = param_at = 0
    for layer, option in config.items():
        if tensor_digest(layer_weight(module, layer)) != cache.weight_hash(layer):
            raise Qua2Error(
                f"layer {layer!r} of the model differs from the weights the option cache was "
                "built from; rebuild the cache (OptionCache.build) or export the right model."
            )
        qweight = cache.quantized(layer, option)
        packed = qweight.packed_codes()
        where = {}
        for name, value in qweight.fp16_params().items():
            where[name] = [param_at, list(value.shape)]
            params.append(value.reshape(-1))
            param_at += value.numel()
        codes.append(packed)
        layers[layer] = {"option": option.key, "nbytes": qweight.nbytes,
                         "shape": list(qweight.shape), "error": qweight.error,
                         "qweight": qweight.meta(), "codes": [code_at, packed.numel()],
                         "params": where}
        code_at += packed.numel()
    return codes, params, layers


def _unquantized(module: nn.Module, skip: set[str], dtype: torch.dtype | None
                 ) -> tuple[dict[str, Tensor], int]:
    """Every tensor not in ``skip`` (on the CPU, maybe cast) and their total FP16 size."""
    out: dict[str, Tensor] = {}
    fp16_bytes = 0
    for name, tensor in named_tensors(module).items():
        if name in skip:
            continue
        t = tensor.detach()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        out[name] = t.cpu()
        fp16_bytes += _fp16_size(tensor)
    return out, fp16_bytes


def named_tensors(module: nn.Module) -> dict[str, Tensor]:
    """Every parameter and buffer by qualified name, non-persistent buffers included (they
    are needed to fill a module built on the ``meta`` device)."""
    return {**module.state_dict(keep_vars=True), **dict(module.named_buffers())}


def _manifest(module: nn.Module, config: QuantConfig, cache: OptionCache, model_id: str,
              layers: dict[str, Any], unquantized: dict[str, Any], summary: ExportSummary
              ) -> dict:
    return {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "qua2_version": __version__,
        "model": {"id": model_id, "hash": module_digest(module)},
        "search_space": cache.space.to_dict(),
        "config": config.to_dict(),
        "average_bits": {"quantized_layers": summary.layers_bits,
                         "whole_model": summary.model_bits},
        "sizes": {"file_bytes": summary.file_bytes, "fp16_bytes": summary.fp16_bytes},
        "weights": {"file": WEIGHTS_NAME, "blake2b": file_digest(summary.weights_path)},
        "packing": "b-bit codes, code t at bits [t*b, (t+1)*b) of the stream, LSB first",
        "layers": layers,
        "unquantized": unquantized,
    }


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The export's JSON, checked for format and version."""
    path = Path(directory) / CONFIG_NAME
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise Qua2Error(f"cannot read the packed export {path} ({exc}).") from None
    if manifest.get("format") != EXPORT_FORMAT:
        raise Qua2Error(f"{path} is not a qua2 packed export.")
    if manifest.get("format_version") != EXPORT_FORMAT_VERSION:
        raise Qua2Error(
            f"{path} has export format version {manifest.get('format_version')}, this qua2 "
            f"reads {EXPORT_FORMAT_VERSION}; load it with a matching qua2 release."
        )
    return manifest


def load_packed(module: nn.Module, directory: str | Path, *, check_hash: bool = True
                ) -> dict[str, Any]:
    """Load a packed export into ``module`` (same architecture), layer by layer.

    Returns the manifest. Every parameter and buffer of the module must be in the export.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    path = directory / manifest["weights"]["file"]
    if not path.is_file():
        raise Qua2Error(f"the packed export lacks its weights file {path}.")
    if check_hash and file_digest(path) != manifest["weights"]["blake2b"]:
        raise Qua2Error(f"{path} does not match its manifest (corrupt or replaced file).")
    state = named_tensors(module)
    expected = {f"{layer}.weight" for layer in manifest["layers"]} | set(manifest["unquantized"])
    missing = sorted(set(state) - expected)
    extra = sorted(expected - set(state))
    if missing or extra:
        what = f"lacks {missing[:3]}" if missing else f"has unknown tensors {extra[:3]}"
        raise Qua2Error(f"the packed export does not fit this model: it {what}.")
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        blobs = {entry["blob"] for entry in manifest["unquantized"].values()}
        rest = {blob: handle.get_slice(blob) for blob in blobs}
        for name, entry in manifest["unquantized"].items():
            offset, shape = entry["offset"], entry["shape"]
            value = rest[entry["blob"]][offset : offset + math.prod(shape)].reshape(shape)
            _assign(module, name, state[name], value)
        if manifest["layers"]:
            codes, params = handle.get_slice(CODES_BLOB), handle.get_slice(PARAMS_BLOB)
        for layer, entry in manifest["layers"].items():
            start, length = entry["codes"]
            values = {name: params[offset : offset + math.prod(shape)].reshape(shape)
                      for name, (offset, shape) in entry["params"].items()}
            qweight = QuantizedWeight.from_parts(entry["qweight"], codes[start : start + length],
                                                 values)
            target = state[f"{layer}.weight"]
            device = None if target.is_meta else target.device
            _assign(module, f"{layer}.weight", target,
                    qweight.dequantize(dtype=target.dtype, device=device))
    return manifest


def _assign(module: nn.Module, name: str, target: Tensor, value: Tensor) -> None:
    """Copy ``value`` into the parameter/buffer ``name``; on ``meta`` replace it instead."""
    if tuple(target.shape) != tuple(value.shape):
        raise Qua2Error(f"tensor {name!r} has shape {tuple(value.shape)} in the export but "
                        f"{tuple(target.shape)} in the model.")
    if not target.is_meta:
        with torch.no_grad():
            target.copy_(value)
        return
    owner_name, _, attr = name.rpartition(".")
    owner = module.get_submodule(owner_name) if owner_name else module
    value = value.to(target.dtype)
    if isinstance(target, nn.Parameter):
        owner.register_parameter(attr, nn.Parameter(value, requires_grad=target.requires_grad))
    else:
        owner.register_buffer(attr, value)


__all__ = ["ExportSummary", "export_packed", "load_packed", "read_manifest"]
