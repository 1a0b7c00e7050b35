"""``qua2 explain DIR``: SHAP explanations, sensitivity checks and figures of a fitted study.

Writes PNG figures and the CSV behind each into ``DIR/explain/`` (see docs/surrogates.md),
and a summary in ``DIR/explain/explain.json``. Run ``qua2 fit DIR`` first.
"""

from __future__ import annotations

import argparse

from qua2.cli.args import non_negative_int, positive_int
from qua2.surrogates.registry import SURROGATES


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("explain", help="SHAP explanations and figures",
                                   description=__doc__)
    parser.add_argument("study_dir")
    parser.add_argument("--surrogate", action="append", choices=list(SURROGATES),
                        help="surrogate(s) to explain (repeatable; default: the best fitted)")
    parser.add_argument("--configs", type=positive_int,
                        help="configs explained (default 300 exact, 48 for permutation SHAP)")
    parser.add_argument("--background", type=positive_int, default=24,
                        help="background configs for permutation SHAP and sub-graph scores")
    parser.add_argument("--max-variants", type=positive_int, default=1296,
                        help="variants scored per sub-graph (sampled when more)")
    parser.add_argument("--top", type=positive_int, default=20, help="layers in the beeswarm")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--force", action="store_true", help="recompute even if up to date")
    return parser


def run(args: argparse.Namespace) -> int:
    from qua2.explain.stage import ExplainOptions, explain_study
    from qua2.study.study import Study

    options = ExplainOptions(surrogates=tuple(args.surrogate) if args.surrogate else None,
                             background=args.background, max_variants=args.max_variants,
                             top=args.top, seed=args.seed, force=args.force)
    if args.configs is not None:
        options.max_configs = options.max_configs_permutation = args.configs
    study = Study.open(args.study_dir)
    explain_study(study, options)
    print(f"explanations → {study.path('explain')}")
    return 0
