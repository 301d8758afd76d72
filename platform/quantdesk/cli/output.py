"""Printing tables and paths for people: rich tables, plain when not on a terminal."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import click
from rich.console import Console
from rich.table import Table


def console() -> Console:
    """A console on stdout; wide when piped, so tables in logs and CI never wrap."""
    probe = Console()
    return Console(highlight=False, width=None if probe.is_terminal else 160)


def announce(text: str) -> None:
    """Say what a slow command is about to do, before its heavy imports."""
    click.echo(f"{text} ...")  # click.echo flushes: the line shows at once, even when piped


def print_table(
    columns: Sequence[str], rows: Iterable[Sequence[object]], title: str | None = None
) -> None:
    """Print rows as a table with the given column headers."""
    table = Table(title=title, title_justify="left", header_style="bold")
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    console().print(table)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.6g}"
    return "" if value is None else str(value)
