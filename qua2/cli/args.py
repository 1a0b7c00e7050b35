"""Argument types and the parser class shared by every sub-command.

Bad flags get the same treatment as every other bad input: one line starting ``qua2: error:``
that names the flag and the fix, and exit code 2 (argparse's multi-line usage block is left
to ``--help``).
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import NoReturn


class Qua2ArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        print(f"qua2: error: {message}; see `{self.prog} --help`.", file=sys.stderr)
        raise SystemExit(2)


def positive_int(text: str) -> int:
    """An integer ≥ 1 (counts: configurations, workers, threads, folds, rounds …)."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An integer ≥ 0 (seeds)."""
    return _int_at_least(text, 0)


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{value} is below the minimum of {low}")
    return value


def finite_float(text: str) -> float:
    """A finite number (bit budgets, weights)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value
