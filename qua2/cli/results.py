"""``qua2 results DIR --csv [--out FILE]``: one row per configuration with metrics and choices."""

from __future__ import annotations

import argparse
import sys

from qua2.study.results import results_frame
from qua2.study.study import Study


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("results", help="table of evaluated configurations",
                                   description=__doc__)
    parser.add_argument("study_dir")
    parser.add_argument("--csv", action="store_true", help="CSV (default: a readable table)")
    parser.add_argument("--out", help="write to this file instead of stdout")
    parser.add_argument("--no-layers", action="store_true", help="omit per-layer columns")
    return parser


def run(args: argparse.Namespace) -> int:
    frame = results_frame(Study.open(args.study_dir), with_layers=not args.no_layers)
    if args.csv:
        text = frame.to_csv(index=False)
    else:
        text = frame.drop(columns=[c for c in frame if c.startswith("layer:")]).to_string()
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text + ("" if text.endswith("\n") else "\n"))
    return 0
