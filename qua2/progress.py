"""Progress bars that stay readable in log files.

On a terminal a bar redraws several times a second; redirected to a file, every redraw is kept,
and an hour-long run leaves megabytes of them. Off a terminal, qua2's bars redraw at most every
``LOG_INTERVAL`` seconds.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm

#: Seconds between redraws when stderr is not a terminal.
LOG_INTERVAL = 30.0


def progress_bar(iterable: Any = None, **options: Any) -> tqdm:
    """``tqdm`` on stderr, redrawing at most every :data:`LOG_INTERVAL` s off a terminal."""
    if not sys.stderr.isatty():
        options.setdefault("mininterval", LOG_INTERVAL)
    return tqdm(iterable, **options)
