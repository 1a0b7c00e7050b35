"""Calibrated static ranges: ``site → [groups, 2]`` (min, max), stored as safetensors.

Timestep convention (used throughout :mod:`qua2.activations`): ``t`` is the scheduler's
*training* timestep as passed to the denoiser, so ``t = 0`` is the clean end (x₀) and
``t = T - 1`` (``T = num_train_timesteps``, 1000 for DDPM/DDIM) is pure noise. Per-timestep-group
ranges split ``[0, T)`` into ``G`` equal-width groups; group 0 holds the cleanest timesteps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from qua2.errors import Qua2Error
from qua2.io import load_safetensors, write_safetensors

RANGES_FORMAT_VERSION = 1


def group_edges(groups: int, num_train_timesteps: int = 1000) -> torch.Tensor:
    """``groups + 1`` equal-width edges over ``[0, T]`` (group 0 = the clean end)."""
    return torch.linspace(0, float(num_train_timesteps), int(groups) + 1)


def timestep_group(t: torch.Tensor | float, edges: torch.Tensor) -> torch.Tensor:
    """Group index of every timestep in ``t`` (values outside ``[0, T]`` go to the end groups)."""
    t = torch.as_tensor(t, dtype=torch.float32).flatten().cpu()
    idx = torch.bucketize(t, edges[1:-1].float(), right=True)
    return idx.clamp(0, len(edges) - 2)


@dataclass
class ActivationRanges:
    """Static ranges per site and timestep group, plus what they were calibrated with."""

    ranges: dict[str, torch.Tensor]
    edges: torch.Tensor = field(default_factory=lambda: group_edges(1))
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        groups = len(self.edges) - 1
        for site, value in self.ranges.items():
            if value.ndim != 2 or value.shape != (groups, 2):
                raise Qua2Error(f"the range of site {site!r} has shape {tuple(value.shape)}, "
                                f"expected ({groups}, 2) for {groups} timestep group(s).")

    @property
    def groups(self) -> int:
        return len(self.edges) - 1

    def __contains__(self, site: object) -> bool:
        return site in self.ranges

    def lookup(self, site: str, group: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``(lo, hi)`` of ``site`` in timestep ``group``."""
        value = self.ranges[site][group]
        return value[0], value[1]

    def group_of(self, t: torch.Tensor | float) -> int:
        """The single timestep group of ``t``; a batch spanning several groups is an error."""
        idx = timestep_group(t, self.edges).unique()
        if len(idx) != 1:
            raise Qua2Error(
                "one denoiser call mixes timesteps from different range groups "
                f"({idx.tolist()}); call the model with one timestep per batch."
            )
        return int(idx[0])

    # ------------------------------------------------------------------ storage
    def save(self, path: str | Path) -> Path:
        """Write ``path`` (safetensors) atomically; ``meta`` goes into the header as JSON."""
        path = Path(path)
        tensors = {f"range/{k}": v.float().contiguous().cpu() for k, v in self.ranges.items()}
        tensors["edges"] = self.edges.float().contiguous().cpu()
        header = {"format": "qua2-activation-ranges", "version": str(RANGES_FORMAT_VERSION),
                  "meta": json.dumps(self.meta, sort_keys=True, default=str)}
        write_safetensors(path, tensors, header)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ActivationRanges:
        path = Path(path)
        if not path.exists():
            raise Qua2Error(f"activation ranges file {path} does not exist; calibrate first.")
        tensors, header = load_safetensors(path, "delete it and calibrate again")
        if header.get("format") != "qua2-activation-ranges" or "edges" not in tensors:
            raise Qua2Error(f"{path} is not a qua2 activation ranges file; calibrate again.")
        ranges = {k[len("range/"):]: v for k, v in tensors.items() if k.startswith("range/")}
        return cls(ranges, tensors["edges"], json.loads(header.get("meta", "{}")))
