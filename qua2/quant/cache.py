"""The option cache: every (weight layer × quantization option) computed once, kept on disk.

>>> cache = OptionCache.build(model, space, "study/options")     # computes or reuses
>>> cache.option_stats("blocks.0.attn1.to_q", QuantOption("uaq", 3)).error
>>> w = cache.dequantized("blocks.0.attn1.to_q", "kmeans_c-w4")    # memoised in memory

Shards hold packed codes and fp16 parameters (not dequantized floats), so a cache takes about
(b/16) of the FP16 model per option. Dequantized weights are memoised in memory up to
``memory_budget`` bytes (least recently used first out), which makes applying a config to a
small model a matter of pointer swaps. See :mod:`qua2.quant.cache_index` for the format and
:mod:`qua2.quant.cache_build` for how building reuses and recomputes.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from qua2.errors import Qua2Error
from qua2.io import atomic_write_json, bytes_digest
from qua2.quant.cache_build import (
    BuildReport,
    Log,
    build_cache,
    layer_weight,
    stderr_log,
    write_shard,
)
from qua2.quant.cache_index import INDEX_NAME, OptionStats, read_index
from qua2.quant.methods import quantize_options
from qua2.quant.qweight import QuantizedWeight, parse_dtype
from qua2.quant.store import read_safetensors, tensor_digest
from qua2.specs import QuantOption, SearchSpace

#: Default bound on memoised dequantized weights (bytes).
DEFAULT_MEMORY_BUDGET = 2 << 30
OptionLike = QuantOption | str


def _device_key(device: torch.device | str | None) -> str:
    """A canonical device name ("cuda" and "cuda:0" are the same memo entry)."""
    dev = torch.device(device or "cpu")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return str(dev)


def as_option(option: OptionLike) -> QuantOption:
    """A :class:`QuantOption` from itself or its key (``"uaq-w4"``)."""
    return option if isinstance(option, QuantOption) else QuantOption.parse(option)


class OptionCache:
    """Read access to a built option cache (see :meth:`build` to create or update one)."""

    def __init__(self, directory: str | Path, *, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                 log: Log = stderr_log, source: Callable[[], nn.Module] | None = None) -> None:
        self.directory = Path(directory)
        self._index = read_index(self.directory)
        self.space = SearchSpace.from_dict(self._index["space"])
        self.memory_budget = int(memory_budget)
        self.log = log
        self.last_build: BuildReport | None = None
        self._memo: OrderedDict[tuple, Tensor] = OrderedDict()
        self._memo_bytes = 0
        self._module: weakref.ref[nn.Module] | None = None
        #: Gives the FP module on demand, so a damaged shard can be recomputed from it even
        #: when the cache was opened from disk (a study's worker loads its model lazily).
        self._source = source

    # ----------------------------------------------------------------- building
    @classmethod
    def build(
        cls,
        module: nn.Module,
        space: SearchSpace,
        directory: str | Path,
        layers: Sequence[str] | None = None,
        *,
        device: torch.device | str | None = None,
        progress: bool = True,
        verify: bool = True,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
        log: Log = stderr_log,
    ) -> OptionCache:
        """Compute (or reuse) every option of every layer and open the cache.

        ``layers`` defaults to every Linear/Conv layer of ``module``. ``device`` is where
        quantization runs (default: where each weight lives). ``verify`` re-hashes existing
        shards to catch silent corruption. Interrupting and calling again resumes.
        """
        if layers is None:
            from qua2.quant.layers import quantizable_layers

            layers = quantizable_layers(module)
        report = build_cache(module, space, Path(directory), list(layers), device=device,
                             progress=progress, verify=verify, log=log)
        cache = cls(directory, memory_budget=memory_budget, log=log)
        cache.last_build = report
        cache._module = weakref.ref(module)
        return cache

    # ----------------------------------------------------------------- description
    @property
    def layers(self) -> tuple[str, ...]:
        """Qualified names of the cached layers, in model order."""
        return tuple(self._index["layers"])

    @property
    def layer_set(self) -> frozenset[str]:
        """The cached layers as a set (for fast membership tests)."""
        return frozenset(self._index["layers"])

    @property
    def total_params(self) -> int:
        """Parameters of the whole module at build time (for whole-model average bits)."""
        return int(self._index["model"]["total_params"])

    def numel(self, layer: str) -> int:
        return int(self._layer(layer)["numel"])

    def shape(self, layer: str) -> tuple[int, ...]:
        return tuple(self._layer(layer)["shape"])

    def weight_hash(self, layer: str) -> str:
        return str(self._layer(layer)["weight_hash"])

    def option_stats(self, layer: str, option: OptionLike) -> OptionStats:
        """Bytes (packed, with overheads), FP16 bytes and errors of one (layer, option)."""
        option = as_option(option)
        entry = self._entry(layer, option)
        numel = self.numel(layer)
        return OptionStats(layer, option, numel, int(entry["nbytes"]), 2 * numel,
                           float(entry["error"]), float(entry["mse"]))

    def iter_stats(self) -> Iterator[OptionStats]:
        """Every (layer, option) of the cache, layer by layer in model order."""
        for layer in self.layers:
            for option in self.space:
                yield self.option_stats(layer, option)

    def _layer(self, layer: str) -> dict[str, Any]:
        try:
            return self._index["layers"][layer]
        except KeyError:
            raise Qua2Error(
                f"the option cache at {self.directory} has no layer {layer!r}."
            ) from None

    def _entry(self, layer: str, option: QuantOption) -> dict[str, Any]:
        entry = self._layer(layer)["options"].get(option.key)
        if entry is None:
            covered = option in self.space
            why = "was not finished (re-run OptionCache.build)" if covered else (
                "is not in the cache's search space")
            raise Qua2Error(f"option {option.key!r} of layer {layer!r} {why}.")
        return entry

    # ----------------------------------------------------------------- loading
    def quantized(self, layer: str, option: OptionLike) -> QuantizedWeight:
        """The stored codes and parameters of one (layer, option), hash-checked."""
        option = as_option(option)
        entry = self._entry(layer, option)
        path = self.directory / entry["file"]
        try:
            data = path.read_bytes()
        except OSError:
            data = b""
        if bytes_digest(data) != entry["file_hash"]:
            return self._recompute(layer, option, "missing" if not data else "corrupt")
        tensors, meta = read_safetensors(data, f"shard {path}")
        return QuantizedWeight.from_tensors(tensors, meta)

    def dequantized(self, layer: str, option: OptionLike, *,
                    device: torch.device | str | None = None,
                    dtype: torch.dtype | None = None) -> Tensor:
        """The fake-quantized weight (memoised; do not modify it in place)."""
        option = as_option(option)
        dtype = dtype or parse_dtype(self._layer(layer)["dtype"])
        key = (layer, option.key, _device_key(device), dtype)
        hit = self._memo.get(key)
        if hit is not None:
            self._memo.move_to_end(key)
            return hit
        value = self.quantized(layer, option).dequantize(dtype=dtype, device=device)
        self._remember(key, value)
        return value

    def preload(self, *, device: torch.device | str | None = None,
                dtype: torch.dtype | None = None) -> None:
        """Dequantize every (layer, option) into the memo, as far as the budget allows."""
        for layer in self.layers:
            for option in self.space:
                self.dequantized(layer, option, device=device, dtype=dtype)

    def _remember(self, key: tuple, value: Tensor) -> None:
        size = value.numel() * value.element_size()
        if size > self.memory_budget:
            return
        self._memo[key] = value
        self._memo_bytes += size
        while self._memo_bytes > self.memory_budget:
            _, old = self._memo.popitem(last=False)
            self._memo_bytes -= old.numel() * old.element_size()

    def _recompute(self, layer: str, option: QuantOption, problem: str) -> QuantizedWeight:
        """Recompute a missing/corrupt shard from the module the cache was built from."""
        module = self._module() if self._module is not None else None
        if module is None and self._source is not None:
            module = self._source()
        weight = layer_weight(module, layer) if module is not None else None
        if weight is None or tensor_digest(weight) != self.weight_hash(layer):
            raise Qua2Error(
                f"the shard of layer {layer!r} option {option.key!r} is {problem} and its FP "
                f"weight is not at hand; rebuild the cache (the study's `cache` stage, or "
                f"OptionCache.build(model, space, {str(self.directory)!r}))."
            )
        self.log(f"shard of {layer!r} {option.key} was {problem}; recomputed it.")
        qweight = quantize_options(weight, [option])[option]
        entry = write_shard(self.directory, layer, self.weight_hash(layer), qweight)
        self._index["layers"][layer]["options"][option.key] = entry
        atomic_write_json(self.directory / INDEX_NAME, self._index)
        return qweight

    def __repr__(self) -> str:
        return (f"OptionCache({str(self.directory)!r}, {len(self.layers)} layers × "
                f"{len(self.space)} options)")
