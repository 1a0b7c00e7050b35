"""FINDINGS' headlines per replicate, with their spread across replicates.

    python -m analysis.replicated runs/digits-dit-quick-replicates \\
        runs/digits-unet-quick-replicates --sweeps runs/sweeps/digits-dit \\
        runs/sweeps/digits-unet --out analysis/results/replicated

Each positional argument is a directory of ``qua2 run … --replicates K``; ``--sweeps`` gives,
in the same order, a study of the same model, images and search space holding the one-layer
sweep (a deterministic measurement on the sampling seeds every replicate shares, so it is made
once, not K times). Per replicate: held-out Spearman ρ of every surrogate (its CV report), the
model-free method effects (:mod:`analysis.method_stats`), the agreement of XGBoost's SHAP
layer importance with the sweep, and how much of XGBoost's attribution is interaction between
layers (SHAP interaction values, Lundberg et al., Nature MI 2020), and XGBoost's mean |SHAP|
per layer role. Across replicates: mean,
95% t-interval, smallest and largest value. The verified comparisons are pooled by
``qua2 run --replicates`` itself (``replicates.md``), which this report repeats.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import method_stats as stats
from analysis.common import StudyDir, argument_parser, markdown_table, report_written, run_main

#: The method contrasts FINDINGS reports, by their label in :mod:`analysis.method_stats`.
CONTRASTS = ("k-means (any) vs uaq", stats.EQUAL_BITS, "kmeans_c vs uaq", "kmeans_a vs uaq")


def surrogate_rhos(sd: StudyDir) -> dict[str, float]:
    report = sd.read_json("surrogates", "cv_report.json") or {}
    return {f"ρ {kind}": entry["summary"]["spearman_mean"]
            for kind, entry in report.get("surrogates", {}).items()}


def method_effects(sd: StudyDir, rounds: int) -> dict[str, float]:
    random = sd.done("random")
    effects = stats.effect_table(stats.shares(sd, random), sd.quality(random), rounds)
    chosen = effects[effects["contrast"].isin(CONTRASTS)]
    return {f"effect {row.contrast}": float(row.effect) for row in chosen.itertuples()}


def sweep_losses(sweep_dir: Path) -> pd.DataFrame:
    from qua2.explain.sensitivity import fp_metric, sweep_sensitivity
    from qua2.study.study import Study
    from qua2.surrogates.data import load_study_data

    study = Study.open(sweep_dir)
    data = load_study_data(study)
    return sweep_sensitivity(data, fp_value=fp_metric(study, data.primary))


def interaction_attribution(sd: StudyDir, rows_used: int) -> tuple[float, pd.Series]:
    """Share of XGBoost's |SHAP interaction| mass between *different* layers, and each
    layer's mean |main effect| (its own diagonal block), over the first ``rows_used`` random
    configurations (exact interaction values cost about features × a SHAP explanation)."""
    import shap
    import xgboost as xgb

    from qua2.surrogates.data import load_study_data
    from qua2.surrogates.fit import load_fitted

    surrogate: Any = load_fitted(sd.study, "xgb")
    data = load_study_data(sd.study)
    rows = data.mask(("random",), data.target())
    encoder = surrogate.checked_encoder()
    features = encoder.features(data.choices[rows][:rows_used])
    explainer = shap.TreeExplainer(surrogate.booster_)
    values = np.abs(explainer.shap_interaction_values(
        xgb.DMatrix(features, feature_names=surrogate._xgb_names())))  # [N, F, F]
    layer = encoder.feature_layer
    onehot = (layer[:, None] == np.arange(encoder.n_layers)[None, :]).astype(float)
    per_layer = np.einsum("nij,ia,jb->nab", values, onehot, onehot)  # [N, L, L]
    total = per_layer.sum()
    between = total - np.einsum("naa->", per_layer)
    main = pd.Series(np.einsum("naa->a", per_layer) / len(features), index=encoder.layers)
    return float(between / total), main


def shap_vs_sweep(sd: StudyDir, sweep: pd.DataFrame, main: pd.Series) -> dict[str, float]:
    from qua2.explain.sensitivity import importance_vs_sweep

    table = sd.read_csv("explain", "xgb", "layer_importance.csv")
    out = {}
    if table is not None:
        importance = table.set_index("layer")["mean_abs_shap"]
        out["SHAP vs sweep ρ"] = importance_vs_sweep(importance, sweep)["spearman"]
    out["main-effect SHAP vs sweep ρ"] = importance_vs_sweep(main, sweep)["spearman"]
    return out


def role_importance(sd: StudyDir) -> dict[str, float]:
    """XGBoost's mean |SHAP| per layer role (FINDINGS' "which layers matter"), from the
    study's own explain stage."""
    table = sd.read_csv("explain", "xgb", "importance_by_group.csv")
    if table is None:
        return {}
    roles = table[table["view"] == "role"]
    return {f"SHAP {row.group}": float(row.mean_abs_shap) for row in roles.itertuples()}


