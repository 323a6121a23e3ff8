"""Progress bars on stderr for long commands, only when a person is watching (a terminal and
no --json)."""
from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


def bar(args, *, transient: bool = True):
    quiet = getattr(args, "json", False) or not sys.stderr.isatty()
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=Console(stderr=True),
                    transient=transient, disable=quiet)
