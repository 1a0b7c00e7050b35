"""Figure builders of :mod:`analysis.insights`: each takes tables and returns a Figure."""

from __future__ import annotations

import textwrap
from typing import Any

import numpy as np
import pandas as pd

from qua2.explain.colours import option_colour, role_colours, stage_colour
from qua2.plots import figure_canvas
from qua2.specs import QuantOption


def _wrap(text: str, width: int = 80) -> str:
    return "\n".join(textwrap.wrap(text, width))


def _bars(ax: Any, frame: pd.DataFrame, labels: list[str], colours: list[Any],
          horizontal: bool = False) -> None:
    values = frame["mean_abs_shap"].to_numpy()
    errors = np.vstack([values - frame["lo"].to_numpy(), frame["hi"].to_numpy() - values])
    position = np.arange(len(frame))
    if horizontal:
        ax.barh(position, values, xerr=errors, color=colours, capsize=2, ecolor="#444")
        ax.set_yticks(position, labels)
        ax.invert_yaxis()
    else:
        ax.bar(position, values, yerr=errors, color=colours, capsize=2, ecolor="#444")
        ax.set_xticks(position, labels, rotation=60, ha="right", fontsize=8)


def sensitivity_by_block(blocks: pd.DataFrame, sweep: pd.DataFrame | None, title: str,
                         source: str) -> Any:
    """Bars per block in execution order: mean |Σ SHAP| with 95% CI; optional sweep panel."""
    blocks = blocks.sort_values("block_index")
    panels = 2 if sweep is not None and len(sweep) else 1
    fig = figure_canvas(max(6.5, 0.45 * len(blocks) + 2.5), 3.6 * panels + 0.6)
    axes = np.atleast_1d(fig.subplots(panels, 1, sharex=True))
    labels = [f"{g} [{int(i)}]" for g, i in zip(blocks["group"], blocks["block_index"])]
    colours = [stage_colour(s) for s in blocks.get("stage", ["trunk"] * len(blocks))]
    _bars(axes[0], blocks, labels, colours)
    axes[0].set_ylabel("mean |SHAP| of the block\n(objective units)")
    axes[0].set_title("Sensitivity by block (execution order)\n" + _wrap(source), fontsize=9)
    if panels == 2:
        sweep = sweep.set_index("group").reindex(blocks["group"])
        axes[1].bar(np.arange(len(blocks)), sweep["loss"].to_numpy(), color=colours)
        axes[1].set_xticks(np.arange(len(blocks)), labels, rotation=60, ha="right", fontsize=8)
        axes[1].set_ylabel("measured one-at-a-time\nloss (sum over layers)")
        axes[1].set_title("Sweep: each layer alone quantized, the rest FP (mean over options)",
                          fontsize=9)
    _stage_legend(axes[0], blocks.get("stage"))
    fig.suptitle(title)
    return fig


def _stage_legend(ax: Any, stages: Any) -> None:
    from matplotlib.patches import Patch

    if stages is None:
        return
    seen = list(dict.fromkeys(stages))
    ax.legend(handles=[Patch(color=stage_colour(s), label=s) for s in seen], title="stage",
              fontsize=8, title_fontsize=8, loc="upper right")


def sensitivity_by_role(roles: pd.DataFrame, title: str, source: str) -> Any:
    """Horizontal bars per op type: total (sum of its layers) and per layer."""
    colours_of = role_colours(roles["group"])
    fig = figure_canvas(10, 0.32 * len(roles) + 1.8)
    left, right = fig.subplots(1, 2, sharey=True)
    colours = [colours_of[g] for g in roles["group"]]
    labels = [f"{g} ({n})" for g, n in zip(roles["group"], roles["layers"])]
    _bars(left, roles, labels, colours, horizontal=True)
    left.set_xlabel("mean |Σ SHAP| of the op type's layers (95% CI)")
    left.set_title("total", fontsize=9)
    right.barh(np.arange(len(roles)), roles["per_layer"], color=colours)
    right.set_xlabel("mean |SHAP| per layer")
    right.set_title("per layer (op types differ in layer count)", fontsize=9)
    fig.suptitle(f"{title}\nSensitivity by op type (layers in brackets)\n{_wrap(source, 120)}",
                 fontsize=10)
    return fig


def option_preference_heatmap(pref: pd.DataFrame, title: str) -> Any:
    """Op types × options: mean SHAP of a layer cell (positive = better); ★ = best option
    of the op type."""
    table = pref.pivot(index="group", columns="option", values="mean_shap")
    options = sorted(table.columns, key=lambda k: (QuantOption.parse(k).bits, k))
    table = table[options]
    limit = np.nanmax(np.abs(table.to_numpy())) or 1.0
    fig = figure_canvas(1.25 * len(options) + 3.5, 0.38 * len(table) + 1.9)
    ax = fig.subplots()
    image = ax.imshow(table.to_numpy(), cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(len(options)), options, rotation=30, ha="right")
    ax.set_yticks(range(len(table)), table.index)
    best = np.nanargmax(table.to_numpy(), axis=1)
    for i, row in enumerate(table.to_numpy()):
        for j, value in enumerate(row):
            if np.isfinite(value):
                mark = " ★" if j == best[i] else ""
                colour = "white" if abs(value) > 0.6 * limit else "black"
                ax.text(j, i, f"{value:.2g}{mark}", ha="center", va="center", fontsize=7,
                        color=colour)
    fig.colorbar(image, ax=ax, label="mean SHAP per layer cell (+ = better)")
    ax.set_title(f"{title}\nWhich method × bits each op type prefers (★ best)", fontsize=10)
    return fig


