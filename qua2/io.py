"""The one reading layer for qua2's files: a decode error becomes one sentence, never a trace.

Every artifact qua2 reads back — study YAML, JSON tables and indexes, JSON-lines progress
files, safetensors tensors — goes through these functions. A file that cannot be decoded
(binary bytes in a text file, truncated JSON, a safetensors header cut short) raises
:class:`DamagedArtifactError`, a :class:`~qua2.errors.Qua2Error` that names the file and the fix.

Callers that can *rebuild* the artifact (a traced graph, FP reference images, reference
statistics, an option-cache shard, a fitted surrogate) catch :class:`DamagedArtifactError`, say so
in one line and rebuild; callers that cannot (the study's SQLite store, the study YAML) let it
reach the CLI, which prints the sentence and exits with code 2.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qua2.errors import Qua2Error


# --------------------------------------------------------------------------- writing
@contextlib.contextmanager
def _replaced_atomically(path: Path) -> Iterator[str]:
    """A temporary file in ``path``'s folder, renamed to ``path`` when the block succeeds and
    removed when it fails, so ``path`` is either old or complete, never partial."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that the file is either old or complete, never partial."""
    with _replaced_atomically(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_safetensors(path: Path, tensors: dict[str, Any],
                      metadata: dict[str, str] | None) -> None:
    """Save tensors as safetensors atomically (streamed to a temporary file in the same folder,
    then renamed), so a killed run or a concurrent reader never sees half a file."""
    from safetensors.torch import save_file

    with _replaced_atomically(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)


def atomic_write_json(path: Path, payload: Any) -> None:
    """JSON with keys in insertion order (layer order is meaningful), atomically."""
    atomic_write(path, (json.dumps(payload, indent=1) + "\n").encode())


# --------------------------------------------------------------------------- hashing
def bytes_digest(data: bytes | memoryview) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def file_digest(path: Path) -> str:
    """BLAKE2b-128 of a file, read in 4 MiB blocks."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- reading
class DamagedArtifactError(Qua2Error):
    """A file qua2 wrote (or was given) that cannot be decoded; carries the path."""

    def __init__(self, path: Path, problem: str, fix: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path} is damaged ({problem}); {fix}")


def rerun_stage(directory: str | Path, stage: str) -> str:
    """The fix for a damaged output of a study stage: run that stage again."""
    return (f"re-run `qua2 run {directory}/study.yaml --out {directory} --stages {stage}` "
            "to write it again")


def _read_bytes(path: Path, fix: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except IsADirectoryError:
        raise DamagedArtifactError(path, "a directory where a file was expected", fix) from None
    except FileNotFoundError:
        raise DamagedArtifactError(path, "missing", fix) from None
    except OSError as error:
        raise DamagedArtifactError(path, error.strerror or type(error).__name__, fix) from None


def read_text(path: str | Path, fix: str) -> str:
    """The file's text, which must be UTF-8."""
    data = _read_bytes(Path(path), fix)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DamagedArtifactError(Path(path), f"not UTF-8 text: byte {error.start}", fix) from None


def read_json(path: str | Path, fix: str) -> Any:
    """The decoded JSON document of ``path``."""
    text = read_text(path, fix)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        problem = f"invalid JSON at line {error.lineno}"
        raise DamagedArtifactError(Path(path), problem, fix) from None


def read_json_object(path: str | Path, fix: str) -> dict[str, Any]:
    """Like :func:`read_json`, but the document must be a JSON object."""
    value = read_json(path, fix)
    if not isinstance(value, dict):
        raise DamagedArtifactError(Path(path), f"a JSON {type(value).__name__}, not an object", fix)
    return value


def iter_json_lines(path: str | Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, skipping lines that do not decode.

    Progress files are appended to line by line; a run killed mid-write leaves its last line
    cut short, and a damaged line only means that entry is computed again.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return
    for raw in data.splitlines():
        try:
            entry = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(entry, dict):
            yield entry


def read_json_object_or_none(path: str | Path, fix: str) -> dict[str, Any] | None:
    """A derived JSON object, or None when it is absent or damaged (the caller recomputes it;
    the damage is reported in one line)."""
    if not Path(path).exists():
        return None
    try:
        return read_json_object(path, fix)
    except DamagedArtifactError as error:
        from qua2.log import say

        say(str(error))
        return None


def decode_safetensors(data: bytes) -> tuple[dict[str, Any], dict[str, str]]:
    """(tensors, string metadata) of safetensors bytes, as torch tensors on the CPU.

    The header is parsed by hand (8-byte little-endian length + JSON) for the metadata, so a
    file is read once and can be hashed and decoded from the same bytes. Any damage raises
    (safetensors raises its own error types); never pickle, never ``torch.load``.
    """
    from safetensors.torch import load as load_bytes

    header_len = int.from_bytes(data[:8], "little")
    if len(data) < 8 or not 2 <= header_len <= len(data) - 8:
        raise ValueError("header length out of range")
    header = json.loads(data[8 : 8 + header_len])
    metadata = header.get("__metadata__") or {}
    return dict(load_bytes(data)), {str(k): str(v) for k, v in metadata.items()}


def load_safetensors(path: str | Path, fix: str) -> tuple[dict[str, Any], dict[str, str]]:
    """(tensors, string metadata) of a safetensors file, read as torch tensors on the CPU."""
    data = _read_bytes(Path(path), fix)
    try:
        return decode_safetensors(data)
    except Exception:  # every kind of damage, whatever error type safetensors raises
        raise DamagedArtifactError(Path(path), "not a readable safetensors file", fix) from None
