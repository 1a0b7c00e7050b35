"""The Ray executor against the local one: throughput, start-up cost, identical numbers.

Prepares the quick digits-dit study once (model, FP reference, option cache), copies it, queues
the same N random configurations in each copy and evaluates them with

- the local executor (``--workers`` processes × ``--threads`` threads), and
- the Ray executor (``--workers`` actors × ``--threads`` CPUs, a Ray instance started here),

then prints wall time, configs/minute, the Ray start-up and actor start-up (model + option
cache load) time, and whether every stored metric is bit-identical between the two. Last, the
option-cache shard read rate, which bounds what an actor pays to load a larger cache (the cost
of the "actors read the study directory by path" design, qua2/study/ray_executor.py).

    python -m benchmarks.bench_ray --configs 8 --workers 2 --threads 1
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from qua2.pipeline import run_study
from qua2.study.config import ExecutorSection
from qua2.study.queue import queue_random
from qua2.study.store import Store
from qua2.study.study import Study
from qua2.study.workers import evaluate_pending

EXPERIMENT = Path(__file__).parents[1] / "experiments" / "digits-dit-quick.yaml"
PIXART_CACHE_GB = 1.6  # PixArt-α's option cache for six options (docs/BENCHMARKS.md)


def _evaluate(prepared: Path, name: str, configs: int, executor: ExecutorSection
              ) -> tuple[float, dict[str, dict[str, float]]]:
    target = prepared.parent / name
    shutil.copytree(prepared, target)
    study = Study.open(target)
    queue_random(study, configs)
    started = time.perf_counter()
    evaluate_pending(study, executor=executor, desc=name)
    wall = time.perf_counter() - started
    with Store(study.path("study.sqlite")) as store:
        return wall, {row.id: row.metrics for row in store.rows(status="done")}


def _ray_startup(executor: ExecutorSection, study: Study) -> tuple[float, float]:
    from qua2.study.ray_executor import ActorPool, connect

    started = time.perf_counter()
    connect(executor)
    connected = time.perf_counter()
    pool = ActorPool(study, executor)
    ready = time.perf_counter()
    pool.shutdown()
    return connected - started, ready - connected


def _shard_read_rate(folder: Path, cold: bool, megabytes: int = 512, layers: int = 64
                     ) -> float | None:
    """GB/s reading ``layers`` shard-sized safetensors files (the digits cache is too small).

    ``cold``: from disk, after dropping the page cache (needs root; None without it).
    """
    import os

    import torch
    from safetensors.torch import load_file, save_file

    per_layer = megabytes * 2**20 // layers // 2  # int16 elements: packed low-bit codes
    files = [folder / f"layer{i}.safetensors" for i in range(layers)]
    for file in files:
        save_file({"codes": torch.randint(-999, 999, (per_layer,), dtype=torch.int16)}, file)
    if cold:
        os.sync()
        try:
            Path("/proc/sys/vm/drop_caches").write_text("3\n")
        except OSError:
            return None
    started = time.perf_counter()
    for file in files:
        load_file(file)["codes"].clone()  # clone: touch every byte (loading maps lazily)
    return megabytes / 1024 / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="qua2-bench-ray-"))
    run_study(EXPERIMENT, root / "prepared", stages=["model", "reference", "cache"])
    local = ExecutorSection("local", args.workers, args.threads)
    ray = ExecutorSection("ray", args.workers, args.threads)
    startup, actors = _ray_startup(ray, Study.open(root / "prepared"))
    local_wall, local_rows = _evaluate(root / "prepared", "local", args.configs, local)
    ray_wall, ray_rows = _evaluate(root / "prepared", "ray", args.configs, ray)
    print(f"configurations          {args.configs} ({args.workers} workers × {args.threads} "
          "threads, 128 images × 20 steps each)")
    print(f"local executor          {local_wall:.1f} s  ({60 * args.configs / local_wall:.2f} "
          "configs/min)")
    print(f"ray executor            {ray_wall:.1f} s  ({60 * args.configs / ray_wall:.2f} "
          "configs/min), ray/local wall "
          f"{ray_wall / local_wall:.2f}")
    print(f"ray start-up            {startup:.1f} s (once per process)")
    print(f"actor start-up          {actors:.1f} s for {args.workers} actors (model + cache)")
    same = local_rows == ray_rows and len(ray_rows) == args.configs
    print(f"metrics bit-identical   {same} ({len(ray_rows)} rows)")
    (root / "shards").mkdir()
    for cold in (False, True):
        rate = _shard_read_rate(root / "shards", cold)
        where = "disk, page cache dropped" if cold else "page cache"
        if rate is None:
            print(f"option-cache shard read ({where}): not measured (needs root)")
            continue
        print(f"option-cache shard read {rate:.2f} GB/s (64 shards, 0.5 GB, {where}) → "
              f"{PIXART_CACHE_GB / rate:.1f} s for a {PIXART_CACHE_GB} GB cache")
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
