"""Building and updating an option cache: every (layer, option) quantized exactly once.

Qua²SeDiMo precomputes all options of every layer ("multi-quantizer" checkpoints) before its
search; here that step is incremental and resumable:

* A (layer, option) is reused when the index lists it, the FP weight hash matches and its
  shard is present and intact (size, and BLAKE2b hash unless ``verify=False``).
* Shards carry their own metadata, so shards written before an interruption (or after the index
  was lost) are adopted instead of recomputed.
* Changed weights, a changed search space, new layers and missing or corrupt shards cause
  recomputation of exactly the affected entries, and the reason is reported.
* Each shard is written atomically, and the index is rewritten (atomically) as work completes,
  so killing the process loses at most the entry in flight.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from qua2.errors import Qua2Error
from qua2.io import atomic_write, atomic_write_json, bytes_digest
from qua2.progress import progress_bar
from qua2.quant.batch import quantize_layers
from qua2.quant.cache_index import (
    INDEX_NAME,
    SHARD_DIR,
    new_index,
    option_entry,
    read_shard_header,
    shard_metadata,
    try_read_index,
)
from qua2.quant.methods import get_method
from qua2.quant.qweight import QuantizedWeight
from qua2.quant.store import exclusive_lock, safe_name, safetensors_bytes, tensor_digest
from qua2.specs import QuantOption, SearchSpace

Log = Callable[[str], None]
#: Rewrite the index at most this often while building (it is also written at the end).
INDEX_FLUSH_SECONDS = 2.0
#: Layers are quantized in batches of up to this many weights (rows of equal length batched).
BATCH_WEIGHTS = 1 << 22


def stderr_log(message: str) -> None:
    """Default reporter: one line on stderr that does not break tqdm's progress bar."""
    tqdm.write(f"qua2 option cache: {message}", file=sys.stderr)


@dataclass
class BuildReport:
    """What a build did: entries reused and computed, and why they were computed."""

    reused: int = 0
    computed: int = 0
    reasons: Counter = field(default_factory=Counter)
    removed_files: int = 0
    seconds: float = 0.0


