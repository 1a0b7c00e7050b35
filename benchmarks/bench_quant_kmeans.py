"""Vectorised 1-D k-means (qua2.quant.kmeans) against scikit-learn's KMeans per channel.

Qua²SeDiMo's public code clusters every output channel with ``sklearn.cluster.KMeans``; this
benchmark runs both on the same weights and reports the speed ratio (sklearn time / ours) and
the error ratio (our SSE / sklearn's SSE on the same channels; < 1 means ours is better).

Weights: every quantizable layer of the embedded digits models (real trained weights) and a
random-normal ``[4608, 1152]`` matrix shaped like PixArt-α's feed-forward ``ff.net.0.proj``.
scikit-learn runs on a random sample of ``--channels`` channels per layer and its time is the
median time per channel × the number of channels; ours clusters the whole layer at once and
its time is the fastest of ``--repeats`` runs (both estimates resist load spikes on a shared
machine). Our SSE uses the fp16-rounded codebook that ``kmeans_c`` actually stores. A last
table batches the rows of equal length of all layers of a model into one call, as the option
cache does.

    python benchmarks/bench_quant_kmeans.py                  # digits models + PixArt-shaped
    python benchmarks/bench_quant_kmeans.py --only pixart --channels 128
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from qua2.quant.kmeans import kmeans_1d
from qua2.quant.primitives import fp16_round


def _layers(which: str) -> list[tuple[str, torch.Tensor]]:
    out: list[tuple[str, torch.Tensor]] = []
    if which in ("all", "digits"):
        from qua2.models import load_model

        for family in ("digits-dit", "digits-unet"):
            adapter = load_model(family)
            for name in adapter.quantizable_layers():
                weight = adapter.module.get_submodule(name).weight.detach()
                out.append((f"{family}:{name}", weight.reshape(weight.shape[0], -1).float()))
    if which in ("all", "pixart"):
        g = torch.Generator().manual_seed(0)
        out.append(("pixart-ff [4608, 1152] N(0, 0.02²)", torch.randn(4608, 1152, generator=g)
                    * 0.02))
    return out


def _sklearn(rows: np.ndarray, k: int) -> tuple[float, float]:
    """(median seconds per channel, total SSE) of scikit-learn KMeans, one fit per row."""
    from sklearn.cluster import KMeans

    times, sse = [], 0.0
    for row in rows:
        start = time.perf_counter()
        sse += KMeans(n_clusters=k, n_init="auto", random_state=0).fit(row[:, None]).inertia_
        times.append(time.perf_counter() - start)
    return float(np.median(times)), sse


def _ours(x: torch.Tensor, k: int, repeats: int) -> tuple[float, torch.Tensor]:
    """(fastest of ``repeats`` runs in seconds, SSE per row with the fp16 codebook)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        centroids, codes = kmeans_1d(x, k)
        best = min(best, time.perf_counter() - start)
    deq = fp16_round(centroids).double().gather(1, codes.long())
    return best, (x.double() - deq).square().sum(dim=1)


def run(which: str, channels: int, bits: tuple[int, ...], seed: int, repeats: int
        ) -> list[dict]:
    rng = np.random.default_rng(seed)
    results = []
    for name, x in _layers(which):
        rows, n = x.shape
        for b in bits:
            k = 2**b
            if n <= k:
                continue  # every value its own centroid: nothing to compare
            sample = np.sort(rng.choice(rows, size=min(channels, rows), replace=False))
            per_channel, sse_sk = _sklearn(x[sample].double().numpy(), k)
            t_ours, sse_rows = _ours(x, k, repeats)
            results.append({
                "layer": name, "rows": rows, "n": n, "bits": b,
                "sklearn_s": per_channel * rows, "ours_s": t_ours,
                "sse_sklearn": sse_sk, "sse_ours": float(sse_rows[sample].sum()),
            })
            r = results[-1]
            print(f"{name:60s} {rows:5d}x{n:<5d} w{b}: sklearn {r['sklearn_s']:8.2f}s  ours "
                  f"{t_ours:6.3f}s  speed x{r['sklearn_s'] / t_ours:6.0f}  error ratio "
                  f"{r['sse_ours'] / sse_sk:.4f}", flush=True)
    return results


def run_batched(results: list[dict], which: str, bits: tuple[int, ...], repeats: int) -> None:
    """Whole-model time when rows of equal length from all layers go through one call."""
    models: dict[str, dict[int, list[torch.Tensor]]] = {}
    for name, x in _layers(which):
        models.setdefault(name.split(":")[0], {}).setdefault(x.shape[1], []).append(x)
    print("\nwhole model, rows of equal length batched across layers (as the option cache does)")
    for model, by_length in models.items():
        for b in bits:
            groups = [torch.cat(xs) for n, xs in by_length.items() if n > 2**b]
            t_ours = sum(_ours(g, 2**b, repeats)[0] for g in groups)
            t_sk = sum(r["sklearn_s"] for r in results
                       if r["layer"].split(":")[0] == model and r["bits"] == b)
            print(f"  {model:45s} w{b}: sklearn {t_sk:8.1f}s  ours {t_ours:7.2f}s  "
                  f"speed x{t_sk / t_ours:6.0f}")


def summarise(results: list[dict]) -> None:
    groups: dict[str, list[dict]] = {}
    for r in results:
        groups.setdefault(r["layer"].split(":")[0] + f" w{r['bits']}", []).append(r)
    print("\nsummary (time summed over layers; error = Σ SSE ours / Σ SSE sklearn)")
    for group, rows in groups.items():
        t_sk = sum(r["sklearn_s"] for r in rows)
        t_ours = sum(r["ours_s"] for r in rows)
        err = sum(r["sse_ours"] for r in rows) / sum(r["sse_sklearn"] for r in rows)
        worst = max(r["sse_ours"] / r["sse_sklearn"] for r in rows)
        print(f"  {group:45s} layers {len(rows):3d}  sklearn {t_sk:8.1f}s  ours {t_ours:7.2f}s"
              f"  speed x{t_sk / t_ours:6.0f}  error ratio {err:.4f} (worst layer {worst:.4f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["all", "digits", "pixart"], default="all")
    parser.add_argument("--channels", type=int, default=64,
                        help="channels per layer clustered by scikit-learn (time is scaled)")
    parser.add_argument("--bits", type=int, nargs="+", default=[3, 4])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3,
                        help="our time is the fastest of this many runs")
    parser.add_argument("--json", type=Path, help="also write the per-layer results here")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    results = run(args.only, args.channels, tuple(args.bits), args.seed, args.repeats)
    summarise(results)
    run_batched(results, args.only, tuple(args.bits), args.repeats)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
