"""``qua2 export DIR --config ID --out PATH [--format packed|gguf]``: a config, ready to run.

``ID`` is a configuration id from ``qua2 results`` or ``DIR/search/candidates.json``, or
``best:BUDGET`` for the best verified qua2 pick at that budget (e.g. ``best:3.5``).
``packed`` (default) writes versioned JSON + packed safetensors into the directory PATH;
``gguf`` writes one GGUF file PATH that diffusers loads natively (configs of GGUF types).
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("export", help="export a config (packed or GGUF)",
                                   description=__doc__)
    parser.add_argument("study_dir")
    parser.add_argument("--config", required=True, help="config id, or best:BUDGET")
    parser.add_argument("--out", required=True, help="output directory (packed) or file (gguf)")
    parser.add_argument("--format", choices=("packed", "gguf"), default="packed",
                        help="packed safetensors (default) or one GGUF file")
    return parser


def run(args: argparse.Namespace) -> int:
    from qua2.export import export_study_config, export_study_gguf
    from qua2.study.study import Study

    study = Study.open(args.study_dir)
    if args.format == "gguf":
        summary = export_study_gguf(study, args.config, args.out)
        print(f"{summary.path}: {summary.file_bytes / 1e6:.3f} MB "
              f"(FP16: {summary.fp16_bytes / 1e6:.3f} MB), {len(summary.tensor_types)} GGUF "
              "tensors")
        return 0
    print(export_study_config(study, args.config, args.out))
    return 0
