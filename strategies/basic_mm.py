"""Basic market maker: a symmetric ladder around the mid, skewed by inventory, its width from
an EWMA volatility estimate clamped to [min_half_spread, max_half_spread] ticks.

Rules (plain functions, unit-tested):
- half spread (ticks) = clamp(vol_mult x sigma of the mid over 1 s in ticks, min, max);
- center = mid - price_skew ticks x inventory / max_inventory (long: quote lower to sell);
- sizes: bid x (1 - size_skew x q/qmax), ask x (1 + size_skew x q/qmax), never below zero;
- `levels` levels per side, `level_step` ticks apart; bids rounded down, asks up, neither
  crossing the touch (a post-only quote through the touch would be rejected).
The backtest only replaces an order whose price moved `refresh_ticks` or more.
"""

from __future__ import annotations

import math

from quantdesk.mm.quotes import ASK, BID, Quote
from quantdesk.mm.space import Range
from quantdesk.mm.volatility import ewma_variance
from quantdesk.strategy import Float, Int, QuoteStrategy


def half_spread_ticks(vol_ticks: float, vol_mult: float, low: float, high: float) -> float:
    """vol_mult x vol_ticks clamped to [low, high]."""
    return min(max(vol_mult * vol_ticks, low), high)


def skewed_center(
    mid: float, inventory: float, max_inventory: float, skew_ticks: float, tick: float
) -> float:
    """The ladder's center: mid moved against the inventory by up to skew_ticks."""
    return mid - skew_ticks * tick * inventory / max_inventory


def skewed_sizes(
    size: float, inventory: float, max_inventory: float, size_skew: float
) -> tuple[float, float]:
    """(bid size, ask size): the side that adds to the inventory shrinks."""
    x = size_skew * inventory / max_inventory
    return max(size * (1.0 - x), 0.0), max(size * (1.0 + x), 0.0)


def ladder(
    center: float,
    half_ticks: float,
    levels: int,
    step: int,
    tick: float,
    bid_size: float,
    ask_size: float,
    best_bid: float,
    best_ask: float,
) -> list[Quote]:
    """Quotes at center -/+ half spread and every `step` ticks behind, not through the touch."""
    top_bid = min(
        math.floor((center - half_ticks * tick) / tick + 1e-9), int(best_bid / tick + 0.5)
    )
    top_ask = max(math.ceil((center + half_ticks * tick) / tick - 1e-9), int(best_ask / tick + 0.5))
    quotes = []
    for level in range(levels):
        if bid_size > 0:
            quotes.append(Quote(BID, (top_bid - level * step) * tick, bid_size, level))
        if ask_size > 0:
            quotes.append(Quote(ASK, (top_ask + level * step) * tick, ask_size, level))
    return quotes


class BasicMM(QuoteStrategy):
    """Symmetric ladder, inventory skew, EWMA-volatility spread (see the module)."""

    timeframe = "event"
    params = {
        "size": Float(0.001, 1e6, 1.0),
        "levels": Int(1, 10, 1),
        "level_step": Int(1, 100, 1),  # ticks between ladder levels
        "min_half_spread": Float(0.5, 1000.0, 0.5),  # ticks from the mid (0.5 = the touch)
        "max_half_spread": Float(0.5, 1000.0, 10.0),  # ticks
        "vol_mult": Float(0.0, 100.0, 1.0),
        "vol_halflife": Float(0.1, 86400.0, 30.0),  # seconds
        "price_skew": Float(0.0, 1000.0, 2.0),  # ticks the center moves at full inventory
        "size_skew": Float(0.0, 1.0, 0.5),
        "refresh_ticks": Int(1, 100, 2),  # replace an order only once its price moved this far
    }
    # what `quantdesk mm optimize` searches: the ranges are disjoint, so min < max always holds
    search_space = {
        "min_half_spread": Range(0.5, 3.0),
        "max_half_spread": Range(3.0, 20.0),
        "vol_mult": Range(0.0, 5.0),
        "price_skew": Range(0.0, 10.0),
        "size_skew": Range(0.0, 1.0),
        "levels": Range(1, 3),
    }

    def reset(self) -> None:
        """Forget the volatility estimate (a new run)."""
        self.var = 0.0
        self.last_mid = math.nan
        self.last_ns = 0

    def update_vol(self, mid: float, now_ns: int) -> float:
        """The EWMA variance per second after seeing mid at now_ns."""
        if not hasattr(self, "var"):
            self.reset()
        if self.last_mid == self.last_mid:  # not NaN
            dt = (now_ns - self.last_ns) / 1e9
            self.var = ewma_variance(self.var, mid - self.last_mid, dt, self.vol_halflife)
        self.last_mid, self.last_ns = mid, now_ns
        return self.var

    def on_book(self, book, ctx):
        """The quote ladder for the touch and inventory now."""
        var = self.update_vol(book.mid, book.time_ns)
        tick = ctx.tick
        half = half_spread_ticks(
            math.sqrt(var) / tick, self.vol_mult, self.min_half_spread, self.max_half_spread
        )
        center = skewed_center(book.mid, ctx.inventory, ctx.max_inventory, self.price_skew, tick)
        bid_size, ask_size = skewed_sizes(
            self.size, ctx.inventory, ctx.max_inventory, self.size_skew
        )
        return ladder(
            center, half, self.levels, self.level_step, tick, bid_size, ask_size, book.bid, book.ask
        )

    def on_timer(self, now, ctx):
        """Requote on the clock too (volatility decays while the touch is still)."""
        return self.on_book(ctx.book, ctx)
