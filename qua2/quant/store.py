"""Small, safe file helpers for the option cache and the packed export (atomic writes and
byte/file digests are in :mod:`qua2.io`).

* Hashes: BLAKE2b-128 (several times faster than SHA-256 in CPython), as hex.
* safetensors from bytes (:func:`qua2.io.decode_safetensors`): a shard is read once, hashed
  and decoded from the same bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from safetensors.torch import save as st_save
from torch import Tensor

from qua2.errors import Qua2Error
from qua2.io import decode_safetensors


def tensor_digest(tensor: Tensor) -> str:
    """Hash of a tensor's dtype, shape and exact bytes (moved to the CPU if needed)."""
    t = tensor.detach()
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{t.dtype}|{tuple(t.shape)}|".encode())
    if t.numel():
        flat = t.contiguous().reshape(-1).cpu()
        digest.update(flat.view(torch.uint8).numpy().data)  # the array's bytes, no copy
    return digest.hexdigest()


def module_digest(module: torch.nn.Module) -> str:
    """Hash of every tensor of a module's ``state_dict`` (names included)."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name}={tensor_digest(tensor)};".encode())
    return digest.hexdigest()


def safetensors_bytes(tensors: Mapping[str, Tensor], metadata: Mapping[str, str]) -> bytes:
    """Serialise CPU tensors and string metadata in the safetensors format."""
    return st_save({k: v.contiguous() for k, v in tensors.items()}, metadata=dict(metadata))


def read_safetensors(data: bytes, what: str) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Decode safetensors bytes into (tensors, metadata); a bad file raises :class:`Qua2Error`."""
    try:
        return decode_safetensors(data)
    except Exception as exc:  # safetensors raises its own error types
        raise Qua2Error(f"{what} is not a readable safetensors file ({exc}).") from None


def safe_name(text: str, limit: int = 80) -> str:
    """A file-name-safe rendering of ``text`` plus a short hash so names never collide."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:limit]
    return f"{cleaned}-{hashlib.blake2b(text.encode(), digest_size=4).hexdigest()}"


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an advisory ``flock`` on ``path`` (released by the OS if the process dies).

    Where ``fcntl`` does not exist (Windows) this is a no-op: one builder per directory.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux/macOS
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
