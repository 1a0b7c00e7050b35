"""``python -m analysis [SCRIPT ARGS…]``: list the analysis scripts, or run one by name.

``python -m analysis insights STUDY_DIR --out DIR`` is the same as
``python -m analysis.insights STUDY_DIR --out DIR``.
"""

from __future__ import annotations

import importlib
import sys

from analysis import SCRIPTS


def usage() -> str:
    width = max(map(len, SCRIPTS))
    lines = ["usage: python -m analysis.SCRIPT STUDY_DIR … --out DIR [flags]", "", "scripts:"]
    lines += [f"  {name:<{width}}  {text}" for name, text in SCRIPTS.items()]
    lines += ["", "`python -m analysis.SCRIPT --help` lists a script's flags."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] not in SCRIPTS:
        print(f"error: unknown analysis script {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    from analysis.common import run_main

    module = importlib.import_module(f"analysis.{argv[0]}")
    sys.argv = [f"analysis.{argv[0]}", *argv[1:]]
    return run_main(module.main)


if __name__ == "__main__":
    raise SystemExit(main())
