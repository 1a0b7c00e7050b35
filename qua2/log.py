"""qua2's messages go through :mod:`logging`: library code logs, the caller decides what shows.

Every stage reports progress and decisions ("FP reference in 3.1 s", "shard … recomputed")
with :func:`say` (``logging.getLogger("qua2").info``). Library code never installs handlers;
the command line calls :func:`show_messages`, which prints each message as one ``qua2: …``
line on the *current* ``sys.stderr`` through tqdm, so progress bars are not broken. A notebook
or script that wants the same lines calls :func:`show_messages` too, or configures logging
as it likes.
"""

from __future__ import annotations

import logging
import sys

LOGGER = logging.getLogger("qua2")


def say(message: str) -> None:
    """Report one line of progress or a decision (INFO on the ``qua2`` logger)."""
    LOGGER.info(message)


class _StderrLine(logging.Handler):
    """``qua2: message`` on whatever ``sys.stderr`` is at the time (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(f"qua2: {record.getMessage()}", file=sys.stderr)
        except Exception:  # a closed stream must never break a study
            self.handleError(record)


def show_messages(level: int = logging.INFO) -> None:
    """Print qua2's messages on stderr from ``level`` up (idempotent)."""
    if not any(isinstance(h, _StderrLine) for h in LOGGER.handlers):
        LOGGER.addHandler(_StderrLine())
    LOGGER.setLevel(level)
    LOGGER.propagate = False
