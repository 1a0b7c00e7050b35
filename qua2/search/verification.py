"""The verification stage: real evaluation of every candidate, tables and a Pareto figure.

Sampled configurations were scored on the sampling seeds with fewer images; verified ones on
held-out seeds with more images. Distribution metrics such as FID depend on the sample count,
so the two are never mixed in one table or one panel.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from qua2.search.stage import Candidate, load_candidates
from qua2.search.verify import Verified, save_verified, verify
from qua2.study.results import results_frame
from qua2.study.study import Study

RESULTS_FILE = ("verification", "results.json")
#: One JSON line per configuration as it is verified: what an interrupted run resumes from.
PROGRESS_FILE = ("verification", "progress.jsonl")


def stage_verify(study: Study, cache: Any, rounds: int = 200) -> list[Verified]:
    """Verify every distinct candidate (and the FP model) once; write results and figures."""
    candidates = load_candidates(study)
    distinct: dict[str, tuple[str, Any]] = {"fp": ("fp", None)}
    for candidate in candidates:
        distinct.setdefault(candidate.config.digest(), (candidate.kind, candidate.config))
    results = verify(study, distinct, cache, rounds=rounds,
                     progress_file=study.path(*PROGRESS_FILE))
    save_verified(results, study.path(*RESULTS_FILE))
    table = verification_table(study, candidates, results)
    table.to_csv(study.path("verification", "table.csv"), index=False)
    study.path("verification", "table.md").write_text(markdown_tables(study, table))
    from qua2.plots import save_figure
    from qua2.search.plots import pareto_figure

    save_figure(pareto_figure(study, results_frame(study, with_layers=False), table),
                study.path("verification", "pareto.png"))
    return results


def verification_table(study: Study, candidates: list[Candidate],
                       results: list[Verified]) -> pd.DataFrame:
    """One row per (budget, candidate) with verified metrics and intervals; FP rows first."""
    by_id = {r.name: r for r in results}
    metrics = [m for m in by_id["fp"].metrics if m != "n_images"]
    rows = []
    for candidate in candidates:
        verified = by_id[candidate.config.digest()]
        budget = math.nan if candidate.budget is None else candidate.budget
        rows.append(_row(budget, candidate.name, candidate.kind,
                         candidate.config.digest(), verified, metrics, candidate.predicted))
    fp = by_id["fp"]
    rows.append(_row(math.nan, "fp", "reference", "fp", fp, metrics, None))
    return pd.DataFrame(rows)


def _row(budget: float, name: str, kind: str, config_id: str, verified: Verified,
         metrics: list[str], predicted: float | None) -> dict[str, Any]:
    row: dict[str, Any] = {"budget": budget, "name": name, "kind": kind, "id": config_id,
                           "avg_bits": verified.avg_bits, "predicted": predicted}
    for metric in metrics:
        row[metric] = verified.metrics.get(metric)
        low, high = verified.intervals.get(metric, (math.nan, math.nan))
        row[f"{metric}_lo"], row[f"{metric}_hi"] = low, high
    return row


def markdown_tables(study: Study, table: pd.DataFrame) -> str:
    """A Markdown table per budget: candidates sorted by the primary metric, with 95% CIs."""
    primary = study.config.metrics.primary
    ascending = study.config.metrics.lower_is_better
    shown = [m for m in (primary, "class_accuracy", "clip_score", "psnr", "ssim") if m in table]
    activations = study.precision_label
    lines = [f"Verified on {study.config.verification_images} held-out images per config; "
             "intervals are 95% paired-bootstrap percentile intervals. Activations: "
             f"{activations} (the bits columns are the weights': W<bits>{activations}).", ""]
    groups = [("Full precision and uniform anchors", table[table["budget"].isna()])]
    groups += [(f"Budget ≤ {budget:g} average bits", group)
               for budget, group in table.dropna(subset=["budget"]).groupby("budget")]
    for title, group in groups:
        lines += ["", f"### {title}", "",
                  "| config | kind | avg bits | " + " | ".join(shown) + " |",
                  "|---|---|---|" + "---|" * len(shown)]
        for _, row in group.sort_values(primary, ascending=ascending).iterrows():
            bits = "16 (FP)" if row["kind"] == "reference" else f"{row['avg_bits']:.3f}"
            cells = " | ".join(_cell(row, m) for m in shown)
            lines.append(f"| {row['name']} | {row['kind']} | {bits} | {cells} |")
    return "\n".join(lines) + "\n"


def _cell(row: Any, metric: str) -> str:
    value, low, high = row[metric], row.get(f"{metric}_lo"), row.get(f"{metric}_hi")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if low is None or math.isnan(low):
        return f"{value:.4g}"
    return f"{value:.4g} [{low:.4g}, {high:.4g}]"


def load_verification(study: Study) -> list[dict[str, Any]]:
    path = study.path(*RESULTS_FILE)
    return json.loads(path.read_text()) if path.exists() else []
