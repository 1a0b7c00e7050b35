"""Surrogate quality across studies: ridge vs XGBoost vs GNN (ρ, τ, learning curves).

    python -m analysis.surrogate_quality runs/digits-dit runs/digits-unet --out out/surrogates

Reads what ``qua2 fit`` wrote in each study (``surrogates/cv_report.json``,
``oof_predictions.csv``, ``learning_curve.csv``) and writes to ``OUT/``:

* ``surrogate_quality.csv`` / ``.md`` — per study and surrogate: held-out Spearman ρ, Kendall
  τ, NDCG@10 and MAE (mean ± std over folds, as ``qua2 fit`` reports them), the pooled ρ
  and τ over all held-out predictions with a bootstrap 95% interval over configs, and the
  paired difference of pooled ρ to the ridge baseline (same configs resampled for both);
* ``rank_metrics.png`` — ρ and τ per surrogate and study;
* ``learning_curves.png`` — held-out ρ vs training configs, one panel per study.

Nothing is refitted: a study without ``surrogates/cv_report.json`` is skipped with the command
that makes it (``qua2 fit DIR``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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
from qua2.plots import figure_canvas
from qua2.stats import bootstrap, percentile_interval

ORDER = ("ridge", "xgb", "gnn")
COLOURS = {"ridge": "#7f7f7f", "xgb": "#1f77b4", "gnn": "#d62728"}


def pooled(oof: pd.DataFrame, rounds: int, seed: int) -> dict[str, float]:
    """Pooled Spearman ρ and Kendall τ of held-out predictions, bootstrap CIs over configs."""
    from scipy.stats import kendalltau, spearmanr

    y, pred = oof["y"].to_numpy(float), oof["pred"].to_numpy(float)

    def both(index: np.ndarray) -> tuple[float, float]:
        return (spearmanr(y[index], pred[index])[0], kendalltau(y[index], pred[index])[0])

    rho, tau = both(np.arange(len(y)))
    samples = bootstrap(len(y), both, rounds, seed)
    low, high = percentile_interval(samples)
    return {"pooled_rho": rho, "pooled_rho_lo": low[0], "pooled_rho_hi": high[0],
            "pooled_tau": tau, "pooled_tau_lo": low[1], "pooled_tau_hi": high[1]}


def versus(oof: pd.DataFrame, kind: str, reference: str, rounds: int, seed: int
           ) -> dict[str, float]:
    """Paired difference of pooled Spearman ρ, ``kind − reference``, on the configs both
    predicted held-out, with a bootstrap interval resampling those configs."""
    from scipy.stats import spearmanr

    wide = oof[oof["surrogate"].isin([kind, reference])].pivot_table(
        index="id", columns="surrogate", values=["y", "pred"])
    wide = wide.dropna()
    if kind == reference or len(wide) < 3:
        return {}
    y = wide[("y", kind)].to_numpy(float)
    a, b = wide[("pred", kind)].to_numpy(float), wide[("pred", reference)].to_numpy(float)

    def delta(index: np.ndarray) -> float:
        return spearmanr(y[index], a[index])[0] - spearmanr(y[index], b[index])[0]

    low, high = percentile_interval(bootstrap(len(y), delta, rounds, seed))
    return {"delta_rho": delta(np.arange(len(y))), "delta_rho_lo": float(low),
            "delta_rho_hi": float(high), "delta_vs": reference}


def study_rows(sd: StudyDir, rounds: int, seed: int) -> pd.DataFrame:
    """One row per fitted surrogate of a study."""
    report = sd.read_json("surrogates", "cv_report.json")
    oof = sd.read_csv("surrogates", "oof_predictions.csv")
    rows = []
    for kind, entry in report["surrogates"].items():
        summary = entry["summary"]
        row: dict[str, Any] = {"study": sd.label, "partial": sd.partial, "surrogate": kind,
                               "n_random": report["n_random"], "folds": report["folds"],
                               "target": report["target"]["name"],
                               "seconds": entry.get("seconds"), "best": report["best"] == kind}
        for metric in ("spearman", "kendall", "ndcg@10", "mae"):
            row[f"{metric}_mean"] = summary.get(f"{metric}_mean")
            row[f"{metric}_std"] = summary.get(f"{metric}_std")
        if oof is not None and (oof["surrogate"] == kind).any():
            row.update(pooled(oof[oof["surrogate"] == kind], rounds, seed))
            if "ridge" in set(oof["surrogate"]):
                row.update(versus(oof, kind, "ridge", rounds, seed))
        rows.append(row)
    frame = pd.DataFrame(rows)
    rank = {k: i for i, k in enumerate(ORDER)}
    return frame.sort_values("surrogate", key=lambda s: s.map(lambda k: rank.get(k, 9)))


def curves(sd: StudyDir) -> pd.DataFrame:
    frame = sd.read_csv("surrogates", "learning_curve.csv")
    return pd.DataFrame() if frame is None else frame.assign(study=sd.label)


# --------------------------------------------------------------------------- figures
def rank_figure(table: pd.DataFrame) -> Any:
    """Grouped bars: fold-mean ρ and τ (± fold std) per surrogate, grouped by study."""
    studies = list(dict.fromkeys(table["study"]))
    kinds = [k for k in ORDER if k in set(table["surrogate"])] + \
        sorted(set(table["surrogate"]) - set(ORDER))
    fig = figure_canvas(max(8.0, 2.6 * len(studies) + 3), 3.8)
    axes = fig.subplots(1, 2)
    width = 0.8 / len(kinds)
    for ax, metric, label in ((axes[0], "spearman", "Spearman ρ"),
                              (axes[1], "kendall", "Kendall τ")):
        for k, kind in enumerate(kinds):
            rows = table[table["surrogate"] == kind].set_index("study").reindex(studies)
            x = np.arange(len(studies)) + (k - (len(kinds) - 1) / 2) * width
            ax.bar(x, rows[f"{metric}_mean"], width, yerr=rows[f"{metric}_std"], capsize=3,
                   color=COLOURS.get(kind, "#2ca02c"), label=kind)
            for xi, value in zip(x, rows[f"{metric}_mean"]):
                if np.isfinite(value):
                    ax.text(xi, 0.02, f"{value:.2f}", ha="center", va="bottom", fontsize=7,
                            color="white", rotation=90)
        ax.set_xticks(np.arange(len(studies)), [_label(table, s) for s in studies],
                      fontsize=8)
        ax.set_ylabel(f"held-out {label} (mean ± std over folds)")
        ax.set_ylim(min(0.0, float(np.nanmin(table[f"{metric}_mean"])) - 0.1), 1.15)
        ax.set_yticks([t for t in ax.get_yticks() if t <= 1.0])
        ax.axhline(0, color="black", lw=0.8)
    axes[0].legend(fontsize=8, loc="upper center", ncol=len(kinds))
    fig.suptitle("Surrogate ranking quality on held-out random configs")
    return fig


def _label(table: pd.DataFrame, study: str) -> str:
    row = table[table["study"] == study].iloc[0]
    return f"{study}\n{row['n_random']} configs" + (" (PARTIAL)" if row["partial"] else "")


def curve_figure(frame: pd.DataFrame, table: pd.DataFrame) -> Any:
    """Held-out ρ vs training configs per surrogate, one panel per study."""
    studies = list(dict.fromkeys(table["study"]))
    fig = figure_canvas(4.6 * len(studies), 3.8)
    axes = np.atleast_1d(fig.subplots(1, len(studies), sharey=True, squeeze=False)[0])
    for ax, study in zip(axes, studies):
        part = frame[frame["study"] == study] if len(frame) else frame
        for kind in dict.fromkeys(part["surrogate"] if len(part) else []):
            rows = part[part["surrogate"] == kind].sort_values("n_train")
            mean, std = rows["spearman_mean"], rows["spearman_std"].fillna(0)
            ax.plot(rows["n_train"], mean, "-o", ms=3, color=COLOURS.get(kind), label=kind)
            ax.fill_between(rows["n_train"], mean - std, mean + std, alpha=0.15,
                            color=COLOURS.get(kind))
        final = table[table["study"] == study]
        for _, row in final.iterrows():  # the full-data CV point
            n = row["n_random"] * (row["folds"] - 1) / row["folds"]
            ax.scatter([n], [row["spearman_mean"]], marker="*", s=80, zorder=3,
                       color=COLOURS.get(row["surrogate"], "#2ca02c"), edgecolor="black")
        ax.set_title(_label(table, study).replace("\n", ", "), fontsize=9)
        ax.set_xlabel("training configs per fold")
        ax.set_ylabel("held-out Spearman ρ")
        if len(part):
            ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("Learning curves (★ = all training configs of a fold)")
    return fig


def markdown(table: pd.DataFrame, skipped: list[str]) -> str:
    def pm(mean: Any, std: Any) -> str:
        return "–" if mean is None or not np.isfinite(mean) else f"{mean:.3f} ± {std:.3f}"

    shown = table.assign(**{
        "ρ (folds)": [pm(m, s) for m, s in zip(table["spearman_mean"], table["spearman_std"])],
        "τ (folds)": [pm(m, s) for m, s in zip(table["kendall_mean"], table["kendall_std"])],
        "NDCG@10": [pm(m, s) for m, s in zip(table["ndcg@10_mean"], table["ndcg@10_std"])],
        "pooled ρ [95% CI]": [ci(*v) for v in zip(*(table.get(c, pd.Series(np.nan,
                              table.index)) for c in ("pooled_rho", "pooled_rho_lo",
                                                      "pooled_rho_hi")))],
        "pooled τ [95% CI]": [ci(*v) for v in zip(*(table.get(c, pd.Series(np.nan,
                              table.index)) for c in ("pooled_tau", "pooled_tau_lo",
                                                      "pooled_tau_hi")))],
        "Δρ vs ridge [95% CI, paired]": [ci(*v) for v in zip(*(table.get(c, pd.Series(
            np.nan, table.index)) for c in ("delta_rho", "delta_rho_lo", "delta_rho_hi")))],
        "configs": [f"{n}" + (" (PARTIAL)" if p else "") for n, p in
                    zip(table["n_random"], table["partial"])]})
    lines = ["# Surrogate quality", "",
             "Held-out metrics of `qua2 fit`'s k-fold cross-validation over each study's random "
             "configs (mean ± std over folds), and pooled over all held-out predictions with a "
             "bootstrap 95% interval over configs.", "",
             markdown_table(shown, ["study", "surrogate", "configs", "ρ (folds)", "τ (folds)",
                                    "NDCG@10", "pooled ρ [95% CI]", "pooled τ [95% CI]",
                                    "Δρ vs ridge [95% CI, paired]"]), ""]
    if skipped:
        lines += ["Skipped (no `surrogates/cv_report.json`; run `qua2 fit DIR`): "
                  + ", ".join(f"`{s}`" for s in skipped) + ".", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser("Compare the surrogates (ridge, XGBoost, GNN) of one or more "
                             "studies from their qua2 fit reports.")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tables, curve_frames, skipped = [], [], []
    for sd in open_studies(args.studies):
        directory = sd.directory
        if sd.read_json("surrogates", "cv_report.json") is None:
            print(f"skipping {directory}: no surrogates/cv_report.json; run `qua2 fit "
                  f"{directory}` first.", file=sys.stderr)
            skipped.append(str(directory))
            continue
        tables.append(study_rows(sd, args.rounds, args.seed))
        curve_frames.append(curves(sd))
    if not tables:
        print("error: none of the studies has been fitted; run `qua2 fit DIR` first.",
              file=sys.stderr)
        return 2
    table = pd.concat(tables, ignore_index=True)
    curve = pd.concat(curve_frames, ignore_index=True)
    written: list[Path] = []
    write_csv(table, out / "surrogate_quality.csv", written)
    save(rank_figure(table), out / "rank_metrics.png", written)
    save(curve_figure(curve, table), out / "learning_curves.png", written)
    (out / "surrogate_quality.md").write_text(markdown(table, skipped))
    written.append(out / "surrogate_quality.md")
    report_written(out, written)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
