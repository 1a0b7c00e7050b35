"""Pareto figures: average bits vs quality for sampled configs and verified candidates."""

from __future__ import annotations

from typing import Any

import pandas as pd

from qua2.plots import _figure

#: One colour per candidate name family, fixed across figures.
COLOURS = {"qua2": "#d62728", "uniform": "#1f77b4", "best-sampled": "#2ca02c",
           "mixdq-ip": "#9467bd", "random": "#7f7f7f", "qua2sedimo": "#ff7f0e", "fp": "#000000"}


def _colour(name: str) -> str:
    # Longest prefix first: "qua2sedimo" (a baseline) must not take the colour of "qua2" picks.
    for prefix in sorted(COLOURS, key=len, reverse=True):
        if name.startswith(prefix):
            return COLOURS[prefix]
    return "#8c564b"


def pareto_figure(study: Any, sampled: pd.DataFrame, verified: pd.DataFrame) -> Any:
    """Left: every evaluated config (sampling seeds). Right: verified candidates with 95% CIs."""
    primary = study.config.metrics.primary
    figure = _figure(12, 4.8)
    left, right = figure.subplots(1, 2)
    done = sampled[sampled["status"] == "done"] if "status" in sampled else sampled
    for kind, marker in (("random", "o"), ("uniform", "s")):
        part = done[done["kind"] == kind]
        if len(part):
            left.scatter(part["avg_bits"], part[primary], s=14 if kind == "random" else 40,
                         marker=marker, alpha=0.6, label=f"{kind} ({len(part)})",
                         color="#7f7f7f" if kind == "random" else "#1f77b4")
    left.set_title(f"sampled configs ({study.config.images_per_config} images each)")
    fp_value = _fp_value(verified, primary)
    right.axhline(fp_value, color="black", lw=1, ls="--", label="FP")
    anchors = verified[verified["kind"] == "anchor"]
    right.scatter(anchors["avg_bits"], anchors[primary], marker="s", color=COLOURS["uniform"],
                  facecolors="none", label="uniform anchors")
    for name, group in verified.dropna(subset=["budget"]).groupby("name"):
        errors = [group[primary] - group[f"{primary}_lo"], group[f"{primary}_hi"] - group[primary]]
        right.errorbar(group["avg_bits"], group[primary], yerr=errors, fmt="o", capsize=3,
                       color=_colour(name), label=name, alpha=0.9)
    right.set_title(f"verified ({study.config.verification_images} held-out images, 95% CI)")
    for axis in (left, right):
        axis.set_xlabel("average bits (overheads included)")
        axis.set_ylabel(primary + (" (lower is better)" if study.config.metrics.lower_is_better
                                   else " (higher is better)"))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(f"{study.config.name}: bits vs quality")
    return figure


def _fp_value(verified: pd.DataFrame, primary: str) -> float:
    fp = verified[verified["name"] == "fp"]
    return float(fp[primary].iloc[0]) if len(fp) else float("nan")
