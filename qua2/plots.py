"""Figure builders: each takes data and returns a matplotlib Figure (never ``plt.show()``).

Callers save figures with :func:`save_figure`, which writes the PNG and closes the figure so
long studies do not accumulate open figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: The one palette of configuration kinds and candidate names, fixed across every figure.
KIND_COLOURS = {"random": "#1f77b4", "uniform": "#d62728", "anchor": "#d62728",
                "sweep": "#bbbbbb", "search": "#2ca02c", "baseline": "#9467bd",
                "qua2": "#d62728", "best-sampled": "#2ca02c", "mixdq-ip": "#9467bd",
                "qua2sedimo": "#ff7f0e", "edge-recipe": "#17becf", "fp": "#000000"}
OTHER_COLOUR = "#8c564b"


def kind_colour(name: str) -> str:
    """The colour of a kind or candidate name (longest matching prefix: ``qua2sedimo`` is a
    baseline and must not take the colour of the ``qua2`` picks)."""
    for prefix in sorted(KIND_COLOURS, key=len, reverse=True):
        if str(name).startswith(prefix):
            return KIND_COLOURS[prefix]
    return OTHER_COLOUR


def figure_canvas(width: float, height: float) -> Figure:
    """An empty figure on an Agg canvas (for every figure builder)."""
    # The object-oriented API with an Agg canvas: no global pyplot state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def sample_grid_figure(images: Any, titles: Sequence[str] | None = None, columns: int = 10,
                       suptitle: str | None = None) -> Figure:
    """A grid of images in [-1, 1] (tensor or array ``[N, C, H, W]``), one title each."""
    array = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images)
    array = ((array.clip(-1, 1) + 1) / 2).transpose(0, 2, 3, 1)
    count = len(array)
    rows = max(1, -(-count // columns))
    figure = figure_canvas(1.1 * columns, 1.25 * rows + (0.4 if suptitle else 0))
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.set_axis_off()
        if index >= count:
            continue
        picture = array[index]
        if picture.shape[-1] == 1:
            axis.imshow(picture[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        else:
            axis.imshow(picture, interpolation="nearest")
        if titles is not None:
            axis.set_title(str(titles[index]), fontsize=9)
    if suptitle:
        figure.suptitle(suptitle)
    return figure


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` as a PNG (parents created) and release it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    figure.clear()
    return path


def pareto_front(frame: pd.DataFrame, quality: str, lower_is_better: bool) -> pd.DataFrame:
    """Rows no other row beats with fewer or equal average bits (sorted by bits)."""
    ordered = frame.dropna(subset=["avg_bits", quality]).sort_values("avg_bits")
    values = ordered[quality].to_numpy()
    oriented = -values if lower_is_better else values
    keep = oriented >= np.maximum.accumulate(oriented)
    return ordered[keep]


def pareto_figure(frame: pd.DataFrame, quality: str, lower_is_better: bool,
                  fp_value: float | None = None, verified: pd.DataFrame | None = None,
                  title: str | None = None) -> Figure:
    """Average bits vs quality: every evaluated config by kind with the Pareto front; with
    ``verified`` (candidates with ``QUALITY_lo``/``_hi`` columns) a second panel of the
    verified candidates and their 95% intervals."""
    figure = figure_canvas(12 if verified is not None else 6.4, 4.6)
    axes = figure.subplots(1, 2 if verified is not None else 1, squeeze=False)[0]
    axis = axes[0]
    for kind, part in frame.groupby("kind"):
        big = kind == "uniform"
        axis.scatter(part["avg_bits"], part[quality], s=40 if big else 12, lw=0,
                     color=kind_colour(str(kind)), label=f"{kind} ({len(part)})",
                     alpha=1.0 if big else 0.7, zorder=3 if big else 2)
    front = pareto_front(frame, quality, lower_is_better)
    axis.step(front["avg_bits"], front[quality], where="post", color="black", lw=1.2,
              label="Pareto front")
    axis.set_title("every evaluated configuration", fontsize=10)
    if verified is not None:
        _verified_panel(axes[1], verified, quality)
    for panel in axes:
        if fp_value is not None:
            panel.axhline(fp_value, color="#7f7f7f", ls="--", lw=1, label="full precision")
        panel.set_xlabel("average bits over the quantized layers (incl. overheads)")
        panel.set_ylabel(f"{quality} ({'lower' if lower_is_better else 'higher'} is better)")
        panel.grid(alpha=0.3)
        panel.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    return figure


def _verified_panel(axis: Axes, verified: pd.DataFrame, quality: str) -> None:
    anchors = verified[verified["kind"] == "anchor"]
    axis.scatter(anchors["avg_bits"], anchors[quality], marker="s", facecolors="none",
                 color=kind_colour("anchor"), label="uniform anchors")
    for name, group in verified.dropna(subset=["budget"]).groupby("name"):
        errors = [group[quality] - group[f"{quality}_lo"], group[f"{quality}_hi"] - group[quality]]
        axis.errorbar(group["avg_bits"], group[quality], yerr=errors, fmt="o", capsize=3,
                      color=kind_colour(str(name)), label=name, alpha=0.9)
    axis.set_title("verified on held-out seeds (95% CI)", fontsize=10)
