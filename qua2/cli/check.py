"""``qua2 check STUDY.yaml``: validate a study file (every key, rule, name and path), run nothing.

The same checks ``qua2 run`` makes before its first stage, so a study can be checked before it
is queued on a cluster. Exit code 0 and a one-line summary when the file is usable; otherwise
one sentence naming the problem and exit code 2.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("check", help="validate a study file without running it",
                                   description=__doc__)
    parser.add_argument("study", help="study YAML file")
    parser.add_argument("--no-paths", action="store_true",
                        help="skip the checks of local paths (model, prompts, metric weights)")
    return parser


def run(args: argparse.Namespace) -> int:
    from qua2.study.config import load_study_config
    from qua2.study.validate import check_study_paths

    config = load_study_config(args.study)
    if not args.no_paths:
        check_study_paths(config)
    space = config.search_space.build()
    print(f"{args.study}: ok — {config.model.family}, {len(space)} options per layer, "
          f"{config.config_sampler.num_configs} configs × {config.images_per_config} images, "
          f"primary metric {config.metrics.primary}.")
    return 0
