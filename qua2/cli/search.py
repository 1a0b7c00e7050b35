"""``qua2 search DIR --bits 3.25 3.5 …``: configs within exact average-bit budgets, verified.

For each budget: qua2's picks (the best fitted surrogate, linearised into an exact integer
programme, then refined by local search on the full surrogate) and the baselines (uniform,
best sampled, MixDQ integer programme on the sweep, random at budget). Then every distinct
candidate is evaluated for real on the held-out verification seeds with bootstrap intervals
(``DIR/verification/``), unless ``--no-verify``.
"""

from __future__ import annotations

import argparse

from qua2.cli.args import finite_float, positive_int
from qua2.cli.run import add_worker_options, worker_options
from qua2.search.stage import DEFAULT_BUDGETS
from qua2.surrogates.registry import SURROGATES


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("search", help="budgeted search + real verification",
                                   description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study_dir")
    parser.add_argument("--bits", type=finite_float, nargs="+",
                        help="average-bit budgets, overheads included (default: the study's "
                             f"pipeline.budgets, else {' '.join(map(str, DEFAULT_BUDGETS))})")
    parser.add_argument("--surrogate", choices=["best", *SURROGATES], default="best",
                        help="which fitted surrogate guides the search")
    parser.add_argument("--top", type=positive_int, default=2, help="qua2 picks kept per budget")
    parser.add_argument("--no-verify", action="store_true", help="skip real verification")
    parser.add_argument("--rounds", type=positive_int, default=200, help="bootstrap resamples")
    add_worker_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from qua2.search.stage import stage_search
    from qua2.search.verification import stage_verify
    from qua2.study.stages import RunOptions
    from qua2.study.study import Study

    study = Study.open(args.study_dir)
    options = RunOptions(budgets=tuple(args.bits) if args.bits else None,
                         surrogate=args.surrogate, top=args.top, bootstrap_rounds=args.rounds,
                         **worker_options(args))
    stage_search(study, options)
    if not args.no_verify:
        stage_verify(study, options)
    return 0
