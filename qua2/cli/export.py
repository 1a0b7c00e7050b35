"""``qua2 export DIR --config ID --out PATH``: a config as versioned JSON + packed safetensors.

``ID`` is a configuration id from ``qua2 results`` or ``DIR/search/candidates.json``, or
``best:BUDGET`` for the best verified qua2 pick at that budget (e.g. ``best:3.5``).
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("export", help="export a config as packed low-bit weights",
                                   description=__doc__)
    parser.add_argument("study_dir")
    parser.add_argument("--config", required=True, help="config id, or best:BUDGET")
    parser.add_argument("--out", required=True, help="output directory")
    return parser


def run(args: argparse.Namespace) -> int:
    from qua2.export import export_study_config
    from qua2.study.study import Study

    summary = export_study_config(Study.open(args.study_dir), args.config, args.out)
    print(summary)
    return 0
