"""Figure builders for surrogates and explanations: data in, matplotlib ``Figure`` out.

Every builder uses :func:`qua2.plots.figure_canvas` (an Agg canvas, no pyplot state) and never shows
anything; the ``explain`` stage saves each figure with the CSV of the data behind it. Colours
come from :mod:`qua2.explain.colours`, so an op type looks the same in every figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qua2.explain.colours import component_colour, option_colour, role_colours, stage_colour
from qua2.plots import figure_canvas as _figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from qua2.explain.attributions import LayerExplanation

_ABBREVIATIONS = (("transformer_blocks.", "tb"), ("single_transformer_blocks.", "stb"),
                  ("down_blocks.", "down"), ("up_blocks.", "up"), ("mid_block.", "mid."),
                  ("attentions.", "attn"), ("resnets.", "res"),
                  ("norm1.emb.timestep_embedder.", "t_emb."), ("timestep_embedder.", "t_emb."),
                  ("time_embedding.", "t_emb."), (".to_out.0", ".to_out"))


def short_name(layer: str, limit: int = 34) -> str:
    """A readable label for a long qualified layer name (abbreviated, middle elided)."""
    name = layer
    for long, short in _ABBREVIATIONS:
        name = name.replace(long, short)
    if len(name) <= limit:
        return name
    parts = name.split(".")
    return ".".join(parts[:1] + ["…"] + parts[-2:]) if len(parts) > 3 else name[-limit:]


# --------------------------------------------------------------------------- surrogates
def predicted_vs_measured_figure(oof: pd.DataFrame, summaries: Mapping[str, Mapping],
                                 target: str) -> Figure:
    """Held-out predictions vs measured values, one panel per surrogate, with ρ and τ."""
    kinds = [k for k in summaries if k in set(oof["surrogate"])]
    figure = _figure(3.6 * max(1, len(kinds)) + 0.4, 3.8)
    axes = figure.subplots(1, max(1, len(kinds)), squeeze=False)[0]
    for axis, kind in zip(axes, kinds):
        part = oof[oof["surrogate"] == kind]
        axis.scatter(part["y"], part["pred"], s=10, alpha=0.6, color="#1f77b4", lw=0)
        low = float(min(part["y"].min(), part["pred"].min()))
        high = float(max(part["y"].max(), part["pred"].max()))
        axis.plot([low, high], [low, high], color="#7f7f7f", lw=1, ls="--")
        s = summaries[kind]
        axis.set_title(f"{kind}: ρ = {s['spearman_mean']:.3f}, τ = {s['kendall_mean']:.3f}",
                       fontsize=10)
        axis.set_xlabel(f"measured {target}")
        axis.set_ylabel(f"predicted {target} (held-out)")
    figure.suptitle("Surrogates on held-out folds (mean ρ, τ over folds)", fontsize=11)
    return figure


def learning_curve_figure(curve: pd.DataFrame) -> Figure:
    """Held-out Spearman ρ vs number of training configs, per surrogate (± std over folds)."""
    figure = _figure(5.2, 3.6)
    axis = figure.subplots()
    for kind, part in curve.groupby("surrogate", sort=False):
        axis.errorbar(part["n_train"], part["spearman_mean"], yerr=part["spearman_std"],
                      marker="o", ms=4, capsize=3, label=str(kind))
    axis.set_xlabel("training configurations")
    axis.set_ylabel("held-out Spearman ρ")
    axis.set_title("Learning curve", fontsize=11)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=9)
    return figure


# --------------------------------------------------------------------------- SHAP
def _swarm_offsets(x: np.ndarray, width: float = 0.38, bins: int = 60) -> np.ndarray:
    """Vertical offsets that stack points with similar x (a beeswarm)."""
    if len(x) == 0 or np.ptp(x) == 0:
        return np.zeros(len(x))
    index = np.minimum(((x - x.min()) / np.ptp(x) * bins).astype(int), bins - 1)
    offsets = np.zeros(len(x))
    counts = np.bincount(index, minlength=bins)
    seen = np.zeros(bins, dtype=int)
    for i in np.argsort(x, kind="stable"):
        k = seen[index[i]]
        seen[index[i]] += 1
        offsets[i] = ((k + 1) // 2) * (1 if k % 2 else -1)
    scale = max(1, counts.max() // 2)
    return offsets / scale * width


def beeswarm_figure(lexp: LayerExplanation, table: pd.DataFrame, top: int = 20) -> Figure:
    """SHAP beeswarm of the ``top`` layers by mean |SHAP|; colour = the layer's bit-width."""
    from matplotlib import colors

    importance = lexp.importance().head(top)
    layers = list(importance.index)[::-1]  # most important at the top
    values, bits = np.asarray(lexp.values), np.asarray(lexp.explanation.data)
    figure = _figure(7.5, 0.32 * len(layers) + 1.4)
    axis = figure.subplots()
    option_bits = sorted({o.bits for o in lexp.options})
    norm = colors.Normalize(min(option_bits), max(option_bits))
    column = {name: i for i, name in enumerate(lexp.layers)}
    for row, layer in enumerate(layers):
        j = column[layer]
        quantized = bits[:, j] < 16
        y = row + _swarm_offsets(values[:, j])
        axis.scatter(values[~quantized, j], y[~quantized], s=9, color="#bbbbbb", lw=0)
        points = axis.scatter(values[quantized, j], y[quantized], c=bits[quantized, j],
                              cmap="coolwarm", norm=norm, s=9, lw=0, alpha=0.85)
    axis.axvline(0, color="#7f7f7f", lw=0.8)
    roles = table.reindex(layers)["role"].tolist()
    axis.set_yticks(range(len(layers)),
                    [f"{short_name(n)}  [{r}]" for n, r in zip(layers, roles)], fontsize=8)
    axis.set_ylim(-0.6, len(layers) - 0.4)
    axis.set_xlabel(f"SHAP value (impact on predicted target), {lexp.surrogate}")
    axis.set_title(f"Top {len(layers)} layers by mean |SHAP|", fontsize=11)
    bar = figure.colorbar(points, ax=axis, ticks=option_bits, pad=0.01, aspect=30)
    bar.set_label("bits of the layer")
    return figure


