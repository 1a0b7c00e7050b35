"""Qua²SeDiMo-style insight figures and tables for one study (or each of several).

    python -m analysis.insights runs/digits-dit --out analysis-out/insights

Per study, in ``OUT/<study name>/``:

* ``sensitivity_by_block.png/.csv`` — mean |Σ SHAP| of each block's layers per config, in
  execution order, with bootstrap 95% intervals over configs (+ the measured one-at-a-time
  sweep loss per block when the study has sweep rows);
* ``sensitivity_by_op_type.png/.csv`` — the same per op type (role), total and per layer;
* ``option_preference.png/.csv`` — mean SHAP of a layer cell per (op type, method × bits):
  which method and bit-width each op type prefers, with intervals;
* ``pareto.png/.csv`` — average bits vs the primary metric of every sampled config with the
  Pareto front and the uniform anchors, and the verified search picks and baselines;
* ``insights.md`` / ``insights.json`` — the headline numbers and where they come from.

SHAP values come from ``explain/<kind>/shap_values.csv`` when ``qua2 explain`` has run, else
from the surrogate ``qua2 fit`` saved, else from a ridge fitted in memory
(:func:`qua2.explain.summaries.study_explanation`); verified picks from
``verification/table.csv``. No diffusion model is loaded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import insight_figures as figs
from analysis.common import (
    StudyDir,
    argument_parser,
    ci,
    markdown_table,
    open_studies,
    report_written,
    run_main,
    save,
    write_csv,
)
from qua2.explain.summaries import (
    StudyExplanation,
    group_importance,
    option_preference_intervals,
    study_explanation,
)


def sweep_by_block(sd: StudyDir) -> pd.DataFrame | None:
    """Measured one-at-a-time loss (primary metric vs FP, worse = positive) summed per block,
    averaged over options; ``None`` unless the sweep is complete (a partial sweep would make
    the blocks it has not reached look insensitive)."""
    sweep = sd.done("sweep")
    fp = sd.fp_metrics.get(sd.primary)
    if not sd.sweep_complete or fp is None or "tag:layer" not in sweep:
        return None
    sign = 1.0 if sd.lower_is_better else -1.0
    loss = sign * (sweep[sd.primary].astype(float) - fp)
    per_layer = loss.groupby(sweep["tag:layer"]).mean()
    blocks = sd.layer_labels["block"].reindex(per_layer.index)
    return per_layer.groupby(blocks).sum().rename("loss").rename_axis("group").reset_index()


def verified_table(sd: StudyDir) -> pd.DataFrame | None:
    """``verification/table.csv`` with one row per distinct config (first budget kept)."""
    table = sd.read_csv("verification", "table.csv")
    if table is None or sd.primary not in table:
        return None
    return table.drop_duplicates(subset=["id"]).reset_index(drop=True)


def preferred_options(pref: pd.DataFrame) -> pd.DataFrame:
    """Per op type: the best option, and per bit-width the best method with its CI."""
    rows = []
    for group, cells in pref.groupby("group", sort=False):
        best = cells.loc[cells["mean_shap"].idxmax()]
        row: dict[str, Any] = {"op type": group, "best option": best["option"],
                               "mean SHAP": ci(best["mean_shap"], best["lo"], best["hi"])}
        for bits, same in cells.groupby("bits"):
            top = same.sort_values("mean_shap", ascending=False)
            row[f"best method @ {bits} bits"] = top.iloc[0]["method"]
        rows.append(row)
    return pd.DataFrame(rows)


def analyse(sd: StudyDir, out: Path, rounds: int, seed: int, surrogate: str | None
            ) -> list[Path]:
    """Every figure, table and summary of one study into ``out``."""
    written: list[Path] = []
    expl = study_explanation(sd.study, surrogate)
    title = sd.describe()
    blocks = group_importance(expl, "block", rounds, seed)
    roles = group_importance(expl, "role", rounds, seed)
    pref = option_preference_intervals(expl, "role", rounds, seed)
    sweep = sweep_by_block(sd)
    save(figs.sensitivity_by_block(blocks, sweep, title, _short(expl)),
         out / "sensitivity_by_block.png", written)
    merged = blocks if sweep is None else blocks.merge(sweep, on="group", how="left")
    write_csv(merged, out / "sensitivity_by_block.csv", written)
    save(figs.sensitivity_by_role(roles, title, _short(expl)),
         out / "sensitivity_by_op_type.png", written)
    write_csv(roles, out / "sensitivity_by_op_type.csv", written)
    save(figs.option_preference_heatmap(pref, title), out / "option_preference.png", written)
    write_csv(pref, out / "option_preference.csv", written)
    verified = verified_table(sd)
    sampled = sd.frame[sd.frame["kind"].isin(["random", "uniform"])]
    fp_value = sd.fp_metrics.get(sd.primary)
    save(figs.pareto(sampled, verified, sd.primary, sd.lower_is_better, fp_value, title),
         out / "pareto.png", written)
    pareto_rows = figs.front(sampled, sd.primary, sd.lower_is_better)
    write_csv(pareto_rows[["id", "kind", "avg_bits", sd.primary]], out / "pareto.csv", written)
    summary = _summary(sd, expl, blocks, roles, pref, verified)
    (out / "insights.json").write_text(json.dumps(summary, indent=1, default=_json))
    (out / "insights.md").write_text(_markdown(sd, expl, blocks, roles, pref, verified))
    written += [out / "insights.json", out / "insights.md"]
    return written


def _short(expl: StudyExplanation) -> str:
    return f"SHAP of {expl.target}: {expl.source}"


def _json(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)


def _summary(sd: StudyDir, expl: StudyExplanation, blocks: pd.DataFrame, roles: pd.DataFrame,
             pref: pd.DataFrame, verified: pd.DataFrame | None) -> dict[str, Any]:
    def top(frame: pd.DataFrame) -> list[dict[str, Any]]:
        return frame.head(5)[["group", "mean_abs_shap", "lo", "hi"]].to_dict("records")

    return {"study": str(sd.directory), "name": sd.name, "partial": sd.partial,
            "counts": sd.frame["kind"].value_counts().to_dict(), "source": expl.source,
            "target": expl.target, "configs_explained": len(expl.values),
            "top_blocks": top(blocks), "top_op_types": top(roles),
            "preferred": preferred_options(pref).to_dict("records"),
            "verified": None if verified is None else len(verified)}


def _markdown(sd: StudyDir, expl: StudyExplanation, blocks: pd.DataFrame, roles: pd.DataFrame,
              pref: pd.DataFrame, verified: pd.DataFrame | None) -> str:
    def ranked(frame: pd.DataFrame) -> str:
        shown = frame.head(8).assign(**{
            "mean abs SHAP [95% CI]": [ci(v, lo, hi) for v, lo, hi in
                                       zip(frame["mean_abs_shap"], frame["lo"], frame["hi"])][:8],
            "per layer": frame["per_layer"].head(8)})
        return markdown_table(shown, ["group", "layers", "mean abs SHAP [95% CI]", "per layer"])

    lines = [f"# Insights: {sd.name}", "", f"Study `{sd.directory}` — {sd.describe()}.", ""]
    if sd.partial:
        lines += ["**Partial study**: the numbers below use only the configs done so far.", ""]
    if len(sd.done("sweep")) and not sd.sweep_complete:
        lines += ["The one-at-a-time sweep is incomplete, so its measured loss is not shown.",
                  ""]
    lines += [f"SHAP values of `{expl.target}` (positive = better) on {len(expl.values)} random "
              f"configs; source: {expl.source}. Intervals: bootstrap 95% over the explained "
              "configs, *conditional on the fitted surrogate* (they do not include the "
              "surrogate's own fitting error, so narrow intervals are not significance).", "",
              "## Most sensitive op types", "", ranked(roles), "",
              "## Most sensitive blocks", "", ranked(blocks), "",
              "## Preferred method × bits per op type", "",
              markdown_table(preferred_options(pref)), ""]
    if verified is not None:
        primary = sd.primary
        shown = verified.assign(**{
            f"{primary} [95% CI]": [ci(v, lo, hi, 4) for v, lo, hi in zip(
                verified[primary], verified[f"{primary}_lo"], verified[f"{primary}_hi"])],
            "bits": ["FP" if k == "reference" else f"{b:.3f}"
                     for k, b in zip(verified["kind"], verified["avg_bits"])]})
        lines += ["## Verified picks (held-out seeds)", "",
                  markdown_table(shown, ["name", "kind", "bits", f"{primary} [95% CI]"]), ""]
    else:
        lines += ["No `verification/` yet: `qua2 search DIR` verifies the picks.", ""]
    lines += ["Figures: `sensitivity_by_block.png`, `sensitivity_by_op_type.png`, "
              "`option_preference.png`, `pareto.png` (each with its CSV)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser("Qua²SeDiMo-style insight figures of one or more studies.")
    parser.add_argument("--surrogate", choices=("xgb", "ridge", "gnn"), default=None,
                        help="whose SHAP values to use (default: the best explained/fitted)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    written: list[Path] = []
    for sd in open_studies(args.studies):
        print(f"{sd.describe()}", file=sys.stderr)
        written += analyse(sd, out / sd.label, args.rounds, args.seed, args.surrogate)
    report_written(out, written)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