def replicate_row(directory: Path, sweep: pd.DataFrame | None, rounds: int,
                  interaction_rows: int) -> dict[str, Any]:
    sd = StudyDir.open(directory)
    share, main = interaction_attribution(sd, interaction_rows)
    row: dict[str, Any] = {"replicate": directory.name, **surrogate_rhos(sd),
                           **method_effects(sd, rounds), "interaction share": share,
                           **role_importance(sd)}
    if sweep is not None:
        row.update(shap_vs_sweep(sd, sweep, main))
    return row


def across(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, 95% t-interval over replicates, and the range, for every numeric column."""
    from scipy import stats as sstats

    rows = []
    for column in frame.columns.drop("replicate"):
        values = frame[column].to_numpy(float)
        n, mean = len(values), float(values.mean())
        half = (float(sstats.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n))
                if n > 1 else float("nan"))
        rows.append({"quantity": column, "mean": mean, "lo": mean - half, "hi": mean + half,
                     "min": float(values.min()), "max": float(values.max()),
                     "per replicate": " ".join(f"{v:.3g}" for v in values)})
    return pd.DataFrame(rows)


def analyse(directory: Path, sweep_dir: Path | None, rounds: int,
            interaction_rows: int) -> pd.DataFrame:
    from qua2.errors import Qua2Error
    from qua2.search.replicates import replicate_dirs

    replicates = replicate_dirs(directory)
    if not replicates:
        raise Qua2Error(f"{directory} holds no replicate-N study directories; make them with "
                        "`qua2 run STUDY.yaml --out DIR --replicates K`.")
    sweep = sweep_losses(sweep_dir) if sweep_dir is not None else None
    return pd.DataFrame([replicate_row(d, sweep, rounds, interaction_rows)
                         for d in replicates])


def markdown(results: dict[str, pd.DataFrame], directories: list[Path]) -> str:
    parts = ["# Findings across replicates", ""]
    for directory, (name, frame) in zip(directories, results.items()):
        table = across(frame)
        table[["mean", "lo", "hi", "min", "max"]] = table[["mean", "lo", "hi", "min",
                                                          "max"]].round(3)
        parts += [f"## {name} ({len(frame)} replicates)", "", markdown_table(table), ""]
        pooled = directory / "replicates.md"
        if pooled.is_file():
            body = pooled.read_text().split("\n", 1)[1]
            parts += ["### Verified comparisons (pooled by `qua2 run --replicates`)", "",
                      body.strip(), ""]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__ or "")
    parser.add_argument("--sweeps", nargs="*", default=[],
                        help="one sweep study per replicates directory, same order")
    parser.add_argument("--interaction-rows", type=int, default=16,
                        help="random configs whose SHAP interaction values are computed")
    args = parser.parse_args(argv)
    directories = [Path(d) for d in args.studies]
    if len(args.sweeps) > len(directories):
        from qua2.errors import Qua2Error

        raise Qua2Error(f"{len(args.sweeps)} sweep studies for {len(directories)} replicates "
                        "directories; give at most one --sweeps entry per directory, same order.")
    sweeps = [Path(s) for s in args.sweeps] + [None] * (len(directories) - len(args.sweeps))
    results = {d.name: analyse(d, s, args.rounds, args.interaction_rows)
               for d, s in zip(directories, sweeps)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in results.items():
        path = out / f"{name}.csv"
        frame.to_csv(path, index=False)
        written.append(path)
    (out / "replicated.md").write_text(markdown(results, directories))
    report_written(out, [*written, out / "replicated.md"])
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
