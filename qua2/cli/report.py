"""``qua2 report DIR``: a Markdown report of the study, readable top to bottom."""

from __future__ import annotations

import argparse

from qua2.report import build_report
from qua2.study.study import Study


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("report", help="write the study's Markdown report",
                                   description=__doc__)
    parser.add_argument("study_dir")
    return parser


def run(args: argparse.Namespace) -> int:
    print(f"report: {build_report(Study.open(args.study_dir))}")
    return 0
