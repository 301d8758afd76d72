"""Hand-made two-venue markets for the arbitrage tests."""

from __future__ import annotations

import pandas as pd

from quantdesk.arbitrage.market import PairMarket
from quantdesk.arbitrage.rates import Venue, align

T0 = pd.Timestamp("2024-01-01", tz="UTC")
FREE_8H = Venue("a8h", interval_hours=8, taker_fee=0.0, maker_fee=0.0)
FREE_1H = Venue("b1h", interval_hours=1, taker_fee=0.0, maker_fee=0.0)


def hours(n: int) -> pd.DatetimeIndex:
    """n hourly times from T0."""
    return pd.date_range(T0, periods=n, freq="1h")


def market(
    rates_a: pd.Series,
    rates_b: pd.Series,
    price_a: list[float] | float = 100.0,
    price_b: list[float] | float | None = None,
    venue_a: Venue = FREE_8H,
    venue_b: Venue = FREE_1H,
) -> PairMarket:
    """A PairMarket from explicit settlements and hourly prices (B = A's price when not given)."""
    frame = align(rates_a, venue_a, rates_b, venue_b)
    n = len(frame)
    frame["price_a"] = price_a if isinstance(price_a, float) else list(price_a)[:n]
    frame["price_b"] = frame["price_a"] if price_b is None else price_b
    return PairMarket(frame, venue_a, venue_b, "BTC/USDT:USDT")
