"""``qua2 sample DIR -n N``: evaluate N more configurations of a study (random draws, or
sequential-design rounds when the study's ``design.kind`` is ``sequential``)."""

from __future__ import annotations

import argparse

from qua2.cli.args import positive_int
from qua2.cli.run import add_worker_options, worker_options
from qua2.search.design import stage_sample
from qua2.study.stages import RunOptions
from qua2.study.store import Store
from qua2.study.study import Study


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("sample", help="evaluate N more configurations",
                                   description=__doc__)
    parser.add_argument("study_dir")
    parser.add_argument("-n", type=positive_int, required=True, help="how many more configurations")
    add_worker_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    study = Study.open(args.study_dir)
    with Store(study.path("study.sqlite")) as store:
        have = store.count(kind="random") + store.count(kind="design")
    options = RunOptions(**worker_options(args), num_configs=have + args.n)
    stage_sample(study, options)
    return 0
