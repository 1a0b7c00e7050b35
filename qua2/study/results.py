"""Read a study's store as tables: one row per configuration, and a status summary."""

from __future__ import annotations

from typing import Any

import pandas as pd

from qua2.study.store import Store
from qua2.study.study import Study


def results_frame(study: Study, with_layers: bool = True) -> pd.DataFrame:
    """One row per configuration: id, kind, status, average bits, every metric, the failure
    reason, timings, and (``with_layers``) one column per layer with its option key."""
    with Store(study.path("study.sqlite")) as store:
        rows = store.rows()
    records = []
    for row in rows:
        record: dict[str, Any] = {"id": row.id, "kind": row.kind, "status": row.status,
                                  "avg_bits": row.avg_bits, **row.metrics,
                                  "error": row.error,
                                  "seconds": sum(row.timings.values()) or None}
        record.update({f"tag:{k}": v for k, v in row.tags.items()})
        if with_layers:
            record.update({f"layer:{k}": v for k, v in row.config.get("layers", {}).items()})
        records.append(record)
    return pd.DataFrame.from_records(records)


def status_summary(study: Study) -> dict[str, Any]:
    """Counts per status and kind, seconds per config, and the best evaluated config so far."""
    frame = results_frame(study, with_layers=False)
    summary: dict[str, Any] = {"study": str(study.directory), "name": study.config.name}
    if frame.empty:
        return {**summary, "counts": {}, "by_kind": {}, "seconds_per_config": None, "best": None}
    summary["counts"] = frame["status"].value_counts().to_dict()
    summary["by_kind"] = frame.groupby(["kind", "status"]).size().unstack(fill_value=0) \
        .to_dict(orient="index")
    done = frame[frame["status"] == "done"]
    summary["seconds_per_config"] = float(done["seconds"].median()) if len(done) else None
    # Images the evaluations generated (a racing row counts the images it got).
    counts = done["n_images"] if "n_images" in done else pd.Series(dtype=float)
    summary["images"] = int(counts.fillna(study.config.images_per_config).sum())
    summary["stopped_early"] = int((counts < study.config.images_per_config).sum())
    if len(done) and "objective" in done:
        best = done.loc[done["objective"].idxmax()]
        primary = study.config.metrics.primary
        summary["best"] = {"id": best["id"], "kind": best["kind"],
                           "avg_bits": float(best["avg_bits"]),
                           primary: float(best[primary]), "objective": float(best["objective"])}
    else:
        summary["best"] = None
    return summary
