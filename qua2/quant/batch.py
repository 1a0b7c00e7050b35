"""Quantizing many layers × options at once, batching rows across layers.

Every row-wise method (per-output-channel ``uaq``, ``rtn``, ``kmeans_c`` and per-group
``group``) treats rows independently, so the rows of all layers with the same row length can
go through one vectorised call: for small layers the cost of a call is mostly per-operation
overhead, not arithmetic, and batching removes it. This is what makes building the option
cache of a small model fast; :func:`quantize_options` is the one-layer case.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from qua2.quant.methods import _quantize, as_rows, finish, resolve_option
from qua2.quant.qweight import QuantizedWeight
from qua2.specs import QuantOption


def _groups(rows: Mapping[str, Tensor]) -> list[list[str]]:
    """Layer names grouped by (row length, device, dtype), in first-seen order."""
    groups: dict[tuple, list[str]] = {}
    for name, r in rows.items():
        groups.setdefault((r.shape[1], r.device, r.dtype), []).append(name)
    return list(groups.values())


@torch.no_grad()
def quantize_layers(weights: Mapping[str, Tensor], options: Sequence[QuantOption]
                    ) -> dict[str, dict[QuantOption, QuantizedWeight]]:
    """``{layer: {option: QuantizedWeight}}`` for every layer and option.

    Results equal quantizing each layer alone; row-wise methods run once per group of layers
    with equal row length, and work shared between options (e.g. sorting rows for k-means at
    several bit-widths) is done once per group.
    """
    resolved = [(option, *resolve_option(option)) for option in options]  # fail early
    rows = {name: as_rows(w) for name, w in weights.items()}
    out: dict[str, dict[QuantOption, QuantizedWeight]] = {name: {} for name in weights}
    layer_shared: dict[str, dict] = {name: {} for name in weights}
    for names in _groups(rows):
        stacked = rows[names[0]] if len(names) == 1 else torch.cat([rows[n] for n in names])
        bounds = torch.tensor([0] + [rows[n].shape[0] for n in names]).cumsum(0).tolist()
        group_shared: dict = {}
        for option, spec, opts in resolved:
            if not spec.rowwise:
                for name in names:
                    out[name][option] = _quantize(weights[name], rows[name], option.method,
                                                  option.bits, layer_shared[name], opts)
                continue
            codes, params = spec.quantize(stacked, option.bits, group_shared, **opts)
            for name, lo, hi in zip(names, bounds[:-1], bounds[1:]):
                # Copies, so no result keeps the whole group's tensors alive.
                out[name][option] = finish(
                    weights[name], rows[name], option.method, option.bits,
                    codes[lo:hi].clone(), {k: v[lo:hi].clone() for k, v in params.items()},
                    opts.get("group_size"),
                )
    return {name: {o: out[name][o] for o in options} for name in weights}
