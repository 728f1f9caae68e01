"""The CLI's consoles: on a terminal, rich's own width; without one (`archlab run > log`), wide enough that no
table is cut to 80 columns, so a log says what was found in full."""
from __future__ import annotations

import sys

from rich.console import Console

LOG_WIDTH = 400


def make_console() -> Console:
    return Console(width=None if sys.stdout.isatty() else LOG_WIDTH)
