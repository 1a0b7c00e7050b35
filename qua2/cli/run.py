"""``qua2 run STUDY.yaml --out DIR``: every stage of a study, in order, skipping what is done."""

from __future__ import annotations

import argparse

from qua2.cli.args import positive_int
from qua2.pipeline import STAGE_NAMES, run_study
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
    return parser


def add_worker_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=positive_int, help="evaluation processes (default: YAML)")
    parser.add_argument("--threads", type=positive_int, help="torch threads per worker")


def run(args: argparse.Namespace) -> int:
    options = RunOptions(workers=args.workers, threads=args.threads,
                         num_configs=args.num_configs)
    study = run_study(args.study, args.out, options, stages=args.stages)
    print(f"study directory: {study.directory}")
    return 0
