"""The result of quantizing one weight: integer codes, fp16 parameters and their bookkeeping.

A :class:`QuantizedWeight` is what the option cache stores and the packed export writes. Its
:attr:`~QuantizedWeight.nbytes` is the exact storage of the *packed* artefact: ``ceil(n·b/8)``
bytes of codes plus 2 bytes for every fp16 scale, zero point or codebook entry. Its
:meth:`~QuantizedWeight.dequantize` is the fake-quantized weight the evaluator swaps in, computed
from exactly those stored values, so a reloaded export reproduces it bit for bit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from qua2.errors import Qua2Error
from qua2.quant.packing import pack_codes, packed_nbytes, unpack_codes
from qua2.specs import QuantOption

#: Version of the tensor/metadata layout written by :meth:`QuantizedWeight.to_tensors`.
QWEIGHT_FORMAT_VERSION = 1
_DTYPES = {str(d): d for d in (torch.float32, torch.float16, torch.bfloat16, torch.float64)}


def parse_dtype(name: str) -> torch.dtype:
    """``"torch.float32"`` → ``torch.float32`` (``str(dtype)`` inverted) for weight dtypes."""
    if name not in _DTYPES:
        raise Qua2Error(f"unsupported weight dtype {name!r} in a stored quantized weight.")
    return _DTYPES[name]


@dataclass(frozen=True)
class QuantizedWeight:
    """One weight quantized by one method at one bit-width.

    ``codes`` is ``[rows, cols]`` uint8 (one code per weight, unpacked; rows = output
    channels), ``params`` the method's fp16 tensors (``scale``, ``zero``, ``codebook`` …).
    ``error`` is the relative squared error ``‖W − Ŵ‖² / ‖W‖²``; ``mse`` the mean squared
    error.
    """

    method: str
    bits: int
    shape: tuple[int, ...]
    dtype: torch.dtype
    codes: Tensor
    params: Mapping[str, Tensor]
    error: float
    mse: float
    group_size: int | None = None
    extra: Mapping[str, float] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"QuantizedWeight({self.option.key}, shape={self.shape}, nbytes={self.nbytes}, "
            f"error={self.error:.3g})"
        )

    @property
    def option(self) -> QuantOption:
        return QuantOption(self.method, self.bits, self.group_size)

    @property
    def raw(self) -> bool:
        """Whether ``codes`` are stored bytes (GGUF blocks) rather than one code per weight."""
        from qua2.quant.methods import get_method  # methods import this module

        return get_method(self.method).raw

    @property
    def numel(self) -> int:
        return math.prod(self.shape) if self.raw else self.codes.numel()

    @property
    def param_nbytes(self) -> int:
        """Bytes of the fp16 parameters (scales, zero points, codebooks)."""
        return 2 * sum(p.numel() for p in self.params.values())

    @property
    def nbytes(self) -> int:
        """Exact packed storage: codes at ``bits`` bits plus fp16 parameters (raw: the bytes)."""
        if self.raw:
            return self.codes.numel() + self.param_nbytes
        return packed_nbytes(self.numel, self.bits) + self.param_nbytes

    @property
    def fp16_nbytes(self) -> int:
        """Storage of the same weight in fp16 (the reference of average bits)."""
        return 2 * self.numel

    @property
    def average_bits(self) -> float:
        """``16 · nbytes / fp16_nbytes`` (Qua²SeDiMo's definition, overheads included)."""
        return 16.0 * self.nbytes / self.fp16_nbytes

    def dequantize(
        self, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> Tensor:
        """The fake-quantized weight, shaped and typed like the original (or as asked)."""
        from qua2.quant.methods import get_method  # methods import this module

        spec = get_method(self.method)
        codes = self.codes if device is None else self.codes.to(device)
        params = {k: (v if device is None else v.to(device)) for k, v in self.params.items()}
        last = math.prod(self.shape) // self.codes.shape[0] if spec.raw else self.group_size
        rows = spec.dequantize(codes, params, self.bits, last)
        return rows.reshape(self.shape).to(dtype or self.dtype)

    # ----------------------------------------------------------------- (de)serialisation
    def meta(self) -> dict[str, Any]:
        """Everything but the tensors, JSON-ready (inverse: :meth:`from_parts`)."""
        return {
            "format_version": QWEIGHT_FORMAT_VERSION,
            "method": self.method,
            "bits": self.bits,
            "group_size": self.group_size,
            "shape": list(self.shape),
            "rows": self.codes.shape[0],
            "dtype": str(self.dtype),
            "params": sorted(self.params),
            "error": self.error,
            "mse": self.mse,
            "extra": dict(self.extra),
        }

    def packed_codes(self) -> Tensor:
        """The codes bit-packed into a flat uint8 CPU tensor (:mod:`qua2.quant.packing`)."""
        if self.raw:
            return self.codes.reshape(-1).cpu()
        return pack_codes(self.codes, self.bits).cpu()

    def fp16_params(self) -> dict[str, Tensor]:
        """The parameters as contiguous fp16 CPU tensors, by name."""
        return {k: v.to(torch.float16).contiguous().cpu() for k, v in sorted(self.params.items())}

    def to_tensors(self, prefix: str = "") -> tuple[dict[str, Tensor], dict[str, str]]:
        """Tensors (packed codes + fp16 params, on the CPU) and string metadata to store."""
        tensors = {f"{prefix}codes": self.packed_codes()}
        tensors.update({f"{prefix}{k}": v for k, v in self.fp16_params().items()})
        return tensors, {f"{prefix}qweight": json.dumps(self.meta(), sort_keys=True)}

    @classmethod
    def from_parts(cls, meta: Mapping[str, Any], packed: Tensor,
                   params: Mapping[str, Tensor]) -> QuantizedWeight:
        """Rebuild from :meth:`meta`, packed codes and fp16 params; bad input → Qua2Error."""
        try:
            if meta["format_version"] != QWEIGHT_FORMAT_VERSION:
                raise Qua2Error(
                    f"stored quantized weight has format version {meta['format_version']}, "
                    f"this qua2 reads {QWEIGHT_FORMAT_VERSION}; rebuild the cache or export."
                )
            shape = tuple(int(s) for s in meta["shape"])
            numel = math.prod(shape)
            from qua2.quant.methods import get_method

            raw = get_method(meta["method"]).raw
            codes = packed.reshape(-1) if raw else unpack_codes(packed, int(meta["bits"]), numel)
            missing = set(meta["params"]) - set(params)
            if missing:
                raise KeyError(f"parameters {sorted(missing)}")
            return cls(
                method=meta["method"], bits=int(meta["bits"]), shape=shape,
                dtype=parse_dtype(meta["dtype"]), codes=codes.reshape(int(meta["rows"]), -1),
                params={k: params[k] for k in meta["params"]}, error=float(meta["error"]),
                mse=float(meta["mse"]), group_size=meta["group_size"],
                extra=meta.get("extra", {}),
            )
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise Qua2Error(f"stored quantized weight is incomplete or corrupt ({exc}).") from None

    @classmethod
    def from_tensors(
        cls, tensors: Mapping[str, Tensor], metadata: Mapping[str, str], prefix: str = ""
    ) -> QuantizedWeight:
        """Inverse of :meth:`to_tensors`; raises :class:`Qua2Error` on anything inconsistent."""
        try:
            meta = json.loads(metadata[f"{prefix}qweight"])
            packed = tensors[f"{prefix}codes"]
        except (KeyError, ValueError) as exc:
            raise Qua2Error(f"stored quantized weight is incomplete or corrupt ({exc}).") from None
        params = {k[len(prefix):]: v for k, v in tensors.items()
                  if k.startswith(prefix) and k != f"{prefix}codes"}
        return cls.from_parts(meta, packed, params)
