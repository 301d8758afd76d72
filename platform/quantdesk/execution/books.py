"""One venue's L2 order book as the router sees it: levels best first, and its taker fee."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from quantdesk.errors import QuantdeskError
from quantdesk.model import Side

Level = tuple[Decimal, Decimal]  # (price, amount)


class ExecutionError(QuantdeskError):
    """An execution request that cannot be planned (bad book, amount or algorithm terms)."""


@dataclass(frozen=True)
class VenueBook:
    """A venue's book: bids best (highest) first, asks best (lowest) first, its taker fee."""

    venue: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    taker_fee: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        for name, levels, step in (("bids", self.bids, -1), ("asks", self.asks, 1)):
            prices = [p for p, _ in levels]
            if any(p <= 0 for p in prices) or any(a < 0 for _, a in levels):
                raise ExecutionError(f"{self.venue}: {name} need positive prices and amounts")
            if prices != sorted(prices, reverse=step < 0):
                raise ExecutionError(f"{self.venue}: {name} must be best first")
        if self.bids and self.asks and self.bids[0][0] >= self.asks[0][0]:
            raise ExecutionError(f"{self.venue}: crossed book (bid >= ask)")
        if not Decimal(0) <= self.taker_fee < Decimal("0.1"):
            raise ExecutionError(f"{self.venue}: taker fee must be in [0, 0.1)")

    def levels(self, side: Side) -> tuple[Level, ...]:
        """What an order of this side takes: the asks for a buy, the bids for a sell."""
        return self.asks if side is Side.BUY else self.bids

    def mid(self) -> Decimal | None:
        """Mid of the touch (None when a side is empty)."""
        if not self.bids or not self.asks:
            return None
        return (self.bids[0][0] + self.asks[0][0]) / 2


def book(venue: str, bids: Iterable[Level], asks: Iterable[Level], taker_fee: Decimal) -> VenueBook:
    """A VenueBook from any iterables of (price, amount) levels, best first."""
    return VenueBook(venue, tuple(bids), tuple(asks), taker_fee)