def importance_bars_figure(panels: Mapping[str, pd.Series], table: pd.DataFrame,
                           top: int = 16) -> Figure:
    """Horizontal bars of mean |SHAP| per group, one panel per view (role, component, block).

    Bars are coloured by component (roles in shades of it, blocks by stage)."""
    names = list(panels)
    height = 0.28 * max(min(len(s), top) for s in panels.values()) + 1.4
    figure = _figure(4.4 * len(names), max(3.0, height))
    axes = figure.subplots(1, len(names), squeeze=False)[0]
    roles = role_colours(table["role"])
    stage_of_block = table.groupby("block")["stage"].first()
    for axis, name in zip(axes, names):
        series = panels[name].head(top)[::-1]
        if name == "role":
            colours = [roles.get(g, "#7f7f7f") for g in series.index]
        elif name == "block":
            colours = [stage_colour(stage_of_block.get(g, "")) for g in series.index]
        else:
            colours = [component_colour(g) for g in series.index]
        counts = table[name].value_counts() if name in table else pd.Series(dtype=int)
        labels = [f"{short_name(str(g), 26)} ({counts.get(g, 0)})" for g in series.index]
        axis.barh(range(len(series)), series.to_numpy(), color=colours)
        axis.set_yticks(range(len(series)), labels, fontsize=8)
        axis.set_xlabel("mean |SHAP| of the group")
        axis.set_title({"role": "by op type (role)", "component": "by component",
                        "block": "by block (colour: stage)"}.get(name, f"by {name}"),
                       fontsize=10)
    figure.suptitle("Layer importance grouped (number of layers in brackets)", fontsize=11)
    return figure


def option_preference_figure(preference: pd.DataFrame) -> Figure:
    """Heat map of mean SHAP per (op type, option), centred per op type; ★ marks the option
    the explanation favours for that op type."""
    pivot = preference.pivot(index="group", columns="option", values="mean_shap")
    options = preference.drop_duplicates("option").sort_values(["method", "bits"])["option"]
    pivot = pivot[list(options)]
    centred = pivot.sub(pivot.mean(axis=1), axis=0)
    figure = _figure(1.0 * len(pivot.columns) + 3.2, 0.36 * len(pivot) + 1.6)
    axis = figure.subplots()
    limit = float(np.nanmax(np.abs(centred.to_numpy()))) or 1.0
    image = axis.imshow(centred.to_numpy(), cmap="RdBu", vmin=-limit, vmax=limit,
                        aspect="auto")
    axis.set_xticks(range(len(pivot.columns)), pivot.columns, rotation=35, ha="right",
                    fontsize=8)
    axis.set_yticks(range(len(pivot)), pivot.index, fontsize=8)
    best = np.nanargmax(centred.to_numpy(), axis=1)
    for row, col in enumerate(best):
        axis.text(col, row, "★", ha="center", va="center", fontsize=9, color="black")
    bar = figure.colorbar(image, ax=axis, pad=0.01)
    bar.set_label("mean SHAP vs op-type mean")
    axis.set_title("Which method × bits the explanation favours per op type", fontsize=10)
    return figure


