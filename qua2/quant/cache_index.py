"""The option cache's on-disk index: format, reading, and per-option statistics.

Directory layout (format version 1)::

    <cache>/index.json                        this index (atomically replaced)
    <cache>/shards/<layer>-<h>__<option>.safetensors
                                              one (layer, option): packed codes + fp16 params,
                                              metadata = layer, option, FP weight hash, stats
    <cache>/.lock                             advisory lock held while building

``index.json``::

    {"format": "qua2-option-cache", "format_version": 1, "qua2_version": "0.1.0",
     "space": {"version": 1, "options": ["uaq-w3", ...]}, "space_digest": "…",
     "model": {"total_params": 1234567},
     "layers": {"blocks.0.attn1.to_q": {
         "shape": [64, 64], "dtype": "torch.float32", "numel": 4096,
         "weight_hash": "<blake2b-128 of the FP weight>",
         "options": {"uaq-w3": {"file": "shards/…", "file_bytes": 1890, "file_hash": "…",
                                "nbytes": 1792, "error": 0.031, "mse": 1.2e-5}}}}}

``nbytes`` is the exact packed storage (codes at b bits + fp16 parameters); ``error`` is the
relative squared error ‖W − Ŵ‖²/‖W‖²; ``mse`` the mean squared error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qua2.errors import Qua2Error
from qua2.specs import QuantOption, SearchSpace
from qua2.version import __version__

CACHE_FORMAT = "qua2-option-cache"
CACHE_FORMAT_VERSION = 1
INDEX_NAME = "index.json"
SHARD_DIR = "shards"
SHARD_FORMAT = "qua2-option-shard"


@dataclass(frozen=True)
class OptionStats:
    """Storage and error of one (layer, option): what graph features and budgets need."""

    layer: str
    option: QuantOption
    numel: int
    nbytes: int
    fp16_nbytes: int
    error: float
    mse: float

    @property
    def bits(self) -> float:
        """Average bits per weight incl. overheads: ``16 · nbytes / fp16_nbytes``."""
        return 16.0 * self.nbytes / self.fp16_nbytes

    @property
    def size_ratio(self) -> float:
        """FP16 size over quantized size (Qua²SeDiMo's node feature)."""
        return self.fp16_nbytes / self.nbytes


def new_index(space: SearchSpace, total_params: int) -> dict[str, Any]:
    return {
        "format": CACHE_FORMAT,
        "format_version": CACHE_FORMAT_VERSION,
        "qua2_version": __version__,
        "space": space.to_dict(),
        "space_digest": space.digest(),
        "model": {"total_params": int(total_params)},
        "layers": {},
    }


def read_index(directory: Path) -> dict[str, Any]:
    """Read and check ``index.json``; a missing or unusable index raises :class:`Qua2Error`."""
    path = directory / INDEX_NAME
    if not path.is_file():
        raise Qua2Error(
            f"no option cache at {directory} (missing {INDEX_NAME}); build it first with "
            "OptionCache.build(module, space, directory)."
        )
    try:
        index = json.loads(path.read_text())
        if index.get("format") != CACHE_FORMAT:
            raise ValueError("not an option cache index")
    except (OSError, ValueError) as exc:
        raise Qua2Error(
            f"the option cache index {path} is unreadable ({exc}); rebuild it with "
            "OptionCache.build(...), which reuses every intact shard."
        ) from None
    if index.get("format_version") != CACHE_FORMAT_VERSION:
        raise Qua2Error(
            f"the option cache at {directory} has format version {index.get('format_version')}, "
            f"this qua2 reads {CACHE_FORMAT_VERSION}; rebuild it with OptionCache.build(...)."
        )
    return index


def try_read_index(directory: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(index, None), (None, None) when absent, or (None, reason) when unusable."""
    if not (directory / INDEX_NAME).is_file():
        return None, None
    try:
        return read_index(directory), None
    except Qua2Error as exc:
        return None, str(exc)


def option_entry(file: str, file_bytes: int, file_hash: str, nbytes: int, error: float,
                 mse: float) -> dict[str, Any]:
    return {"file": file, "file_bytes": file_bytes, "file_hash": file_hash, "nbytes": nbytes,
            "error": error, "mse": mse}


def shard_metadata(layer: str, weight_hash: str, option: QuantOption, nbytes: int) -> dict:
    """String metadata stored in every shard, so an index can be rebuilt from the shards."""
    return {"format": SHARD_FORMAT, "layer": layer, "weight_hash": weight_hash,
            "option": option.key, "nbytes": str(nbytes)}


def read_shard_header(path: Path) -> dict[str, str] | None:
    """The ``__metadata__`` of a safetensors file without reading its tensors (None if bad)."""
    try:
        with open(path, "rb") as handle:
            header_len = int.from_bytes(handle.read(8), "little")
            if not 2 <= header_len <= 100_000_000:
                return None
            header = json.loads(handle.read(header_len))
        meta = header.get("__metadata__") or {}
        return meta if meta.get("format") == SHARD_FORMAT else None
    except (OSError, ValueError):
        return None
