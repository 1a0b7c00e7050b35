"""``qua2 status DIR [--json]``: evaluated / failed / pending counts, time per config, best."""

from __future__ import annotations

import argparse
import json

from qua2.study.results import status_summary
from qua2.study.study import Study


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("status", help="progress of a study", description=__doc__)
    parser.add_argument("study_dir")
    parser.add_argument("--json", action="store_true", help="print JSON")
    return parser


def run(args: argparse.Namespace) -> int:
    summary = status_summary(Study.open(args.study_dir))
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    print(f"study {summary['name']} in {summary['study']}")
    for kind, counts in summary["by_kind"].items():
        print(f"  {kind:<10} " + "  ".join(f"{k} {v}" for k, v in counts.items()))
    if summary.get("images"):
        stopped = summary["stopped_early"]
        print(f"  {summary['images']:,} images generated"
              + (f" ({stopped} configs stopped early by racing)" if stopped else ""))
    if summary["seconds_per_config"] is not None:
        print(f"  {summary['seconds_per_config']:.2f} s per config (median)")
    if summary["best"]:
        best = summary["best"]
        rest = ", ".join(f"{k} {v:.4g}" for k, v in best.items() if isinstance(v, float))
        print(f"  best so far: {best['id']} ({best['kind']}): {rest}")
    return 0
