"""Installing activation quantization on a live module: hooks in, hooks out, nothing rewritten.

:func:`quantized_activations` is the one verb::

    with quantized_activations(adapter.module, layers, ActivationSetting(bits=6)):
        images = adapter.generate(labels, seeds)

It registers forward pre-hooks on the quantized Linear/Conv layers (their inputs), forward hooks
on attention Q/K/V projections (their outputs) and, for the softmax output, a wrapping attention
processor (:mod:`qua2.activations.attention`). Everything is removed and the original
processors restored on exit — also when the body raises — so the model is bit-exact afterwards.
Weights are never touched, so this composes with weight quantization (``qua2.quant``): both
contexts can be active at once, in either order. With ``bos_fp`` (MixDQ) the first-token
cross-attention K/V are recomputed from a snapshot of the projection weights taken on entry:
enter this context *outside* the weight-quantization one to keep them in full FP.

:func:`observing` installs the same sites with an observer instead of a quantizer; calibration
(:mod:`qua2.activations.range_fitting`) uses it so that observed and quantized tensors are
the same.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from qua2.activations.attention import ProbsQuantProcessor, swap_processor
from qua2.activations.quantizers import fake_quant_per_token, fake_quant_static
from qua2.activations.ranges import ActivationRanges
from qua2.activations.setting import ActivationSetting
from qua2.activations.sites import INPUT, PROBS, QKV, Site, plan_sites
from qua2.errors import Qua2Error

SiteFn = Callable[[Site, torch.Tensor], torch.Tensor]


@dataclass
class ActivationHandle:
    """What a running activation-quantization context exposes: its sites and the current step."""

    sites: list[Site]
    setting: ActivationSetting
    #: The timestep of the denoiser call in progress (read from its ``timestep`` argument).
    timestep: torch.Tensor | None = None


def _apply(site: Site, x: torch.Tensor, fn: SiteFn) -> torch.Tensor:
    """Apply ``fn`` to the quantized part of ``x``: all of it, or all but the BOS token."""
    if site.bos and x.ndim == 3 and x.shape[1] > 1:
        return torch.cat([x[:, :1], fn(site, x[:, 1:])], dim=1)
    return fn(site, x)


def _input_hook(site: Site, fn: SiteFn) -> Callable:
    def hook(_mod: nn.Module, args: tuple) -> tuple | None:
        if not args or not torch.is_tensor(args[0]) or not args[0].is_floating_point():
            return None
        return (_apply(site, args[0], fn), *args[1:])
    return hook


def _output_hook(out_site: Site | None, bos_weights: tuple | None, fn: SiteFn) -> Callable:
    """Forward hook of a Q/K/V projection: FP BOS row (MixDQ), then the output quantizer."""
    def hook(_mod: nn.Module, args: tuple, out: Any) -> Any:
        if not torch.is_tensor(out):
            return None
        if bos_weights is not None and out.ndim == 3 and args[0].ndim == 3 and out.shape[1] > 1:
            # The first token's K/V are what MixDQ precomputes in FP: FP input, FP weights.
            weight, bias = bos_weights
            out = torch.cat([F.linear(args[0][:, :1], weight, bias), out[:, 1:]], dim=1)
        return _apply(out_site, out, fn) if out_site is not None else out
    return hook


def _root_hook(handle: ActivationHandle) -> Callable:
    """Remember the timestep of each denoiser call (2nd positional or ``timestep`` keyword)."""
    def hook(_mod: nn.Module, args: tuple, kwargs: dict) -> None:
        t = kwargs.get("timestep", args[1] if len(args) > 1 else None)
        handle.timestep = t if torch.is_tensor(t) or t is None else torch.as_tensor(t)
    return hook


def _bos_snapshot(subs: dict[str, nn.Module], sites: Sequence[Site]) -> dict[str, tuple]:
    """FP copies of the cross-attention K/V projection weights whose first token stays FP."""
    names = {s.module for s in sites if s.bos and s.kind in (INPUT, QKV)}
    out = {}
    for name in names:
        layer = cast(nn.Linear, subs[name])  # a cross-attention K/V projection
        bias = None if layer.bias is None else layer.bias.detach().clone()
        out[name] = (layer.weight.detach().clone(), bias)
    return out


@contextmanager
def install_sites(module: nn.Module, handle: ActivationHandle,
                  fn: SiteFn) -> Iterator[ActivationHandle]:
    """Install ``fn`` on every site of ``handle`` in ``module``; remove everything on exit."""
    subs = dict(module.named_modules())
    sites = handle.sites
    removers: list[Callable[[], Any]] = []
    try:
        removers.append(module.register_forward_pre_hook(_root_hook(handle),
                                                         with_kwargs=True).remove)
        bos = _bos_snapshot(subs, sites)
        outs = {s.module: s for s in sites if s.kind == QKV}
        for site in (s for s in sites if s.kind == INPUT):
            pre_hook = _input_hook(site, fn)
            removers.append(subs[site.module].register_forward_pre_hook(pre_hook).remove)
        for name in sorted(set(outs) | set(bos)):
            hook = _output_hook(outs.get(name), bos.get(name), fn)
            removers.append(subs[name].register_forward_hook(hook).remove)
        for site in (s for s in sites if s.kind == PROBS):
            attn = subs[site.module]
            previous = swap_processor(
                attn, ProbsQuantProcessor(attn.processor, functools.partial(fn, site)))
            removers.append(functools.partial(swap_processor, attn, previous))
        yield handle
    finally:
        for remove in reversed(removers):
            remove()


def _static_fn(handle: ActivationHandle, ranges: ActivationRanges) -> SiteFn:
    cache: dict[tuple[str, int, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}

    def fn(site: Site, x: torch.Tensor) -> torch.Tensor:
        group = 0
        if ranges.groups > 1:
            if handle.timestep is None:
                raise Qua2Error("per-timestep-group ranges need the timestep; call the denoiser "
                                "with its timestep argument (2nd positional or timestep=).")
            group = ranges.group_of(handle.timestep)
        key = (site.name, group, x.device)
        if key not in cache:
            lo, hi = ranges.lookup(site.name, group)
            cache[key] = (lo.to(x.device), hi.to(x.device))
        return fake_quant_static(x, *cache[key], site.bits)
    return fn


def _dynamic_fn(site: Site, x: torch.Tensor) -> torch.Tensor:
    return fake_quant_per_token(x, site.bits, site.dim)


def _check_ranges(sites: Sequence[Site], ranges: ActivationRanges | None) -> ActivationRanges:
    if ranges is None:
        raise Qua2Error("static activation quantization needs calibrated ranges; pass ranges= "
                        "from qua2.activations.calibrate_ranges(...).")
    missing = [s.name for s in sites if s.name not in ranges]
    if missing:
        raise Qua2Error(f"the calibrated ranges lack {len(missing)} site(s) (e.g. {missing[0]!r});"
                        " calibrate again with the same layers and setting.")
    return ranges


@contextmanager
def quantized_activations(module: nn.Module, layers: Sequence[str] | None = None,
                          setting: ActivationSetting | None = None,
                          ranges: ActivationRanges | None = None) -> Iterator[ActivationHandle]:
    """Fake-quantize the activations of ``layers`` of ``module`` while the context is open.

    ``layers=None`` quantizes the inputs of every Linear/Conv layer. ``setting`` defaults to
    dynamic per-token A8; static settings need ``ranges`` (see ``calibrate_ranges``).
    """
    setting = setting or ActivationSetting()
    handle = ActivationHandle(plan_sites(module, layers, setting), setting)
    fn: SiteFn = _dynamic_fn
    if setting.mode == "static":
        fn = _static_fn(handle, _check_ranges(handle.sites, ranges))
    with install_sites(module, handle, fn):
        yield handle


@contextmanager
def observing(module: nn.Module, layers: Sequence[str] | None, setting: ActivationSetting,
              record: Callable[[Site, torch.Tensor, torch.Tensor | None], None],
              ) -> Iterator[ActivationHandle]:
    """Call ``record(site, tensor, timestep)`` on every site's FP tensor; change nothing."""
    handle = ActivationHandle(plan_sites(module, layers, setting), setting)

    def fn(site: Site, x: torch.Tensor) -> torch.Tensor:
        record(site, x, handle.timestep)
        return x

    with install_sites(module, handle, fn):
        yield handle
