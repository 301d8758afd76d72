"""Options several commands share, declared once."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

F = TypeVar("F", bound=Callable[..., object])


def venue_filter_options(func: F) -> F:
    """--exchange and --market: narrow which stored series a symbol resolves to."""
    func = click.option(
        "--market",
        type=click.Choice(["spot", "usdm"]),
        default=None,
        help="Market type of the stored series (default: whichever holds the symbol).",
    )(func)
    return click.option(
        "--exchange",
        default=None,
        help="Exchange folder in the data store (default: whichever holds the symbol).",
    )(func)
