"""Shared terminal output: progress only for people, never for pipes or --json."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from rich.progress import Progress

console = Console()
err_console = Console(stderr=True)


def interactive(json_output: bool = False) -> bool:
    """A person is watching both streams: stdout redirected means a script or a log, so no bar either."""
    return not json_output and sys.stdout.isatty() and sys.stderr.isatty()


@contextmanager
def progress_bar(description: str, total: int | None, enabled: bool) -> Iterator[Progress | None]:
    """A rich progress bar on stderr when ``enabled``; yields None otherwise.

    rich.progress (and the tables and live display it pulls in) is imported only for a bar that is shown:
    an agent under systemd or with --json never loads it.
    """
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=err_console, transient=True)
    with progress:
        progress.add_task(description, total=total)
        yield progress


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]], fold: bool = True) -> None:
    """One listing as a rich table (perturbations, geometric transforms, task adapters, ...)."""
    from rich.table import Table

    table = Table(title=title)
    for col in columns:
        table.add_column(col, overflow="fold" if fold else "ellipsis")
    for row in rows:
        table.add_row(*row)
    console.print(table)
