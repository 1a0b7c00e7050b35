"""Benchmark: does a cheaper design (sequential + racing) find as good a configuration?

Compares finished studies of the same model — a reference (``design: random``, every
configuration on every image, with the one-layer sweep) and one or more cheaper designs — on
what a researcher pays and what she gets (issue 18):

- **images generated** by the study's evaluations (anchors, random, sequential and sweep
  rows: the sum of each row's ``n_images``; selection and verification images are the same
  for every design and left out), and their share of the reference's;
- the surrogates' **held-out ρ** (``surrogates/cv_report.json``) and the **SHAP-vs-sweep**
  Spearman ρ of each design's XGBoost layer importance against the *reference's* sweep;
- the **verified pick** at ``--budget`` (the one selection chose) on the held-out
  verification seeds, and the **paired difference** of each pick to the mean of the reference
  replicates' picks (``--references K``: the first K studies), and of the designs' mean to
  the references' mean: every pick is generated from the same held-out seeds and scored on
  the same bootstrap resamples (Efron & Tibshirani 1993; :func:`qua2.stats.paired_interval`,
  bias-shifted for Fréchet distances).

    python benchmarks/bench_design.py runs/digits-dit runs/digits-dit-design/replicate-{1,2,3}
    python benchmarks/bench_design.py --references 3 \
        runs/digits-unet-quick-replicates/replicate-{1,2,3} \
        runs/digits-unet-quick-design/replicate-{1,2,3} --sweep runs/sweeps/digits-unet

Results are recorded in docs/BENCHMARKS.md ("Sequential design and racing").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

DESIGN_KINDS = ("uniform", "random", "design", "sweep")


def images_generated(study: Any) -> int:
    from qua2.study.store import Store

    with Store(study.path("study.sqlite")) as store:
        rows = [r for r in store.rows(status="done") if r.kind in DESIGN_KINDS]
    return int(sum(r.metrics.get("n_images", study.config.images_per_config) for r in rows))


def held_out_rho(study: Any) -> dict[str, float]:
    report = json.loads(study.path("surrogates", "cv_report.json").read_text())
    return {kind: entry["summary"]["spearman_mean"]
            for kind, entry in report["surrogates"].items()}


def shap_vs_sweep(study: Any, sweep: Any) -> float | None:
    import pandas as pd

    from qua2.explain.sensitivity import importance_vs_sweep

    path = study.path("explain", "xgb", "layer_importance.csv")
    if not path.exists():
        return None
    importance = pd.read_csv(path).set_index("layer")["mean_abs_shap"]
    return importance_vs_sweep(importance, sweep)["spearman"]


def reference_sweep(study: Any) -> Any:
    from qua2.explain.sensitivity import fp_metric, sweep_sensitivity
    from qua2.surrogates.data import load_study_data

    data = load_study_data(study)
    return sweep_sensitivity(data, fp_value=fp_metric(study, data.primary))


def chosen_pick(study: Any, budget: float) -> dict[str, Any]:
    """The configuration selection chose at ``budget`` and its row of the verification table."""
    import pandas as pd

    from qua2.search.stage import load_candidates

    selection = json.loads(study.path("search", "selection.json").read_text())
    chosen = next(s for s in selection if abs(s["budget"] - budget) < 1e-9)
    config = next(c.config for c in load_candidates(study) if c.config.digest() == chosen["id"])
    table = pd.read_csv(study.path("verification", "table.csv"))
    row = table[table["id"] == chosen["id"]].iloc[0]
    return {"id": chosen["id"], "config": config, "avg_bits": float(row["avg_bits"]),
            "verified": float(row[study.config.metrics.primary_metric]),
            "lo": float(row[f"{study.config.metrics.primary_metric}_lo"]),
            "hi": float(row[f"{study.config.metrics.primary_metric}_hi"])}


def pick_draws(reference_study: Any, picks: dict[str, Any], rounds: int
               ) -> dict[str, tuple[float, np.ndarray]]:
    """Each pick's primary metric on the reference study's held-out verification seeds, and
    its values on ``rounds`` bootstrap resamples shared by every pick (so they are paired)."""
    from qua2.stats import bootstrap_indices
    from qua2.study.evaluate import candidate_image_scores
    from qua2.study.option_cache import open_option_cache
    from qua2.study.reference import get_reference
    from qua2.study.scoring import build_scorer

    study = reference_study
    metric = study.config.metrics.primary_metric
    cache, scorer = open_option_cache(study), build_scorer(study)
    held_out = get_reference(study, "verification")
    index = bootstrap_indices(len(held_out.seeds), rounds, seed=0)
    out = {}
    for name, pick in picks.items():
        scores = candidate_image_scores(study, pick["config"].to_dict(), cache, scorer, held_out)
        out[name] = (scores.metric(metric), np.array([scores.metric(metric, i) for i in index]))
    return out


def group_difference(draws: dict[str, tuple[float, np.ndarray]], group: list[str],
                     base: list[str]) -> tuple[float, float, float]:
    """Mean of ``group``'s picks minus mean of ``base``'s, with its paired interval."""
    from qua2.stats import paired_interval

    def mean(names: list[str]) -> tuple[float, np.ndarray]:
        return (float(np.mean([draws[n][0] for n in names])),
                np.mean([draws[n][1] for n in names], axis=0))

    (a, a_draws), (b, b_draws) = mean(group), mean(base)
    return paired_interval(a_draws, b_draws, a - b, shift_bias=True)


def welch(a: list[float], b: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """``mean(a) − mean(b)`` and its Welch t-interval (replicates as the unit)."""
    from scipy import stats

    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(stats.t.ppf((1 + level) / 2, dof) * np.sqrt(va + vb))
    delta = float(np.mean(a) - np.mean(b))
    return delta, delta - half, delta + half


def _interval(delta: tuple[float, float, float]) -> str:
    return f"{delta[0]:+.1f} [{delta[1]:+.1f}, {delta[2]:+.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", type=Path, nargs="+",
                        help="reference replicate(s) first, then the designs")
    parser.add_argument("--references", type=int, default=1,
                        help="how many of the studies are reference replicates")
    parser.add_argument("--budget", type=float, default=3.5)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--sweep", type=Path, default=None,
                        help="study whose sweep rows SHAP is compared with (default: the "
                             "reference)")
    args = parser.parse_args()

    import torch

    from qua2.study.study import Study

    torch.set_num_threads(1)
    studies = {str(d): Study.open(d) for d in args.studies}
    names = list(studies)
    references, designs = names[:args.references], names[args.references:]
    reference = studies[names[0]]  # its model, held-out seeds and metrics score every pick
    sweep = reference_sweep(Study.open(args.sweep) if args.sweep else reference)
    reference_images = images_generated(reference)
    picks = {name: chosen_pick(study, args.budget) for name, study in studies.items()}
    draws = pick_draws(reference, picks, args.rounds)
    metric = reference.config.metrics.primary_metric
    print(f"| study | images | share | ρ xgb | ρ gnn | SHAP vs sweep ρ | pick bits | "
          f"verified {metric} [95%] | Δ vs reference picks' mean [95%] |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, study in studies.items():
        images = images_generated(study)
        rho = held_out_rho(study)
        agreement = shap_vs_sweep(study, sweep)
        pick = picks[name]
        print(f"| {name} | {images:,} | {images / reference_images:.0%} | "
              f"{rho.get('xgb', float('nan')):.3f} | {rho.get('gnn', float('nan')):.3f} | "
              f"{'—' if agreement is None else f'{agreement:.2f}'} | {pick['avg_bits']:.3f} | "
              f"{pick['verified']:.1f} [{pick['lo']:.1f}, {pick['hi']:.1f}] | "
              f"{_interval(group_difference(draws, [name], references))} |")
    if designs:
        print(f"\nMean of the designs' picks − mean of the references' picks ({metric}, paired "
              f"on the same {args.rounds} resamples of the held-out images): "
              f"{_interval(group_difference(draws, designs, references))}")
    if len(designs) > 1 and len(references) > 1:
        across = welch([draws[n][0] for n in designs], [draws[n][0] for n in references])
        print("Across replicates (Welch t-interval: the design's and the reference's own "
              f"randomness): {_interval(across)}")

if __name__ == "__main__":
    main()
