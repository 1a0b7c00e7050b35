"""Figure builders: each takes data and returns a matplotlib Figure (never ``plt.show()``).

Callers save figures with :func:`save_figure`, which writes the PNG and closes the figure so
long studies do not accumulate open figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _figure(width: float, height: float) -> Any:
    # The object-oriented API with an Agg canvas: no global pyplot state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def sample_grid_figure(images: Any, titles: Sequence[str] | None = None, columns: int = 10,
                       suptitle: str | None = None) -> Any:
    """A grid of images in [-1, 1] (tensor or array ``[N, C, H, W]``), one title each."""
    array = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images)
    array = ((array.clip(-1, 1) + 1) / 2).transpose(0, 2, 3, 1)
    count = len(array)
    rows = max(1, -(-count // columns))
    figure = _figure(1.1 * columns, 1.25 * rows + (0.4 if suptitle else 0))
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


def save_figure(figure: Any, path: str | Path) -> Path:
    """Write ``figure`` as a PNG (parents created) and release it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    figure.clear()
    return path
