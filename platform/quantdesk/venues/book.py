"""Order books: derived from a bar (spread and depth around its close) or fed as snapshots.

Takers consume the book level by level; what they take stays gone until the next bar or
snapshot replaces the book, so a burst of market orders inside one bar walks the book.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from quantdesk.model import Side
from quantdesk.venues.models import ZERO, Bar, MarketSpec


@dataclass(frozen=True)
class BookConfig:
    """How a book is derived from a bar: half-spread and level spacing in basis points of the
    close, number of levels per side, and each level's size as a fraction of the bar volume."""

    spread_bps: Decimal = Decimal("2")
    level_step_bps: Decimal = Decimal("1")
    levels: int = 10
    level_volume_fraction: Decimal = Decimal("0.05")


@dataclass
class Book:
    """Bids (best first, descending) and asks (best first, ascending) as [price, qty] pairs."""

    bids: list[list[Decimal]] = field(default_factory=list)
    asks: list[list[Decimal]] = field(default_factory=list)

    def best(self, side: Side) -> Decimal | None:
        """Best price on the side a taker of `side` would hit (asks for a buy)."""
        levels = self.asks if side is Side.BUY else self.bids
        return levels[0][0] if levels else None

    def available(self, side: Side, limit: Decimal | None) -> Decimal:
        """Quantity a taker of `side` could take at prices no worse than limit."""
        return sum((q for p, q in self._crossing(side, limit)), ZERO)

    def _crossing(self, side: Side, limit: Decimal | None) -> list[list[Decimal]]:
        levels = self.asks if side is Side.BUY else self.bids
        if limit is None:
            return levels
        if side is Side.BUY:
            return [lv for lv in levels if lv[0] <= limit]
        return [lv for lv in levels if lv[0] >= limit]

    def take(
        self, side: Side, qty: Decimal, limit: Decimal | None
    ) -> list[tuple[Decimal, Decimal]]:
        """Consume up to qty for a taker of `side`; return the (price, qty) executions."""
        out: list[tuple[Decimal, Decimal]] = []
        levels = self.asks if side is Side.BUY else self.bids
        for level in self._crossing(side, limit):
            if qty <= 0:
                break
            take = min(qty, level[1])
            if take > 0:
                out.append((level[0], take))
                level[1] -= take
                qty -= take
        levels[:] = [lv for lv in levels if lv[1] > 0]
        return out

    def crosses(self, side: Side, price: Decimal) -> bool:
        """Would a limit order of `side` at price execute immediately against this book?"""
        best = self.best(side)
        if best is None:
            return False
        return price >= best if side is Side.BUY else price <= best

    def snapshot(self, limit: int) -> tuple[list[list[Decimal]], list[list[Decimal]]]:
        """Top `limit` levels of each side (copies)."""
        return [list(lv) for lv in self.bids[:limit]], [list(lv) for lv in self.asks[:limit]]


def book_from_bar(bar: Bar, spec: MarketSpec, config: BookConfig) -> Book:
    """Symmetric book around the bar's close: best bid/ask at +-spread, then evenly spaced."""
    close = bar.close
    bps = Decimal("0.0001")
    best_bid = spec.round_price(close * (1 - config.spread_bps * bps))
    best_ask = spec.round_price(close * (1 + config.spread_bps * bps), up=True)
    if best_ask <= best_bid:
        best_ask = best_bid + spec.tick_size
    step = max(spec.round_price(close * config.level_step_bps * bps), spec.tick_size)
    size = max(spec.round_qty(bar.volume * config.level_volume_fraction), spec.min_qty)
    bids = []
    for i in range(config.levels):
        price = best_bid - step * i
        if price <= 0:
            break
        bids.append([price, size])
    asks = [[best_ask + step * i, size] for i in range(config.levels)]
    return Book(bids, asks)
