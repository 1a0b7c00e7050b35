"""``qua2 fit DIR [--surrogate xgb|gnn|ridge|all]``: cross-validate and fit surrogates.

Writes ``DIR/surrogates/cv_report.json`` and ``cv_report.md`` (held-out Spearman ρ, Kendall τ,
NDCG@10, MAE per surrogate, learning curves), ``oof_predictions.csv`` and the fitted models.
"""

from __future__ import annotations

import argparse

from qua2.cli.args import finite_float, non_negative_int, positive_int
from qua2.errors import Qua2Error
from qua2.surrogates.registry import SURROGATES


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("fit", help="cross-validate and fit surrogates",
                                   description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study_dir")
    parser.add_argument("--surrogate", action="append", choices=[*SURROGATES, "all"],
                        help="which surrogate(s) (repeatable; default: all)")
    parser.add_argument("--target", help="metric to predict (default: objective)")
    parser.add_argument("--folds", type=positive_int, default=5, help="cross-validation folds")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--curve", type=positive_int, nargs="*", metavar="N",
                        help="learning-curve sizes (default 25 50 100 150 200; none: no curve)")
    parser.add_argument("--curve-gnn", action="store_true",
                        help="also a learning curve for the GNN (slow)")
    parser.add_argument("--no-anchors", action="store_true",
                        help="train on random configs only (default adds the uniform anchors)")
    parser.add_argument("--epochs", type=positive_int, help="GNN training epochs")
    parser.add_argument("--hop-rank", type=finite_float, metavar="W",
                        help="weight of Qua²SeDiMo's hop-level ranking loss (GNN)")
    parser.add_argument("--conv", choices=("gatv2", "gin"), help="GNN convolution")
    parser.add_argument("--threads", type=positive_int, default=1, help="CPU threads per model")
    parser.add_argument("--force", action="store_true", help="refit even if up to date")
    return parser


def run(args: argparse.Namespace) -> int:
    from qua2.study.study import Study
    from qua2.surrogates.cv import DEFAULT_CURVE
    from qua2.surrogates.fit import FitOptions, fit_study

    if args.folds < 2:
        raise Qua2Error(f"--folds must be at least 2, got {args.folds}.")
    chosen = args.surrogate or ["all"]
    kinds = tuple(SURROGATES) if "all" in chosen else tuple(dict.fromkeys(chosen))
    gnn = {k: v for k, v in (("hop_rank_weight", args.hop_rank), ("conv", args.conv))
           if v is not None}
    options = FitOptions(
        surrogates=kinds, target=args.target, folds=args.folds, seed=args.seed,
        curve_sizes=DEFAULT_CURVE if args.curve is None else tuple(args.curve),
        curve_gnn=args.curve_gnn,
        train_extra=("design",) if args.no_anchors else ("uniform", "design"),
        threads=args.threads, gnn_epochs=args.epochs, params={"gnn": gnn}, force=args.force)
    study = Study.open(args.study_dir)
    report = fit_study(study, options)
    print(study.path("surrogates", "cv_report.md").read_text(), end="")
    print(f"best: {report['best']}  →  {study.path('surrogates')}")
    return 0
