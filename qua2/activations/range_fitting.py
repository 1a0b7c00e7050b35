"""Static range calibration: replay a calibration set through the FP model, then search ranges.

:func:`calibrate_ranges` runs every ``(x_t, t, cond)`` batch of a
:class:`~qua2.activations.calibration_sets.CalibrationSet` through ``adapter.denoise`` with
observers on exactly the sites that :func:`~qua2.activations.hooks.quantized_activations`
will quantize, then picks each site's range by minimising ``setting.objective`` (PTQ4DM's
L_p, p = 2.4, by default).
:func:`calibrate_module` does the same for a bare module and a list of forward inputs.

Memory stays bounded: each site keeps its exact min/max plus a uniform random subsample of at
most ``max_values`` activations (a reservoir with seeded priorities, hence deterministic), and
the search runs on that subsample. A timestep group that received no sample (e.g. every group
but the noisiest under single-step calibration) falls back to the range of all groups pooled.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from qua2.activations.calibration_sets import CalibrationSet
from qua2.activations.hooks import observing
from qua2.activations.range_search import search_range
from qua2.activations.ranges import ActivationRanges, group_edges, timestep_group
from qua2.activations.setting import ActivationSetting
from qua2.activations.sites import Site
from qua2.errors import Qua2Error
from qua2.models.base import DenoiserAdapter, ExampleInputs

POOLED = -1  # the reservoir of all timestep groups together


class _Reservoir:
    """Exact extremes plus a uniform subsample (the ``cap`` values of highest random priority)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.values = torch.empty(0)
        self.keys = torch.empty(0)
        self.lo, self.hi = float("inf"), float("-inf")

    def add(self, values: torch.Tensor, keys: torch.Tensor) -> None:
        self.lo = min(self.lo, float(values.min()))
        self.hi = max(self.hi, float(values.max()))
        self.values = torch.cat([self.values, values])
        self.keys = torch.cat([self.keys, keys])
        if len(self.values) > self.cap:
            top = torch.topk(self.keys, self.cap, sorted=False).indices
            self.values, self.keys = self.values[top], self.keys[top]


class RangeObserver:
    """Collects FP activations per (site, timestep group) and turns them into ranges."""

    def __init__(self, edges: torch.Tensor, max_values: int = 1 << 16, seed: int = 0) -> None:
        self.edges = edges
        self.max_values = int(max_values)
        self.gen = torch.Generator().manual_seed(int(seed))
        self.store: dict[tuple[str, int], _Reservoir] = {}

    @property
    def groups(self) -> int:
        return len(self.edges) - 1

    def record(self, site: Site, x: torch.Tensor, timestep: torch.Tensor | None) -> None:
        values = x.detach().float().flatten().cpu()
        if values.numel() == 0:
            return
        keys = torch.rand(values.numel(), generator=self.gen)
        here = self._group(timestep)
        # One group needs no pooled copy: it *is* the pool.
        for group in {here} if self.groups == 1 else {POOLED, here}:
            key = (site.name, group)
            if key not in self.store:
                self.store[key] = _Reservoir(self.max_values)
            self.store[key].add(values, keys)

    def _group(self, timestep: torch.Tensor | None) -> int:
        if self.groups == 1:
            return 0
        if timestep is None:
            raise Qua2Error("per-timestep-group calibration needs the timestep of every call; "
                            "call the denoiser with its timestep argument.")
        groups = timestep_group(timestep, self.edges).unique()
        if len(groups) != 1:
            raise Qua2Error("a calibration batch mixes timesteps from different range groups; "
                            "batch the calibration inputs by timestep.")
        return int(groups[0])

    def ranges(self, sites: Sequence[Site], setting: ActivationSetting,
               meta: dict[str, Any] | None = None) -> ActivationRanges:
        """Search every site's range (per group) with ``setting.objective``."""
        out = {}
        for site in sites:
            if (site.name, POOLED if self.groups > 1 else 0) not in self.store:
                raise Qua2Error(f"calibration never reached site {site.name!r}; check that the "
                                "calibration inputs run that part of the model.")
            rows = [self._search(site, group, setting) for group in range(self.groups)]
            out[site.name] = torch.tensor(rows, dtype=torch.float32)
        return ActivationRanges(out, self.edges.clone(), dict(meta or {}))

    def _search(self, site: Site, group: int, setting: ActivationSetting) -> tuple[float, float]:
        res = self.store.get((site.name, group)) or self.store[(site.name, POOLED)]
        return search_range(res.values, site.bits, setting.objective, setting.p, res.lo, res.hi)


def _check_static(setting: ActivationSetting) -> None:
    if setting.mode != "static":
        raise Qua2Error("only static activation settings are calibrated; dynamic per-token "
                        "quantization computes its ranges on the fly.")


@torch.no_grad()
def calibrate_ranges(adapter: DenoiserAdapter, calib: CalibrationSet, setting: ActivationSetting,
                     layers: Sequence[str] | None = None, *, batch_size: int = 64,
                     max_values: int = 1 << 16, seed: int = 0) -> ActivationRanges:
    """Static ranges for ``setting`` from ``calib`` replayed through ``adapter.denoise``."""
    _check_static(setting)
    if len(calib) == 0:
        raise Qua2Error("the calibration set is empty; draw at least one sample.")
    train_steps = int(calib.meta.get("num_train_timesteps", 1000))
    observer = RangeObserver(group_edges(setting.timestep_groups, train_steps), max_values, seed)
    with observing(adapter.module, layers, setting, observer.record) as handle:
        for x, t, cond in calib.batches(batch_size, adapter.device):
            adapter.denoise(x.to(adapter.dtype), t, cond)
    meta = {"setting": setting.to_dict(), "calibration": calib.method,
            "calibration_meta": calib.meta, "samples": len(calib)}
    return observer.ranges(handle.sites, setting, meta)


@torch.no_grad()
def calibrate_module(module: nn.Module, setting: ActivationSetting,
                     inputs: Iterable[ExampleInputs], layers: Sequence[str] | None = None, *,
                     num_train_timesteps: int = 1000, max_values: int = 1 << 16,
                     seed: int = 0) -> ActivationRanges:
    """Static ranges from forward calls ``module(*i.args, **i.kwargs)`` for every ``i``."""
    _check_static(setting)
    observer = RangeObserver(group_edges(setting.timestep_groups, num_train_timesteps),
                             max_values, seed)
    calls = 0
    with observing(module, layers, setting, observer.record) as handle:
        for example in inputs:
            module(*example.args, **example.kwargs)
            calls += 1
    if calls == 0:
        raise Qua2Error("the calibration set is empty; pass at least one forward input.")
    return observer.ranges(handle.sites, setting, {"setting": setting.to_dict(),
                                                   "samples": calls})
