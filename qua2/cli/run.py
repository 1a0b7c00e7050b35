"""``qua2 run STUDY.yaml --out DIR``: every stage of a study, in order, skipping what is done."""

from __future__ import annotations

import argparse
from typing import Any

from qua2.cli.args import positive_int
from qua2.pipeline import STAGE_NAMES, run_replicates, run_study
from qua2.study.stages import RunOptions


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("run", help="run (or resume) a whole study",
                                   description=__doc__)
    parser.add_argument("study", help="study YAML file (see experiments/)")
    parser.add_argument("--out", required=True, help="study directory to create or resume")
    parser.add_argument("--stages", nargs="+", choices=STAGE_NAMES,
                        help="run only these stages (default: all)")
    add_worker_options(parser)
    parser.add_argument("-n", "--num-configs", type=positive_int,
                        help="random configs (overrides YAML)")
    parser.add_argument("--replicates", type=positive_int,
                        help="run K replicates (independent sampler and surrogate seeds) into "
                             "DIR/replicate-1 … and pool them into DIR/replicates.md")
    return parser


def add_worker_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=positive_int,
                        help="evaluation workers: processes, or Ray actors (default: YAML)")
    parser.add_argument("--threads", type=positive_int, help="torch threads per worker")
    parser.add_argument("--executor", choices=["local", "ray"],
                        help="where configurations are evaluated (default: executor.kind)")
    parser.add_argument("--address", help="Ray cluster: auto, HOST:PORT or ray://HOST:PORT "
                                           "(default: executor.address; none: a Ray here)")


def worker_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`RunOptions` fields :func:`add_worker_options` sets."""
    return {"workers": args.workers, "threads": args.threads, "executor": args.executor,
            "address": args.address}


def run(args: argparse.Namespace) -> int:
    options = RunOptions(**worker_options(args), num_configs=args.num_configs)
    if args.replicates:
        studies = run_replicates(args.study, args.out, args.replicates, options, args.stages)
        print(f"{len(studies)} replicates in {args.out}; pooled: {args.out}/replicates.md")
        return 0
    study = run_study(args.study, args.out, options, stages=args.stages)
    print(f"study directory: {study.directory}")
    return 0
