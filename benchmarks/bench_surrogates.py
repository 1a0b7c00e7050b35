"""Benchmark: surrogate accuracy and cost on synthetic studies with a known ground truth.

For each size (transformer blocks of the synthetic DiT-like graph) it builds a study with
``--configs`` random configs (``tests.fixtures.synthetic_study``), runs k-fold CV of every surrogate
and prints a Markdown table: held-out Spearman ρ / Kendall τ / NDCG@10, seconds per fit, and
for XGBoost the SHAP time and the rank correlation of mean |SHAP| with the true per-layer
sensitivity. ``--graph FAMILY`` also times one GNN training step and one inference batch on
the traced full-size graph of a real architecture (meta device, no weights).

    python -m benchmarks.bench_surrogates                          # 4 blocks, ridge + xgb
    python -m benchmarks.bench_surrogates --blocks 4 28 --surrogates ridge xgb gnn --epochs 60
    python -m benchmarks.bench_surrogates --graph pixart --batch 32
    python -m benchmarks.bench_surrogates --json results.json

Results are recorded in docs/surrogates.md (machine and load noted there).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np
import torch


def bench_size(blocks: int, configs: int, kinds: list[str], epochs: int, folds: int,
               noise: float) -> list[dict]:
    """CV of every surrogate on one synthetic study; returns one row per surrogate."""
    from qua2.explain.attributions import explain
    from qua2.study.graph import study_graph
    from qua2.surrogates.cv import cross_validate
    from qua2.surrogates.data import load_study_data
    from qua2.surrogates.fit import FitOptions, make_surrogate
    from qua2.surrogates.ranking import spearman
    from tests.fixtures.synthetic_study import make_synthetic_study

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        study, truth = make_synthetic_study(folder, n_random=configs, n_blocks=blocks,
                                            noise=noise, sweep=False)
        data, graph = load_study_data(study), study_graph(study)
        options = FitOptions(gnn_epochs=epochs)
        for kind in kinds:
            estimator = make_surrogate(kind, data, options, graph)
            result = cross_validate(estimator, data, data.target(), k=folds)
            summary = result.summary
            row = {"blocks": blocks, "layers": data.encoder.n_layers, "configs": configs,
                   "surrogate": kind, "spearman": summary["spearman_mean"],
                   "kendall": summary["kendall_mean"], "ndcg@10": summary["ndcg@10_mean"],
                   "seconds_per_fit": result.seconds / folds}
            if kind == "xgb":
                cv_rows = data.cv_rows(data.target())
                model = estimator.fit(data.choices[cv_rows], data.values("objective")[cv_rows])
                start = time.perf_counter()
                lexp = explain(model, data.choices[cv_rows])
                row["shap_seconds"] = time.perf_counter() - start
                importance = lexp.importance()[data.encoder.layers].to_numpy()
                row["shap_vs_truth"] = spearman(importance, truth.sensitivity)
            rows.append(row)
            print(f"  {blocks} blocks, {kind}: ρ {row['spearman']:.3f}", flush=True)
    return rows


def bench_graph(family: str, batch: int, repeat: int) -> dict:
    """Seconds per GNN training step and per inference batch on a full-size traced graph."""
    from qua2.graph import trace
    from qua2.models.architectures import full_size_denoiser
    from qua2.specs import SearchSpace
    from qua2.surrogates.encoding import ConfigEncoder
    from qua2.surrogates.gnn import GNNSurrogate

    module, example = full_size_denoiser(family)
    graph = trace(module, *example.args, **example.kwargs)
    space = SearchSpace.grid(["uaq", "kmeans_c", "kmeans_a"], [3, 4])
    encoder = ConfigEncoder(graph.layers(), space.options)
    model = GNNSurrogate(encoder, graph, epochs=0)
    model._build()
    rng = np.random.default_rng(0)
    choices = rng.integers(0, len(space), size=(batch, encoder.n_layers))
    target = torch.randn(batch)
    optimiser = torch.optim.AdamW(model.module_.parameters())
    step = []
    for _ in range(repeat):
        start = time.perf_counter()
        optimiser.zero_grad()
        model._loss(choices, target).backward()
        optimiser.step()
        step.append(time.perf_counter() - start)
    model.module_.eval()
    model.y_mean_, model.y_scale_ = 0.0, 1.0
    start = time.perf_counter()
    model.predict(choices)
    return {"family": family, "nodes": graph.num_nodes, "edges": graph.num_edges,
            "layers": encoder.n_layers, "batch": batch,
            "train_step_s": float(np.median(step)),
            "predict_batch_s": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, nargs="*", default=[4])
    parser.add_argument("--configs", type=int, default=300)
    parser.add_argument("--surrogates", nargs="*", default=["ridge", "xgb"])
    parser.add_argument("--epochs", type=int, default=100, help="GNN epochs")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--noise", type=float, default=0.05)
    parser.add_argument("--graph", nargs="*", default=[], help="full-size families to time")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {"machine": f"{platform.processor() or platform.machine()}, "
                          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
               "sizes": [], "graphs": []}
    for blocks in args.blocks:
        results["sizes"] += bench_size(blocks, args.configs, args.surrogates, args.epochs,
                                       args.folds, args.noise)
    for family in args.graph:
        results["graphs"].append(bench_graph(family, args.batch, args.repeat))
    print(f"\n{results['machine']}\n")
    print("| blocks | layers | surrogate | Spearman ρ | Kendall τ | NDCG@10 | s / fit |"
          " SHAP s | SHAP vs truth ρ |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results["sizes"]:
        shap_s = f"{r['shap_seconds']:.1f}" if "shap_seconds" in r else "–"
        truth = f"{r['shap_vs_truth']:.3f}" if "shap_vs_truth" in r else "–"
        print(f"| {r['blocks']} | {r['layers']} | {r['surrogate']} | {r['spearman']:.3f} | "
              f"{r['kendall']:.3f} | {r['ndcg@10']:.3f} | {r['seconds_per_fit']:.1f} | "
              f"{shap_s} | {truth} |")
    if results["graphs"]:
        print("\n| graph | nodes | edges | layers | batch | train step s | predict batch s |")
        print("|---|---|---|---|---|---|---|")
        for g in results["graphs"]:
            print(f"| {g['family']} | {g['nodes']} | {g['edges']} | {g['layers']} | "
                  f"{g['batch']} | {g['train_step_s']:.3f} | {g['predict_batch_s']:.3f} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