def layer_weight(module: nn.Module, name: str) -> torch.Tensor:
    """The ``weight`` of the submodule ``name``, or a :class:`Qua2Error` naming it."""
    try:
        sub = module.get_submodule(name)
    except AttributeError:
        raise Qua2Error(f"the model has no layer {name!r}.") from None
    weight = getattr(sub, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() < 2:
        raise Qua2Error(f"layer {name!r} has no weight matrix (Linear/Conv) to quantize.")
    return weight


def shard_ok(directory: Path, entry: dict[str, Any], verify: bool) -> str | None:
    """None if the entry's shard is intact, else the reason ("missing shard", …)."""
    path = directory / entry["file"]
    if not path.is_file():
        return "missing shard"
    if path.stat().st_size != entry["file_bytes"]:
        return "corrupt shard"
    if verify and bytes_digest(path.read_bytes()) != entry["file_hash"]:
        return "corrupt shard"
    return None


def write_shard(directory: Path, layer: str, weight_hash: str,
                qweight: QuantizedWeight) -> dict[str, Any]:
    """Store one quantized weight as a shard; returns its index entry."""
    option = qweight.option
    tensors, meta = qweight.to_tensors()
    meta.update(shard_metadata(layer, weight_hash, option, qweight.nbytes))
    data = safetensors_bytes(tensors, meta)
    rel = f"{SHARD_DIR}/{safe_name(layer)}__{option.key}.safetensors"
    atomic_write(directory / rel, data)
    return option_entry(rel, len(data), bytes_digest(data), qweight.nbytes, qweight.error,
                        qweight.mse)


def _orphans(directory: Path, known: set[str]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Entries recovered from shards that no index lists: (layer, weight hash, option) → entry."""
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    shard_dir = directory / SHARD_DIR
    if not shard_dir.is_dir():
        return found
    for path in sorted(shard_dir.glob("*.safetensors")):
        rel = f"{SHARD_DIR}/{path.name}"
        if rel in known:
            continue
        meta = read_shard_header(path)
        if meta is None:
            continue
        try:
            qmeta = json.loads(meta.get("qweight", "{}"))
        except ValueError:
            qmeta = {}
        data = path.read_bytes()
        found[(meta["layer"], meta["weight_hash"], meta["option"])] = option_entry(
            rel, len(data), bytes_digest(data), int(meta["nbytes"]),
            float(qmeta.get("error", "nan")), float(qmeta.get("mse", "nan")),
        )
    return found


def _plan(module: nn.Module, layers: Sequence[str], space: SearchSpace, old: dict | None,
          directory: Path, verify: bool, report: BuildReport
          ) -> tuple[dict[str, Any], list[tuple[str, list[QuantOption]]]]:
    """New index with every reusable entry, and the (layer, options) still to compute."""
    index = new_index(space, sum(p.numel() for p in module.parameters()))
    old_layers = (old or {}).get("layers", {})
    known = {e["file"] for lay in old_layers.values() for e in lay["options"].values()}
    orphans = _orphans(directory, known)
    todo = []
    for name in layers:
        weight = layer_weight(module, name)
        digest = tensor_digest(weight)
        prev = old_layers.get(name)
        if prev is not None and prev["weight_hash"] != digest:
            report.reasons["changed weights"] += len(space)
            prev = None
        entry: dict[str, Any] = {"shape": list(weight.shape), "dtype": str(weight.dtype),
                 "numel": weight.numel(), "weight_hash": digest, "options": {}}
        missing = []
        for option in space:
            found = (prev or {}).get("options", {}).get(option.key)
            found = found or orphans.get((name, digest, option.key))
            problem = shard_ok(directory, found, verify) if found else None
            if found and problem is None:
                entry["options"][option.key] = found
                report.reused += 1
                continue
            missing.append(option)
            if problem:
                report.reasons[problem] += 1
            elif prev is not None:
                report.reasons["new option in the search space"] += 1
            elif name not in old_layers:
                report.reasons["new layer"] += 1
        index["layers"][name] = entry
        if missing:
            todo.append((name, missing))
    return index, todo


def _prune(directory: Path, index: dict[str, Any], log: Log, report: BuildReport) -> None:
    """Delete shards the new index does not list (removed layers/options, stale weights)."""
    keep = {e["file"] for lay in index["layers"].values() for e in lay["options"].values()}
    shard_dir = directory / SHARD_DIR
    if not shard_dir.is_dir():
        return
    stale = [p for p in shard_dir.glob("*.safetensors") if f"{SHARD_DIR}/{p.name}" not in keep]
    for path in stale:
        path.unlink(missing_ok=True)
    report.removed_files = len(stale)
    if stale:
        log(f"removed {len(stale)} shard(s) no longer in the model or the search space.")


def _describe(old: dict | None, problem: str | None, space: SearchSpace,
              report: BuildReport, todo_count: int, log: Log) -> None:
    if problem:
        log(f"{problem} Rebuilding the index; intact shards are reused.")
    if old is not None and old.get("space_digest") != space.digest():
        before = set(old["space"]["options"])
        after = {o.key for o in space}
        log(f"search space changed (+{len(after - before)} / -{len(before - after)} options); "
            "only new options are computed.")
    if todo_count:
        why = ", ".join(f"{n} {r}" for r, n in sorted(report.reasons.items()))
        log(f"computing {todo_count} of {todo_count + report.reused} (layer, option) entries"
            + (f" ({why})." if why else "."))


def build_cache(module: nn.Module, space: SearchSpace, directory: Path,
                layers: Sequence[str], *, device: torch.device | str | None = None,
                progress: bool = True, verify: bool = True, log: Log = stderr_log
                ) -> BuildReport:
    """Create or update the cache in ``directory`` for ``layers`` of ``module`` × ``space``."""
    for option in space:
        get_method(option.method)  # unknown methods fail before any work
    start = time.perf_counter()
    report = BuildReport()
    directory.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(directory / ".lock"), torch.no_grad():
        old, problem = try_read_index(directory)
        index, todo = _plan(module, layers, space, old, directory, verify, report)
        _describe(old, problem, space, report, sum(len(t[1]) for t in todo), log)
        _prune(directory, index, log, report)
        atomic_write_json(directory / INDEX_NAME, index)
        _compute(module, directory, index, todo, device, progress, report)
        atomic_write_json(directory / INDEX_NAME, index)
    report.seconds = time.perf_counter() - start
    return report


def _batches(todo: list[tuple[str, list[QuantOption]]], module: nn.Module, limit: int
             ) -> list[tuple[list[str], list[QuantOption]]]:
    """Consecutive layers needing the same options, up to ``limit`` weights per batch."""
    batches: list[tuple[list[str], list[QuantOption]]] = []
    size = 0
    for name, options in todo:
        numel = layer_weight(module, name).numel()
        if batches and batches[-1][1] == options and size + numel <= limit:
            batches[-1][0].append(name)
            size += numel
        else:
            batches.append(([name], options))
            size = numel
    return batches


def _compute(module: nn.Module, directory: Path, index: dict[str, Any],
             todo: list[tuple[str, list[QuantOption]]], device: torch.device | str | None,
             progress: bool, report: BuildReport) -> None:
    total = sum(len(options) for _, options in todo)
    last_flush = time.monotonic()
    with progress_bar(total=total, desc="quantizing layers", unit="option",
              disable=not progress or total == 0) as bar:
        for names, options in _batches(todo, module, BATCH_WEIGHTS):
            weights = {name: layer_weight(module, name) for name in names}
            if device is not None:
                weights = {name: w.to(device) for name, w in weights.items()}
            for name, results in quantize_layers(weights, options).items():
                entry = index["layers"][name]
                for option, qweight in results.items():
                    entry["options"][option.key] = write_shard(
                        directory, name, entry["weight_hash"], qweight
                    )
                    report.computed += 1
                    bar.update(1)
            if time.monotonic() - last_flush > INDEX_FLUSH_SECONDS:
                atomic_write_json(directory / INDEX_NAME, index)
                last_flush = time.monotonic()
