"""Bars as feeds carry them (floats), book tops and funding events."""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple


class SimBar(NamedTuple):
    """One bar as floats (what feeds carry); converted to Decimal only when orders need it.

    A NamedTuple: a replay builds one per bar, and tuples are the cheapest immutable record."""

    time: int  # open time, ms UTC
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0


class BookTop(NamedTuple):
    """Best bid and ask of one market at one time (what QuoteStrategy.on_book receives)."""

    symbol: str
    time: int  # ms UTC
    bid: Decimal | None
    ask: Decimal | None


class FundingEvent(NamedTuple):
    """A funding settlement on a perpetual: the rate and what the position received (negative:
    paid). What QuoteStrategy.on_funding receives."""

    symbol: str
    time: int  # ms UTC
    rate: Decimal
    amount: Decimal
