"""Figure builders of :mod:`analysis.compare_studies`: one panel per study."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from qua2.explain.colours import option_colour, role_colours
from qua2.plots import figure_canvas


def _panels(count: int, width: float, height: float, sharey: bool = False) -> tuple[Any, Any]:
    fig = figure_canvas(max(width * count, 8.0), height)
    axes = np.atleast_1d(fig.subplots(1, count, sharey=sharey, squeeze=False)[0])
    return fig, axes


def _colour(method: str, bits: str) -> Any:
    base = "kmeans_c" if method == "kmeans" else method
    return option_colour(base, 3 if bits in ("3", "all") else 4)


def method_effects(effects: dict[str, pd.DataFrame], titles: dict[str, str],
                   objective: str) -> Any:
    """Horizontal error bars: change in objective per +10 % of layers moved from uaq."""
    rows = max(len(e) for e in effects.values())
    fig, axes = _panels(len(effects), 5.6, 0.36 * rows + 2.2)
    for ax, (name, frame) in zip(axes, effects.items()):
        frame = frame.iloc[::-1].reset_index(drop=True)
        y = np.arange(len(frame))
        for i, row in frame.iterrows():
            ax.errorbar(row["effect"], i, xerr=[[row["effect"] - row["lo"]],
                                                [row["hi"] - row["effect"]]],
                        fmt="o", color=_colour(row["method"], str(row["bits"])), capsize=3)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y, frame["contrast"], fontsize=8)
        ax.set_xlabel(f"Δ {objective} per +10 % of layers moved from uaq\n(95% bootstrap CI)")
        ax.set_title(titles[name], fontsize=9)
        ax.text(0.99, 0.01, "→ k-means better", transform=ax.transAxes, ha="right",
                va="bottom", fontsize=7, color="#555")
        ax.text(0.01, 0.01, "uniform better ←", transform=ax.transAxes, ha="left",
                va="bottom", fontsize=7, color="#555")
    fig.suptitle("Method effect: regression of the measured objective on method shares\n"
                 "(adjusted for the low-bit share; 'equal avg bits': for the average bits)",
                 fontsize=10)
    return fig


def binned(bins: dict[str, pd.DataFrame], titles: dict[str, str], objective: str) -> Any:
    """Adjusted objective per quantile bin of the k-means share."""
    fig, axes = _panels(len(bins), 4.8, 3.8)
    for ax, (name, frame) in zip(axes, bins.items()):
        if len(frame):
            errors = np.vstack([frame["residual"] - frame["lo"], frame["hi"] - frame["residual"]])
            ax.errorbar(100 * frame["share_mean"], frame["residual"], yerr=errors, fmt="o-",
                        capsize=3, color="#1f77b4")
            for _, row in frame.iterrows():
                ax.annotate(f"n={int(row['n'])}", (100 * row["share_mean"], row["lo"]),
                            fontsize=7, ha="center", va="top", xytext=(0, -3),
                            textcoords="offset points")
        ax.axhline(0, color="black", lw=0.8)
        ax.margins(y=0.12)
        ax.set_xlabel("layers quantized with k-means (%) — bin mean")
        ax.set_ylabel(f"{objective}, adjusted for low-bit share")
        ax.set_title(titles[name], fontsize=9)
    fig.suptitle("Objective vs k-means share (quartile bins, 95% bootstrap CI)")
    return fig


def anchors(frames: dict[str, pd.DataFrame], titles: dict[str, str], primary: str) -> Any:
    """Uniform anchors: the primary metric per method at each bit-width."""
    fig, axes = _panels(len(frames), 4.8, 3.8)
    for ax, (name, frame) in zip(axes, frames.items()):
        methods = list(dict.fromkeys(frame["method"]))
        bit_values = sorted(frame["bits"].unique())
        width = 0.8 / max(1, len(methods))
        for k, method in enumerate(methods):
            rows = frame[frame["method"] == method]
            x = np.array([bit_values.index(b) for b in rows["bits"]]) + (k - (len(methods) - 1)
                                                                         / 2) * width
            colours = [option_colour(method, b) for b in rows["bits"]]
            errors = np.vstack([rows["value"] - rows["lo"], rows["hi"] - rows["value"]])
            if np.isfinite(errors).all():
                ax.errorbar(x, rows["value"], yerr=errors, fmt="none", ecolor="#444",
                            capsize=3)
            ax.scatter(x, rows["value"], color=colours, s=50, edgecolor="black", zorder=3,
                       label=method)
        ax.set_xticks(range(len(bit_values)), [f"{b} bits" for b in bit_values])
        ax.set_ylabel(f"{primary} of the uniform config")
        source = frame["source"].iloc[0] if len(frame) else "none"
        ax.set_title(f"{titles[name]}\n({source}"
                     + (", 95% CI)" if source == "verified" else ", one evaluation, no CI)"),
                     fontsize=9)
        ax.legend(fontsize=8)
    fig.suptitle("Uniform anchors: every layer on one option")
    return fig


def top_op_types(tables: dict[str, pd.DataFrame], titles: dict[str, str], top: int = 8
                 ) -> Any:
    """Each study's most sensitive op types as a share of total mean |SHAP|."""
    fig, axes = _panels(len(tables), 4.8, 0.34 * top + 1.8)
    for ax, (name, frame) in zip(axes, tables.items()):
        total = frame["mean_abs_shap"].sum()
        shown = frame.head(top)
        colours = role_colours(frame["group"])
        ax.barh(np.arange(len(shown)), 100 * shown["mean_abs_shap"] / total,
                color=[colours[g] for g in shown["group"]])
        ax.set_yticks(np.arange(len(shown)), [f"{g} ({n})" for g, n in
                                              zip(shown["group"], shown["layers"])])
        ax.invert_yaxis()
        ax.set_xlabel("share of Σ mean |SHAP| over op types (%)")
        ax.set_title(titles[name], fontsize=9)
    fig.suptitle("Most sensitive op types (layers in brackets)")
    return fig
