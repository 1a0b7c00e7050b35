"""``qua2 sweep DIR``: each layer alone at each option, the rest FP (MixDQ-style sensitivity)."""

from __future__ import annotations

import argparse

from qua2.cli.run import add_worker_options, worker_options
from qua2.study.stages import RunOptions, stage_sweep
from qua2.study.study import Study


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("sweep", help="one-layer-at-a-time sensitivity sweep",
                                   description=__doc__)
    parser.add_argument("study_dir")
    add_worker_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    stage_sweep(Study.open(args.study_dir), RunOptions(**worker_options(args)))
    return 0
