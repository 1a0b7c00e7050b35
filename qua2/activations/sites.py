"""Where activations get quantized: the *sites* of a module under an :class:`ActivationSetting`.

A site is one tensor that is fake-quantized on every forward call, named so that calibrated
ranges can be stored by name:

* ``"<layer>"`` (kind ``input``) — the input of a Linear/Conv weight layer, taken by a forward
  pre-hook. Per-token reductions use the last axis for Linear and axis 1 (channels) for Conv.
* ``"<attn>.to_q:out"`` … (kind ``qkv``) — the output of an attention's Q/K/V projection,
  taken by a forward hook.
* ``"<attn>:probs"`` (kind ``probs``) — the softmax output of an attention, taken inside a
  temporarily installed attention processor (:mod:`qua2.activations.attention`).

Attention modules are found by duck typing (``to_q``/``to_k``/``to_v`` plus a ``processor``),
so every diffusers family works without importing diffusers here.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from torch import nn

from qua2.activations.setting import ActivationSetting
from qua2.errors import Qua2Error
from qua2.quant.layers import quantizable_layers

INPUT, QKV, PROBS = "input", "qkv", "probs"
_PROJECTIONS = ("to_q", "to_k", "to_v")


@dataclass(frozen=True)
class Site:
    """One quantized tensor: its name, kind, the module carrying the hook and its bit-width."""

    name: str
    kind: str
    module: str
    bits: int
    dim: int = -1
    #: MixDQ: the first (BOS) token of this cross-attention K/V tensor stays in FP.
    bos: bool = False


def attention_modules(module: nn.Module) -> dict[str, nn.Module]:
    """Every attention sub-module (has ``to_q``/``to_k``/``to_v`` and a ``processor``)."""
    return {
        name: sub for name, sub in module.named_modules()
        if all(isinstance(getattr(sub, p, None), nn.Module) for p in _PROJECTIONS)
        and hasattr(sub, "processor")
    }


def _matches(name: str, pattern: str) -> bool:
    """Exact name, ``fnmatch`` pattern, or a module prefix (a whole block)."""
    return name == pattern or name.startswith(pattern + ".") or fnmatch.fnmatchcase(name, pattern)


def kept_in_fp(names: Iterable[str], patterns: Sequence[str]) -> set[str]:
    """The subset of ``names`` that ``patterns`` keep in FP; unknown patterns are an error."""
    names = list(names)
    kept: set[str] = set()
    for pattern in patterns:
        hits = {n for n in names if _matches(n, pattern)}
        if not hits:
            raise Qua2Error(f"keep_fp names {pattern!r}, which matches no layer of the model; "
                            "use a qualified layer name or a pattern such as 'proj_out*'.")
        kept |= hits
    return kept


def _check_layers(layers: Sequence[str], known: Sequence[str]) -> None:
    known_set = set(known)
    for name in layers:
        if name not in known_set:
            close = [k for k in known if k.split(".")[-1] == name.split(".")[-1]][:3]
            hint = f" (similar: {', '.join(close)})" if close else ""
            raise Qua2Error(
                f"activation quantization names layer {name!r}, which is not a Linear/Conv "
                f"layer of the model{hint}."
            )


def plan_sites(module: nn.Module, layers: Sequence[str] | None,
               setting: ActivationSetting) -> list[Site]:
    """All sites of ``module`` for ``setting``; ``layers=None`` means every Linear/Conv layer."""
    known = quantizable_layers(module)
    layers = list(known if layers is None else layers)
    _check_layers(layers, known)
    attns = attention_modules(module)
    kept = kept_in_fp([*known, *attns], setting.keep_fp)
    active = [name for name in layers if name not in kept]
    bos_layers = {f"{a}.{p}" for a, m in attns.items() for p in ("to_k", "to_v")
                  if setting.bos_fp and getattr(m, "is_cross_attention", False)}
    subs = dict(module.named_modules())
    sites = [
        Site(name, INPUT, name, setting.bits, dim=-1 if isinstance(subs[name], nn.Linear) else 1,
             bos=name in bos_layers)
        for name in active
    ]
    active_set = set(active)
    for attn_name in attns:
        if attn_name in kept:
            continue
        projections = [f"{attn_name}.{p}" for p in _PROJECTIONS]
        if setting.qkv_bits is not None:
            sites += [Site(f"{proj}:out", QKV, proj, setting.qkv_bits, bos=proj in bos_layers)
                      for proj in projections if proj in active_set]
        if setting.softmax_bits is not None and active_set.intersection(projections):
            sites.append(Site(f"{attn_name}:probs", PROBS, attn_name, setting.softmax_bits))
    return sites
