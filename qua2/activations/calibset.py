"""The :class:`CalibrationSet` container: denoiser inputs plus timesteps and conditions, on disk.

A set stores exactly what the denoiser receives (``adapter.denoise(x, t, cond)``), so range
calibration replays it without re-sampling. Conditions are the adapter's encoded batch (a
possibly nested dict): batch-first tensors are sliced per sample, other tensors are shared
and plain values (``None``, numbers, strings) travel in the safetensors header as JSON.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qua2.errors import Qua2Error

CALIBSET_FORMAT = "qua2-calibration-set"
CALIBSET_VERSION = "1"


def content_digest(payload: Any) -> str:
    """16 hex digits of SHA-256 over a tensor's bytes or a JSON-able payload."""
    digest = hashlib.sha256()
    if torch.is_tensor(payload):
        digest.update(str((tuple(payload.shape), str(payload.dtype))).encode())
        digest.update(payload.detach().cpu().contiguous().numpy().tobytes())
    else:
        digest.update(json.dumps(payload, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def module_fingerprint(module: nn.Module) -> str:
    """A cheap content fingerprint of the weights (names, shapes, float64 sums)."""
    rows = []
    for name, param in module.state_dict().items():
        value = param.detach()
        stats = (float(value.double().sum()), float(value.double().abs().sum())) \
            if value.is_floating_point() else (float(value.sum()),)
        rows.append((name, tuple(value.shape), stats))
    return content_digest(rows)


def _flatten(cond: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in cond.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten(value, path + "/")
        else:
            yield path, value


def _unflatten(items: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, value in items.items():
        node = out
        *parents, leaf = path.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _slice(cond: Any, index: torch.Tensor, n: int) -> Any:
    if isinstance(cond, Mapping):
        return {k: _slice(v, index, n) for k, v in cond.items()}
    if torch.is_tensor(cond) and cond.ndim and cond.shape[0] == n:
        return cond[index.to(cond.device)]
    return cond


@dataclass
class CalibrationSet:
    """``N`` denoiser inputs ``x_t``, their training timesteps ``t`` (0 = clean), conditions."""

    inputs: torch.Tensor
    timesteps: torch.Tensor
    cond: dict[str, Any]
    method: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.inputs) == 0:
            raise Qua2Error("the calibration set is empty; draw at least one sample.")
        if len(self.timesteps) != len(self.inputs):
            raise Qua2Error(f"a calibration set has {len(self.inputs)} inputs but "
                            f"{len(self.timesteps)} timesteps.")

    def __len__(self) -> int:
        return len(self.inputs)

    def batches(self, batch_size: int = 64,
                device: torch.device | str = "cpu") -> Iterator[tuple[torch.Tensor,
                                                                     torch.Tensor, Any]]:
        """``(x, t, cond)`` batches in which every sample shares one timestep ``t`` (0-dim).

        Denoiser calls take one timestep per batch, and per-timestep-group ranges need it.
        """
        for value in self.timesteps.unique(sorted=True):
            index = (self.timesteps == value).nonzero().flatten()
            for start in range(0, len(index), batch_size):
                part = index[start:start + batch_size]
                cond = _slice(self.cond, part, len(self))
                yield self.inputs[part].to(device), value.to(device), _to(cond, device)

    # ------------------------------------------------------------------ storage
    def save(self, path: str | Path) -> Path:
        """Write ``path`` (safetensors) atomically."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"inputs": self.inputs.contiguous().cpu(),
                   "timesteps": self.timesteps.contiguous().cpu()}
        plain = {}
        for key, value in _flatten(self.cond):
            if torch.is_tensor(value):
                tensors[f"cond/{key}"] = value.contiguous().cpu()
            else:
                plain[key] = value
        header = {"format": CALIBSET_FORMAT, "version": CALIBSET_VERSION, "method": self.method,
                  "meta": json.dumps(self.meta, sort_keys=True, default=str),
                  "plain_cond": json.dumps(plain, default=str)}
        tmp = path.with_suffix(path.suffix + ".tmp")
        save_file(tensors, tmp, metadata=header)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> CalibrationSet:
        from safetensors import safe_open

        path = Path(path)
        try:
            with safe_open(str(path), framework="pt") as handle:
                header = handle.metadata() or {}
                tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
        except Exception as exc:  # a missing or truncated file raises several types
            raise Qua2Error(f"calibration set {path} is unreadable ({exc}); delete it so it is "
                            "drawn again.") from None
        if header.get("format") != CALIBSET_FORMAT or header.get("version") != CALIBSET_VERSION:
            raise Qua2Error(f"{path} is not a qua2 calibration set of this version; delete it "
                            "so it is drawn again.")
        flat = {k[len("cond/"):]: v for k, v in tensors.items() if k.startswith("cond/")}
        flat.update(json.loads(header.get("plain_cond", "{}")))
        return cls(tensors["inputs"], tensors["timesteps"], _unflatten(flat), header["method"],
                   json.loads(header.get("meta", "{}")))


def _to(cond: Any, device: torch.device | str) -> Any:
    if isinstance(cond, Mapping):
        return {k: _to(v, device) for k, v in cond.items()}
    return cond.to(device) if torch.is_tensor(cond) else cond
