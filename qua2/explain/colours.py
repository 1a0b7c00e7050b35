"""One colour per op type everywhere: components, roles, stages and options.

Colours are fixed functions of the labels (the graph vocabularies' order), not of which labels
a figure happens to show, so ``self_attn`` has the same hue in every figure of every study.
Roles (``self_attn.q``, ``self_attn.k`` …) take their component's hue in different shades;
options take a hue per method and a shade per bit-width.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: One hue per component of qua2.graph.vocab.ROLE_COMPONENTS (``other`` is grey).
_COMPONENT_HUES = {
    "self_attn": "#1f77b4", "cross_attn": "#17becf", "joint_attn": "#9edae5",
    "ff": "#ff7f0e", "adaln": "#2ca02c", "norm": "#98df8a", "residual": "#c7c7c7",
    "skip": "#c49c94", "resnet": "#9467bd", "sampler": "#c5b0d5", "transformer": "#aec7e8",
    "time_embed": "#d62728", "text_embed": "#e377c2", "class_embed": "#f7b6d2",
    "cond_embed": "#ff9896", "pos_embed": "#dbdb8d", "patch_in": "#8c564b",
    "patch_out": "#bcbd22", "input": "#7f7f7f", "output": "#7f7f7f", "other": "#7f7f7f",
}
_STAGE_HUES = {"embed": "#8c564b", "down": "#1f77b4", "mid": "#9467bd", "up": "#ff7f0e",
               "trunk": "#2ca02c", "head": "#bcbd22"}
_METHOD_HUES = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _rgb(colour: str) -> tuple[float, float, float]:
    colour = colour.lstrip("#")
    return tuple(int(colour[i:i + 2], 16) / 255 for i in (0, 2, 4))  # type: ignore[return-value]


def shade(colour: str, amount: float) -> tuple[float, float, float]:
    """Lighter for ``amount > 0``, darker for ``amount < 0`` (−1 … 1)."""
    r, g, b = _rgb(colour)
    if amount >= 0:
        return (r + (1 - r) * amount, g + (1 - g) * amount, b + (1 - b) * amount)
    return (r * (1 + amount), g * (1 + amount), b * (1 + amount))


def component_colour(component: str) -> str:
    return _COMPONENT_HUES.get(str(component).split(".")[0], _COMPONENT_HUES["other"])


def role_colours(roles: Iterable[str]) -> dict[str, Any]:
    """Roles in their component's hue; parts of one component in evenly spread shades."""
    roles = sorted(set(map(str, roles)))
    out: dict[str, Any] = {}
    by_component: dict[str, list[str]] = {}
    for role in roles:
        by_component.setdefault(role.split(".")[0], []).append(role)
    for component, members in by_component.items():
        base = component_colour(component)
        for i, role in enumerate(members):
            amount = 0.0 if len(members) == 1 else -0.35 + 0.8 * i / (len(members) - 1)
            out[role] = shade(base, amount)
    return out


def stage_colour(stage: str) -> str:
    return _STAGE_HUES.get(str(stage), "#7f7f7f")


def option_colour(method: str, bits: int, all_bits: Iterable[int] = (3, 4)) -> Any:
    """A hue per method (the method registry's order), darker for fewer bits."""
    from qua2.quant.methods import METHODS

    known = list(METHODS)
    index = known.index(method) if method in known else len(known) + sum(map(ord, method)) % 3
    widths = sorted(set(all_bits))
    position = widths.index(bits) / max(1, len(widths) - 1) if bits in widths else 0.5
    return shade(_METHOD_HUES[index % len(_METHOD_HUES)], -0.25 + 0.55 * position)
