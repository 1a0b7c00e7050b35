"""The ``qua2`` command line: thin wrappers that parse, call the library and print.

Each sub-command lives in its own module of this package with two functions,
``add_parser(subparsers)`` and ``run(args) -> int``; :data:`COMMANDS` lists them. A
:class:`~qua2.errors.Qua2Error` becomes one line on stderr and exit code 2 (``--traceback``
shows the full trace); Ctrl-C exits with 130 after the library has saved what it finished.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from qua2.cli.args import Qua2ArgumentParser
from qua2.errors import Qua2Error
from qua2.log import show_messages
from qua2.version import __version__

COMMANDS = ["run", "check", "sample", "sweep", "status", "results", "graph", "fit", "explain",
            "search", "export", "report"]


def build_parser() -> argparse.ArgumentParser:
    parser = Qua2ArgumentParser(
        prog="qua2", description="Quantization-sensitivity studies of diffusion denoisers.")
    parser.add_argument("--version", action="version", version=f"qua2 {__version__}")
    parser.add_argument("--traceback", action="store_true", help="show tracebacks of errors")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"qua2.cli.{name}")
        sub = module.add_parser(subparsers)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    show_messages()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a usage error already printed
        return int(stop.code or 0)
    try:
        return int(args._run(args) or 0)
    except Qua2Error as error:
        if args.traceback:
            raise
        print(f"qua2: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("qua2: interrupted; finished work is saved, run the same command to resume.",
              file=sys.stderr)
        return 130
