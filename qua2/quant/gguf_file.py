"""A quantized config as one GGUF file that diffusers loads natively and keeps quantized.

:func:`write_gguf` writes every parameter and buffer of the denoiser under its diffusers name
(so ``from_single_file`` needs no key conversion): layers the config puts on a GGUF option
carry the option cache's block bytes unchanged in their real type (after llama.cpp's
per-tensor fallback, :mod:`qua2.quant.gguf_methods`); every other tensor is stored as it is
(F32, F16 or BF16). Metadata records the qua2 version, the study, the config and each
quantized tensor's type. The file is written with the ``gguf`` package's writer.

:func:`load_gguf` is qua2's own reader, for any model (the digits models included): it fills a
module with the dequantized weights, which equal the fake-quantized weights a study measured
bit for bit (the same decoder on the same bytes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from qua2.errors import Qua2Error
from qua2.quant.apply import validate_config
from qua2.quant.cache import OptionCache
from qua2.quant.gguf import dequantize_gguf
from qua2.quant.gguf_methods import F16, stored_type
from qua2.quant.methods import get_method
from qua2.specs import QuantConfig
from qua2.version import __version__

#: Tensor dtypes stored as they are (GGUF F32, F16, BF16); others are written as F32.
_PLAIN = (torch.float32, torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class GGUFSummary:
    """What a written GGUF file holds."""

    path: Path
    file_bytes: int
    fp16_bytes: int  # the same parameters in FP16
    tensor_types: dict[str, str]  # quantized layer weight → GGUF type


def write_gguf(module: nn.Module, config: QuantConfig, cache: OptionCache, path: str | Path,
               metadata: dict[str, str] | None = None, arch: str = "qua2") -> GGUFSummary:
    """Write ``module`` with ``config``'s GGUF layers as one ``.gguf`` file (see module doc)."""
    import gguf

    config = validate_config(config, cache)
    quantized = {f"{layer}.weight": (layer, option) for layer, option in config.items()}
    not_gguf = sorted({o.key for _, o in config.items() if not get_method(o.method).raw})
    if not_gguf:
        raise Qua2Error(f"options {', '.join(not_gguf)} are not GGUF types; export this config "
                        "with the packed format (without --format gguf).")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_string("qua2.version", __version__)
    for key, value in (metadata or {}).items():
        writer.add_string(f"qua2.{key}", str(value))
    types: dict[str, str] = {}
    fp16_bytes = 0
    for name, tensor in _named_tensors(module).items():
        fp16_bytes += 2 * tensor.numel()
        if name in quantized:
            layer, option = quantized[name]
            qweight = cache.quantized(layer, option)
            real = stored_type(option.method, qweight.numel // qweight.codes.shape[0],
                               qweight.codes.shape[1])
            types[name] = real
            if real == F16:
                writer.add_tensor(name, tensor.detach().cpu().to(torch.float16).numpy())
                continue
            raw = qweight.codes.cpu().numpy()
            writer.add_tensor(name, raw, raw_dtype=gguf.GGMLQuantizationType[real.upper()])
        else:
            writer.add_tensor(name, _plain(tensor))
    writer.add_string("qua2.tensor_types", json.dumps(types, sort_keys=True))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return GGUFSummary(path, path.stat().st_size, fp16_bytes, types)


def _named_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    named: dict[str, torch.Tensor] = dict(module.named_parameters())
    named.update({k: v for k, v in module.named_buffers() if k not in named})
    return named


def _plain(tensor: torch.Tensor) -> np.ndarray:
    value = tensor.detach().cpu()
    if value.dtype not in _PLAIN:
        value = value.float()
    if value.dtype == torch.bfloat16:  # numpy has no bfloat16: write the bits, GGUF reads BF16
        return value.view(torch.int16).numpy()
    return value.numpy()


def read_gguf_metadata(path: str | Path) -> dict[str, str]:
    """The ``qua2.*`` string metadata of a GGUF file qua2 wrote."""
    reader = _reader(path)
    out = {}
    for key, field in reader.fields.items():
        if key.startswith("qua2."):
            out[key[len("qua2."):]] = bytes(field.parts[field.data[0]]).decode("utf-8")
    return out


def _reader(path: str | Path) -> Any:
    import gguf

    try:
        return gguf.GGUFReader(str(path))
    except (OSError, ValueError, IndexError) as error:
        raise Qua2Error(f"{path} is not a readable GGUF file ({error}); export it again.") \
            from None


def load_gguf(module: nn.Module, path: str | Path) -> dict[str, str]:
    """Fill ``module`` from a GGUF file qua2 wrote; returns the quantized tensors' types."""
    reader = _reader(path)
    targets = _named_tensors(module)
    types: dict[str, str] = {}
    for tensor in reader.tensors:
        if tensor.name not in targets:
            raise Qua2Error(f"{path} holds {tensor.name!r}, which this model does not have; "
                            "load it into the architecture it was exported from.")
        target = targets[tensor.name]
        kind = tensor.tensor_type.name.lower()
        data = torch.from_numpy(np.array(tensor.data))
        if kind in ("f32", "f16"):
            value = data.reshape(target.shape)
        elif kind == "bf16":
            value = data.view(torch.bfloat16).reshape(target.shape)
        else:
            types[tensor.name] = kind
            rows = target.shape[0]
            value = dequantize_gguf(data.reshape(rows, -1), kind, tuple(target.shape))
        with torch.no_grad():
            target.copy_(value.to(target.dtype).reshape(target.shape))
    return types
