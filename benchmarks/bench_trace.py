"""Benchmark: trace full-size denoiser architectures on the ``meta`` device.

Builds each published architecture with no weights
(``qua2.models.architectures.full_size_denoiser``), traces it ``--repeat`` times and prints a
Markdown table: median/min trace time, nodes, edges, weight layers, parameters, and the node
count Qua²SeDiMo reports for its hand-written graph.

    python benchmarks/bench_trace.py                       # PixArt-α, SDXL, Flux.1-dev
    python benchmarks/bench_trace.py --families dit sd15 hunyuan sd3 --repeat 5
    python benchmarks/bench_trace.py --json results.json
    python benchmarks/bench_trace.py --families pixart --batch 128   # + GNN feature batching

Results are recorded in docs/graph.md (machine and load noted there).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from qua2.graph import trace
from qua2.models.architectures import FULL_SIZE_FAMILIES, full_size_denoiser

#: Node counts of Qua²SeDiMo's hand-written graphs (Mills et al., AAAI 2025).
QUA2SEDIMO_NODES = {"dit": 369, "pixart": 568, "hunyuan": 844, "sd15": 432, "sdxl": 1316}
NAMES = {"pixart": "PixArt-α 1024", "sdxl": "SDXL base", "flux": "Flux.1-dev",
         "dit": "DiT-XL/2 256", "sd15": "SD 1.5", "hunyuan": "Hunyuan-DiT v1.1",
         "sd3": "SD3 medium", "sana": "Sana 1600M 1024", "auraflow": "AuraFlow v0.3",
         "lumina2": "Lumina-Image-2.0"}


def bench(family: str, repeat: int) -> dict:
    """Trace ``family`` ``repeat`` times on meta; return timings and graph sizes."""
    start = time.perf_counter()
    module, example = full_size_denoiser(family)
    build = time.perf_counter() - start
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        graph = trace(module, *example.args, **example.kwargs)
        times.append(time.perf_counter() - start)
    ops = graph.nodes["op_type"].value_counts().to_dict()
    return {
        "family": family, "model": NAMES.get(family, family), "build_s": round(build, 2),
        "trace_median_s": round(statistics.median(times), 2), "trace_min_s": round(min(times), 2),
        "nodes": graph.num_nodes, "edges": graph.num_edges, "layers": len(graph.layers()),
        "params_M": round(int(graph.nodes["params"].sum()) / 1e6, 1),
        "qua2sedimo_nodes": QUA2SEDIMO_NODES.get(family), "op_types": ops,
    }


class _FakeStats:
    """Stand-in for an option cache entry (the real cache lives in qua2.quant)."""

    def __init__(self, bits: int) -> None:
        self.nbytes, self.fp16_nbytes, self.error = bits * 100, 1600, 1.0 / bits


class _FakeCache:
    def option_stats(self, layer: str, option) -> _FakeStats:
        return _FakeStats(option.bits)


def bench_batch(family: str, size: int, repeat: int) -> dict:
    """Seconds to featurize ``size`` random configs of ``family`` into one PyG batch."""
    import random

    from qua2.graph import GraphFeaturizer
    from qua2.specs import QuantConfig, SearchSpace

    module, example = full_size_denoiser(family)
    graph = trace(module, *example.args, **example.kwargs)
    space = SearchSpace.grid(["uaq", "kmeans_c", "kmeans_a"], [3, 4])
    rng = random.Random(0)
    configs = [QuantConfig({layer: rng.choice(space.options) for layer in graph.layers()})
               for _ in range(size)]
    featurizer = GraphFeaturizer(graph, space)
    cache = _FakeCache()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        batch = featurizer.batch(configs, cache)
        times.append(time.perf_counter() - start)
    return {"family": family, "configs": size, "nodes": int(batch.num_nodes),
            "features": int(batch.x.shape[1]), "batch_median_s": round(statistics.median(times), 3)}


def _table(rows: list[dict]) -> str:
    head = ("| model | params (M) | trace median (s) | trace min (s) | nodes | edges | "
            "weight layers | Qua²SeDiMo nodes |\n|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        ref = r["qua2sedimo_nodes"] if r["qua2sedimo_nodes"] is not None else "—"
        lines.append(f"| {r['model']} | {r['params_M']} | {r['trace_median_s']} | "
                     f"{r['trace_min_s']} | {r['nodes']} | {r['edges']} | {r['layers']} | {ref} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=["pixart", "sdxl", "flux"],
                        choices=FULL_SIZE_FAMILIES)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--batch", type=int, default=0, metavar="N",
                        help="also time featurizing N random configs into one PyG batch")
    args = parser.parse_args()
    rows = [bench(f, args.repeat) for f in args.families]
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}")
    print(_table(rows))
    if args.batch:
        for family in args.families:
            result = bench_batch(family, args.batch, args.repeat)
            rows.append(result)
            print(f"featurize {result['configs']} configs of {family}: "
                  f"{result['batch_median_s']} s ({result['nodes']} nodes × "
                  f"{result['features']} features)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
