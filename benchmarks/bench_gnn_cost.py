"""Benchmark: what the GNN surrogate costs next to XGBoost on a real study, and what it buys.

``qua2 fit`` cross-validates every surrogate (5 folds) and fits it once more on every row; for
the GNN that is six trainings, which dominated a 300-configuration digits study on a CPU
(issue 18). This script times exactly that (``cross_validate`` + the final fit, learning
curves off, as ``qua2 fit`` runs the GNN) for XGBoost and for GNN variants given as
``name:param=value,param=value``, and prints held-out ρ, seconds and the GNN/XGBoost ratio:

    python benchmarks/bench_gnn_cost.py runs/digits-dit
    python benchmarks/bench_gnn_cost.py runs/digits-dit --gnn before:epochs=100,patience=0 now:

The study must have finished its random sampling (``qua2 run … --stages … sample``).
Results are recorded in docs/BENCHMARKS.md (machine and load noted there).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``"name:epochs=40,hidden=32"`` → ``("name", {"epochs": 40, "hidden": 32})``."""
    name, _, rest = text.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        for cast in (int, float):
            try:
                params[key] = cast(value)
                break
            except ValueError:
                continue
        else:
            params[key] = value
    return name or "gnn", params


def bench(study_dir: str, kind: str, params: dict[str, Any], threads: int) -> dict[str, Any]:
    """CV + final fit of one surrogate on the study's rows; ρ and seconds."""
    from qua2.study.graph import study_graph
    from qua2.study.study import Study
    from qua2.surrogates.cv import cross_validate
    from qua2.surrogates.data import load_study_data
    from qua2.surrogates.fit import FitOptions, make_surrogate

    study = Study.open(study_dir)
    data = load_study_data(study)
    target = data.target()
    options = FitOptions(threads=threads, params={kind: params})
    graph = study_graph(study) if kind == "gnn" else None
    estimator = make_surrogate(kind, data, options, graph)
    started = time.perf_counter()
    result = cross_validate(estimator, data, target, curve_sizes=())
    rows = data.mask(("random", "uniform"), target)
    estimator.fit(data.choices[rows], data.values(target)[rows])
    seconds = time.perf_counter() - started
    summary = result.summary
    return {"rho": summary["spearman_mean"], "rho_std": summary["spearman_std"],
            "seconds": seconds, "epochs_run": getattr(estimator, "epochs_run_", None)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study")
    parser.add_argument("--gnn", nargs="*", default=["gnn:"],
                        help="GNN variants name:param=value,… (default: qua2's defaults)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print(f"# {args.study}; load average {os.getloadavg()[0]:.1f}; threads {args.threads}")
    xgb = bench(args.study, "xgb", {}, args.threads)
    print("| surrogate | held-out ρ | fit + CV (s) | × xgb | epochs run (final fit) |")
    print("|---|---|---|---|---|")
    print(f"| xgb | {xgb['rho']:.3f} ± {xgb['rho_std']:.3f} | {xgb['seconds']:.0f} | 1.0 | — |")
    for variant in args.gnn:
        name, params = parse_variant(variant)
        row = bench(args.study, "gnn", params, args.threads)
        print(f"| gnn {name} {params or ''} | {row['rho']:.3f} ± {row['rho_std']:.3f} | "
              f"{row['seconds']:.0f} | {row['seconds'] / xgb['seconds']:.1f} | "
              f"{row['epochs_run'] if row['epochs_run'] is not None else '—'} |", flush=True)


if __name__ == "__main__":
    main()
