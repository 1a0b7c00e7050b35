"""Study throughput: configs per minute and the overhead beyond the denoiser's forward passes.

Runs the digits-dit study's anchors plus N random configurations (256 images × 20 DDIM steps
each) in a fresh directory and reports, from the timings the store records per config:

- configs/minute (wall clock, all workers together);
- overhead = 1 − Σ generate / (wall × workers): applying cached weights, scoring, storing and
  idle time, as a share of the worker time (target ≤ 10%).

    python benchmarks/bench_study.py --configs 12 --workers 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from qua2.pipeline import RunOptions, run_study
from qua2.study.store import Store

EXPERIMENT = Path(__file__).parents[1] / "experiments" / "digits-dit.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="qua2-bench-study-"))
    # Everything before the timed part: model, reference, option cache.
    run_study(EXPERIMENT, out, stages=["model", "reference", "cache"])
    options = RunOptions(workers=args.workers, threads=args.threads, num_configs=args.configs)
    started = time.perf_counter()
    run_study(EXPERIMENT, out, options, stages=["sample"])
    wall = time.perf_counter() - started
    with Store(out / "study.sqlite") as store:
        rows = store.rows(kind="random", status="done")
    phases = {k: sum(r.timings.get(k, 0.0) for r in rows) for k in
              ("apply", "generate", "restore", "score")}
    worker_time = wall * args.workers
    print(f"configs evaluated      {len(rows)}")
    print(f"wall time              {wall:.1f} s  ({args.workers} workers × {args.threads} threads)")
    print(f"configs per minute     {60 * len(rows) / wall:.2f}")
    for name, seconds in phases.items():
        print(f"{name:<22} {seconds / max(1, len(rows)):.3f} s per config")
    print(f"overhead beyond generate {1 - phases['generate'] / worker_time:.1%} of worker time "
          f"(apply+restore {(phases['apply'] + phases['restore']) / worker_time:.2%}, "
          f"score {phases['score'] / worker_time:.1%})")


if __name__ == "__main__":
    main()