def option_share_figure(best: pd.DataFrame, options: list[Any]) -> Figure:
    """Stacked bars: the method × bits mix of the best sub-graph variants per sub-graph kind."""
    rows = [(kind, key) for kind, variant in zip(best["kind"], best["variant"])
            for key in variant.split("|")]
    counts = pd.crosstab(pd.Series([r[0] for r in rows], name="kind"),
                         pd.Series([r[1] for r in rows], name="option"))
    share = counts.div(counts.sum(axis=1), axis=0)
    figure = _figure(6.4, 0.36 * len(share) + 1.8)
    axis = figure.subplots()
    left = np.zeros(len(share))
    all_bits = [o.bits for o in options]
    for option in options:
        if option.key not in share:
            continue
        width = share[option.key].to_numpy()
        axis.barh(range(len(share)), width, left=left, label=option.key,
                  color=option_colour(option.method, option.bits, all_bits))
        left += width
    axis.set_yticks(range(len(share)), share.index, fontsize=8)
    axis.set_xlabel("share of layers in the best variants")
    axis.set_xlim(0, 1)
    axis.legend(fontsize=7, ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    axis.set_title("Method × bits of the top-scoring sub-graph variants", fontsize=10)
    return figure


# --------------------------------------------------------------------------- sensitivity
def sensitivity_boxes_figure(scores: pd.DataFrame) -> Figure:
    """Qua²SeDiMo-style box plots of sub-graph variant scores by block index and by op type
    (sub-graph kind); higher scores are better variants, wider boxes more sensitive parts."""
    figure = _figure(11.0, 4.2)
    left, right = figure.subplots(1, 2, width_ratios=[1.4, 1.0])
    blocks = sorted(scores["block_index"].unique())
    data = [scores.loc[scores["block_index"] == b, "score"].to_numpy() for b in blocks]
    names = scores.drop_duplicates("block_index").set_index("block_index")["block"]
    # a global sub-graph has one kind (its colour); a block mixes kinds (neutral grey)
    mixes = [scores.loc[scores["block_index"] == b, "kind"].unique() for b in blocks]
    _boxes(left, data, [component_colour(k[0]) if len(k) == 1 else "#dddddd" for k in mixes])
    left.set_xticks(range(1, len(blocks) + 1),
                    [f"{b}: {short_name(str(names[b]), 18)}" for b in blocks],
                    rotation=40, ha="right", fontsize=8)
    left.set_ylabel("variant score (standardised)")
    left.set_title("by block index", fontsize=10)
    kinds = list(scores.groupby("kind")["score"].median().sort_values().index)
    _boxes(right, [scores.loc[scores["kind"] == k, "score"].to_numpy() for k in kinds],
           [component_colour(k) for k in kinds])
    right.set_xticks(range(1, len(kinds) + 1), kinds, rotation=40, ha="right", fontsize=8)
    right.set_title("by op type (sub-graph kind)", fontsize=10)
    figure.suptitle("Quantifiable sensitivity: scores of every sub-graph variant", fontsize=11)
    return figure


def _boxes(axis: Axes, data: list[np.ndarray], colours: list[str]) -> None:
    """Box plots without fliers, each box filled with its colour."""
    boxes = axis.boxplot(data, patch_artist=True, showfliers=False, widths=0.6,
                         medianprops={"color": "black"})
    for patch, colour in zip(boxes["boxes"], colours):
        patch.set_facecolor(colour)


def importance_vs_sweep_figure(joined: pd.DataFrame, stats: Mapping[str, Any]) -> Figure:
    """Mean |SHAP| per layer vs its measured one-at-a-time (sweep) quality loss."""
    figure = _figure(5.6, 4.2)
    axis = figure.subplots()
    for component, part in joined.groupby("component"):
        axis.scatter(part["measured"], part["shap"], s=22, label=str(component),
                     color=component_colour(component), edgecolor="white", lw=0.4)
    axis.set_xlabel("measured loss when quantized alone (sweep)")
    axis.set_ylabel("mean |SHAP| in mixed configs")
    rho, tau = stats.get("spearman"), stats.get("kendall")
    text = (f"ρ = {rho:.3f}, τ = {tau:.3f} over {len(joined)} layers" if rho is not None
            else "too few layers")
    axis.set_title(f"Explanation vs measurement: {text}", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="best")
    return figure
