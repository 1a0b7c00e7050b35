"""The verification stage: real evaluation of every candidate, tables and a Pareto figure.

Sampled configurations were scored on the sampling seeds with fewer images; verified ones on
held-out seeds with more images. Distribution metrics such as FID depend on the sample count,
so the two are never mixed in one table or one panel.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from qua2.io import read_json, rerun_stage
from qua2.search.stage import Candidate, load_candidates
from qua2.search.verify import Verified, paired_difference, save_verified, verify
from qua2.study.results import results_frame
from qua2.study.stages import RunOptions, say
from qua2.study.study import Study

RESULTS_FILE = ("verification", "results.json")
#: One JSON line per configuration as it is verified: what an interrupted run resumes from.
PROGRESS_FILE = ("verification", "progress.jsonl")


def stage_verify(study: Study, options: RunOptions) -> None:
    """Pipeline stage: every candidate evaluated for real on held-out seeds, with intervals."""
    from qua2.study.option_cache import open_option_cache

    verify_candidates(study, open_option_cache(study), rounds=options.bootstrap_rounds)
    say(f"verification → {study.path('verification', 'table.md')}")


def verify_candidates(study: Study, cache: Any, rounds: int = 200) -> list[Verified]:
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
    comparisons = paired_comparisons(study, candidates, results)
    comparisons.to_csv(study.path("verification", "comparisons.csv"), index=False)
    study.path("verification", "table.md").write_text(
        markdown_tables(study, table, comparisons))
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


def paired_comparisons(study: Study, candidates: list[Candidate],
                       results: list[Verified]) -> pd.DataFrame:
    """Per budget, qua2's best verified pick against every baseline at that budget and every
    uniform anchor above it, on the primary metric with paired 95% intervals.

    ``delta`` is pick − other; ``verdict`` says which is better when the interval excludes 0.
    """
    primary = study.config.metrics.primary
    sign = -1.0 if study.config.metrics.lower_is_better else 1.0
    by_id = {r.name: r for r in results}
    anchors = [c for c in candidates if c.kind == "anchor"]
    rows = []
    for budget in sorted({c.budget for c in candidates if c.budget is not None}):
        here = [c for c in candidates if c.budget == budget]
        picks = [c for c in here if c.kind == "qua2"]
        if not picks:
            continue
        pick = max(picks, key=lambda c: sign * by_id[c.config.digest()].metrics[primary])
        others = [c for c in here if c.kind == "baseline"]
        others += [c for c in anchors if c.avg_bits > budget]
        for other in others:
            a, b = by_id[pick.config.digest()], by_id[other.config.digest()]
            if primary not in a.draws or primary not in b.draws:
                continue  # a primary metric without bootstrap draws (custom scorer)
            delta, low, high = paired_difference(a, b, primary)
            gain = sorted((sign * low, sign * high))  # the pick's advantage, positive = better
            better, worse = gain[0] > 0, gain[1] < 0
            rows.append({"budget": budget, "pick": pick.name, "pick_bits": pick.avg_bits,
                         "other": other.name, "other_kind": other.kind,
                         "other_bits": other.avg_bits, "metric": primary, "delta": delta,
                         "delta_lo": low, "delta_hi": high,
                         "verdict": "better" if better else "worse" if worse else "tie"})
    return pd.DataFrame(rows)


def markdown_tables(study: Study, table: pd.DataFrame,
                    comparisons: pd.DataFrame | None = None) -> str:
    """A Markdown table per budget: candidates sorted by the primary metric, with 95% CIs,
    followed by qua2's pick against each baseline (paired differences)."""
    primary = study.config.metrics.primary
    ascending = study.config.metrics.lower_is_better
    shown = [m for m in (primary, "class_accuracy", "clip_score", "psnr", "ssim") if m in table]
    activations = study.precision_label
    lines = [f"Verified on {study.config.verification_images} held-out images per config; "
             "intervals are 95% bootstrap intervals over resamples shared by all configs "
             "(percentile; bias-shifted for Fréchet distances). Activations: "
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
        budget = group["budget"].iloc[0] if len(group) else math.nan
        if comparisons is not None and len(comparisons) and not math.isnan(budget):
            lines += _comparison_lines(comparisons[comparisons["budget"] == budget])
    return "\n".join(lines) + "\n"


def _comparison_lines(rows: pd.DataFrame) -> list[str]:
    if rows.empty:
        return []
    first = rows.iloc[0]
    lines = ["", f"Paired differences, {first['pick']} − other, on {first['metric']} "
                 "(95% interval; better / worse when it excludes 0):", ""]
    for _, r in rows.iterrows():
        where = "" if r["other_kind"] == "baseline" else f" at {r['other_bits']:.3f} bits"
        lines.append(f"- vs {r['other']}{where}: {r['delta']:+.4g} "
                     f"[{r['delta_lo']:+.4g}, {r['delta_hi']:+.4g}] → {r['verdict']}")
    return lines


def _cell(row: Any, metric: str) -> str:
    value, low, high = row[metric], row.get(f"{metric}_lo"), row.get(f"{metric}_hi")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if low is None or math.isnan(low):
        return f"{value:.4g}"
    return f"{value:.4g} [{low:.4g}, {high:.4g}]"


def load_verification(study: Study) -> list[dict[str, Any]]:
    path = study.path(*RESULTS_FILE)
    if not path.exists():
        return []
    return read_json(path, rerun_stage(study.directory, "verify"))
