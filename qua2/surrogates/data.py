"""A study's evaluated configurations as arrays a surrogate can learn from.

:func:`load_study_data` reads every ``done`` row of the store once and returns a
:class:`StudyData`: the choice matrix of all rows (see :mod:`qua2.surrogates.encoding`), their
kinds, metrics and average bits. :meth:`StudyData.target` picks a target — any recorded metric
or ``objective`` (Qua²SeDiMo's −FID − λ·avg_bits, higher is better) — and whether higher is
better, which the ranking metrics (NDCG) need.

Which rows are used for what is decided by kind: ``random`` rows are the i.i.d. sample that
cross-validation folds are drawn from; ``uniform`` anchors may join the *training* side of
every fold (they are extremes, not samples of the distribution); ``sweep`` rows (one layer
quantized, the rest FP) and rows chosen by a search are never in the folds, because they are
either out of distribution or selected by a surrogate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qua2.errors import Qua2Error
from qua2.metrics.registry import higher_is_better
from qua2.surrogates.encoding import ConfigEncoder, OptionStats

if TYPE_CHECKING:
    from qua2.specs import QuantOption
    from qua2.study.store import Row
    from qua2.study.study import Study

OPTION_STATS_FILE = ("surrogates", "option_stats.json")
CV_KIND = "random"


@dataclass(frozen=True)
class Target:
    """What a surrogate predicts: a metric name and its direction."""

    name: str
    higher_is_better: bool

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "higher_is_better": self.higher_is_better}


@dataclass
class StudyData:
    """Every evaluated configuration of a study, encoded."""

    encoder: ConfigEncoder
    choices: np.ndarray        # [N, L] option index per layer (-1: full precision)
    kinds: np.ndarray          # [N] row kind
    ids: list[str]
    metrics: pd.DataFrame      # [N, metrics]
    avg_bits: np.ndarray       # [N]
    tags: list[dict[str, Any]]
    primary: str = "objective"
    primary_lower_is_better: bool = False

    def __len__(self) -> int:
        return len(self.ids)

    def target(self, name: str | None = None) -> Target:
        """``name`` (default ``objective``) with its direction; a clear error if unknown."""
        name = name or "objective"
        if name not in self.metrics.columns:
            known = ", ".join(sorted(self.metrics.columns))
            raise Qua2Error(f"target {name!r} is not a recorded metric of this study; use one "
                            f"of: {known}.")
        if name == self.primary:
            return Target(name, not self.primary_lower_is_better)
        return Target(name, higher_is_better(name))

    def values(self, target: Target | str) -> np.ndarray:
        name = target.name if isinstance(target, Target) else target
        return self.metrics[name].to_numpy(dtype=np.float64)

    def mask(self, kinds: tuple[str, ...] | list[str], target: Target | str) -> np.ndarray:
        """Rows of ``kinds`` whose ``target`` is finite."""
        return np.isin(self.kinds, list(kinds)) & np.isfinite(self.values(target))

    def cv_rows(self, target: Target | str) -> np.ndarray:
        """Indices of the rows cross-validation folds are drawn from (``random`` rows)."""
        return np.flatnonzero(self.mask((CV_KIND,), target))


def study_option_stats(study: Study, layers: list[str],
                       options: list[QuantOption]) -> OptionStats | None:
    """Option statistics from ``surrogates/option_stats.json``, read once from the option
    cache when missing; ``None`` when no cache can be opened (features then omit the error)."""
    path = study.path(*OPTION_STATS_FILE)
    if path.exists():
        try:
            stats = OptionStats.load(path)
        except (Qua2Error, KeyError, TypeError, ValueError):  # damaged: read from the cache
            stats = None
        if stats is not None and stats.covers(layers, options):
            return stats
    try:
        from qua2.study.option_cache import open_option_cache

        cache = open_option_cache(study)
    except (ImportError, Qua2Error):  # no cache: surrogates work on choices alone
        return None
    stats = OptionStats.from_cache(cache, layers, options)
    stats.save(path)
    return stats


def study_layers(study: Study, rows: list[Row]) -> list[str]:
    """The layers in graph (execution) order, then any others the rows name."""
    graph_path = study.path("graph.json")
    ordered: list[str] = []
    if graph_path.exists():
        from qua2.study.graph import study_graph

        ordered = study_graph(study).layers()  # re-traced if the stored graph is damaged
    seen = dict.fromkeys(ordered)
    for row in rows:
        seen.update(dict.fromkeys(row.config.get("layers", {})))
    return list(seen)


def load_study_data(study: Study, *, encoding: str = "option", use_error: bool = True,
                    stats: OptionStats | None = None) -> StudyData:
    """Read the study's ``done`` rows into a :class:`StudyData`."""
    from qua2.study.racing import full_scale_metrics
    from qua2.study.store import Store

    with Store(study.path("study.sqlite")) as store:
        rows = store.rows(status="done")
    if not rows:
        raise Qua2Error(f"{study.directory} has no evaluated configurations yet; run "
                        "`qua2 run` (or `qua2 sample`) first.")
    options = list(study.config.search_space.build().options)
    layers = study_layers(study, rows)
    if stats is None and use_error:
        stats = study_option_stats(study, layers, options)
    encoder = ConfigEncoder(layers, options, stats, encoding=encoding, use_error=use_error)
    choices = encoder.choices([r.config for r in rows])
    # Rows a racing study stopped early are put on the all-images scale (qua2.study.racing).
    metrics = pd.DataFrame.from_records(
        full_scale_metrics(rows, study.config.images_per_config)).astype(float)
    avg_bits = np.array([np.nan if r.avg_bits is None else r.avg_bits for r in rows])
    section = study.config.metrics
    return StudyData(encoder, choices, np.array([r.kind for r in rows]), [r.id for r in rows],
                     metrics, avg_bits, [r.tags for r in rows], section.primary_metric,
                     section.primary_lower_is_better)
