"""The verification figure: the one Pareto figure of :mod:`qua2.plots` for a study."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from qua2.plots import pareto_figure as _pareto

if TYPE_CHECKING:
    from qua2.study.study import Study


def pareto_figure(study: Study, sampled: pd.DataFrame, verified: pd.DataFrame) -> Any:
    """Left: every evaluated config (sampling seeds). Right: verified candidates with 95% CIs."""
    metrics = study.config.metrics
    done = sampled[sampled["status"] == "done"] if "status" in sampled else sampled
    fp = verified[verified["name"] == "fp"]
    fp_value = float(fp[metrics.primary_metric].iloc[0]) if len(fp) else None
    return _pareto(done[done["kind"].isin(["random", "uniform"])], metrics.primary_metric,
                   bool(metrics.lower_is_better), fp_value, verified=verified,
                   title=f"{study.config.name}: bits vs quality")
