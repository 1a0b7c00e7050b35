"""Where qua2 keeps things that outlive one study: trained embedded models, metric networks."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

CACHE_ENV = "QUA2_CACHE_DIR"


def cache_dir() -> Path:
    """The user cache directory: ``$QUA2_CACHE_DIR`` or ``~/.cache/qua2``."""
    override = os.environ.get(CACHE_ENV)
    root = Path(override) if override else Path.home() / ".cache" / "qua2"
    root.mkdir(parents=True, exist_ok=True)
    return root


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks so large shards do not fill memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