def pareto(sampled: pd.DataFrame, verified: pd.DataFrame | None, primary: str,
           lower_is_better: bool, fp_value: float | None, title: str) -> Any:
    """Left: every sampled config (front, uniform anchors); right: verified candidates."""
    panels = 2 if verified is not None and len(verified) else 1
    fig = figure_canvas(6.2 * panels, 4.6)
    axes = np.atleast_1d(fig.subplots(1, panels))
    _sampled_panel(axes[0], sampled, primary, lower_is_better, fp_value)
    if panels == 2:
        _verified_panel(axes[1], verified, primary)
    fig.suptitle(title)
    return fig


def front(frame: pd.DataFrame, metric: str, lower_is_better: bool) -> pd.DataFrame:
    """Configs no other config beats on both fewer bits and better ``metric``."""
    sign = 1 if lower_is_better else -1
    ordered = frame.sort_values(["avg_bits", metric], ascending=[True, lower_is_better])
    best, keep = np.inf, []
    for index, value in zip(ordered.index, sign * ordered[metric].to_numpy()):
        if value < best:
            best = value
            keep.append(index)
    return frame.loc[keep]


def _sampled_panel(ax: Any, sampled: pd.DataFrame, primary: str, lower: bool,
                   fp_value: float | None) -> None:
    random = sampled[sampled["kind"] == "random"]
    ax.scatter(random["avg_bits"], random[primary], s=10, alpha=0.5, color="#7f7f7f",
               label=f"random configs ({len(random)})")
    edge = front(sampled, primary, lower)
    ax.plot(edge["avg_bits"], edge[primary], "-o", color="#d62728", ms=3,
            label="Pareto front (sampled)")
    for _, row in sampled[sampled["kind"] == "uniform"].iterrows():
        column = next((c for c in row.index if c.startswith("layer:")), None)
        key = row[column] if column else "uniform"
        quant = QuantOption.parse(key)
        ax.scatter(row["avg_bits"], row[primary], marker="s", s=40,
                   color=option_colour(quant.method, quant.bits), edgecolor="black", zorder=3)
        ax.annotate(key, (row["avg_bits"], row[primary]), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    if fp_value is not None and np.isfinite(fp_value):
        ax.axhline(fp_value, color="black", ls="--", lw=1, label=f"FP ({fp_value:.3g})")
    ax.set_xlabel("average bits per quantized weight (overheads included)")
    ax.set_ylabel(f"{primary} ({'lower' if lower else 'higher'} is better)")
    ax.set_title("Sampled configs (sampling seeds); ■ = uniform anchors", fontsize=9)
    ax.legend(fontsize=8)


def _verified_panel(ax: Any, table: pd.DataFrame, primary: str) -> None:
    styles = {"qua2": ("*", "#2ca02c", 120), "baseline": ("o", "#1f77b4", 35),
              "anchor": ("s", "#ff7f0e", 35)}
    for kind, (marker, colour, size) in styles.items():
        rows = table[table["kind"] == kind]
        if not len(rows):
            continue
        errors = np.vstack([rows[primary] - rows[f"{primary}_lo"],
                            rows[f"{primary}_hi"] - rows[primary]])
        ax.errorbar(rows["avg_bits"], rows[primary], yerr=np.clip(errors, 0, None), fmt="none",
                    ecolor=colour, alpha=0.5, capsize=2)
        ax.scatter(rows["avg_bits"], rows[primary], marker=marker, s=size, color=colour,
                   edgecolor="black", linewidths=0.5, zorder=3, label=kind)
        for _, row in rows.iterrows():
            if kind != "baseline":
                ax.annotate(row["name"], (row["avg_bits"], row[primary]), fontsize=7,
                            xytext=(4, -9), textcoords="offset points")
    fp = table[table["kind"] == "reference"]
    if len(fp):
        value = float(fp[primary].iloc[0])
        ax.axhline(value, color="black", ls="--", lw=1, label=f"FP ({value:.3g})")
        low, high = fp[f"{primary}_lo"].iloc[0], fp[f"{primary}_hi"].iloc[0]
        if np.isfinite(low) and np.isfinite(high):
            ax.axhspan(low, high, color="black", alpha=0.07)
    ax.set_xlabel("average bits per quantized weight")
    ax.set_ylabel(f"{primary} (verification seeds, 95% CI)")
    ax.set_title("Search picks and baselines, verified on held-out seeds", fontsize=9)
    ax.legend(fontsize=8)
