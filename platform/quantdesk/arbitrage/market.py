"""The two-venue market a pair backtest runs on: prices and funding of both legs, hourly.

Venue A is Binance USD-M: the shipped real daily klines and 8-hourly funding (or the same series
from the store). Venue B is a recorded series from the store, or the seeded synthetic venue of
`rates.synthetic_rates`, priced at Binance's price x (1 + a small seeded basis).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

from quantdesk.arbitrage.rates import (
    BINANCE_USDM,
    SYNTHETIC_HOURLY,
    Venue,
    align,
    basis_path,
    infer_interval_hours,
    settlements,
    synthetic_rates,
)
from quantdesk.data.csv_import import ImportOptions, parse_csv
from quantdesk.data.samples import sample_path
from quantdesk.data.store import FUNDING, DataStore
from quantdesk.data.times import parse_time
from quantdesk.errors import DataError
from quantdesk.model import parse_symbol

SAMPLE = "binance-um"


@dataclass(frozen=True)
class PairMarket:
    """Hourly frame of both venues (see `rates.align`) plus price_a and price_b, and the venues."""

    frame: pd.DataFrame
    venue_a: Venue
    venue_b: Venue
    symbol: str


def sample_symbols() -> list[str]:
    """The perpetuals the shipped sample has both daily klines and funding for."""
    folder = sample_path(SAMPLE)
    ids = sorted(p.name.removesuffix("-funding.csv") for p in folder.glob("*-funding.csv"))
    return [
        f"{i.removesuffix('USDT')}/USDT:USDT" for i in ids if (folder / f"{i}-1d.csv").is_file()
    ]


def _sample_id(symbol: str) -> str:
    try:
        parsed = parse_symbol(symbol)
    except ValueError as exc:
        raise DataError(f"bad symbol {symbol!r}: {exc}") from None
    if not parsed.is_derivative:
        raise DataError(f"{symbol} is not a perpetual: funding arbitrage needs e.g. BTC/USDT:USDT")
    if symbol not in sample_symbols():
        known = ", ".join(sample_symbols())
        raise DataError(f"no shipped funding sample for {symbol} (the sample has: {known})")
    return f"{parsed.base}{parsed.quote}"


def binance_sample(symbol: str) -> tuple[pd.DataFrame, pd.Series]:
    """Real Binance daily bars (see daily_close_at) and 8-hourly funding of symbol, shipped."""
    sid = _sample_id(symbol)
    folder = sample_path(SAMPLE)
    options = ImportOptions(market="usdm")
    bars = parse_csv(folder / f"{sid}-1d.csv", options).frame
    funding = parse_csv(folder / f"{sid}-funding.csv", options).frame
    return daily_close_at(bars), settlements(funding)


def daily_close_at(bars: pd.DataFrame) -> pd.DataFrame:
    """Daily bars as price (the close), low and high stamped at the bar's end (open + 1 day):
    when they are known."""
    out = bars[["close", "low", "high"]].astype("float64").rename(columns={"close": "price"})
    out.index = pd.DatetimeIndex(out.index) + pd.Timedelta(days=1)
    return out


def hourly_price(close_at: pd.DataFrame, clock: pd.DatetimeIndex) -> pd.DataFrame:
    """At each clock time: the last close known (causal forward fill), and the low and high of
    the day that ended then (NaN on other hours: the liquidation check reads them once)."""
    price = close_at["price"]
    out = pd.DataFrame({"price": price.reindex(price.index.union(clock)).ffill().reindex(clock)})
    for col in ("low", "high"):
        out[col] = close_at[col].reindex(clock) if col in close_at else float("nan")
    return out


def build_market(
    symbol: str,
    price_a: pd.DataFrame,
    rates_a: pd.Series,
    venue_a: Venue,
    rates_b: pd.Series,
    venue_b: Venue,
    price_b: pd.DataFrame | None = None,
    seed: int = 0,
    basis_sd: float = 0.0005,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
) -> PairMarket:
    """Both venues' funding and prices on one hourly clock; B's price, when not given, is A's x
    (1 + a seeded basis)."""
    frame = align(rates_a, venue_a, rates_b, venue_b)
    if start is not None:
        frame = frame.loc[parse_time(start) :]
    if end is not None:
        frame = frame.loc[: parse_time(end)]
    frame = frame.copy()
    a = hourly_price(price_a, frame.index)
    if price_b is None:
        frame["basis"] = basis_path(frame.index, seed, sd=basis_sd)
        b = a.mul(1.0 + frame["basis"], axis=0)
    else:
        b = hourly_price(price_b, frame.index)
    for leg, prices in (("a", a), ("b", b)):
        frame[f"price_{leg}"] = prices["price"]
        frame[f"low_{leg}"] = prices["low"]
        frame[f"high_{leg}"] = prices["high"]
    frame = frame.dropna(subset=["price_a", "price_b", "rate_h_a", "rate_h_b"])
    if len(frame) < 2:
        raise DataError(f"{symbol}: prices and funding of both venues share fewer than 2 hours")
    return PairMarket(frame, venue_a, venue_b, symbol)


def sample_market(
    symbol: str,
    seed: int,
    venue_b: Venue = SYNTHETIC_HOURLY,
    start: str | None = None,
    end: str | None = None,
) -> PairMarket:
    """The shipped real Binance BTC/ETH series against the seeded synthetic venue."""
    price, rates = binance_sample(symbol)
    venue_a = binance_venue(rates)
    rates_b = synthetic_rates(rates, venue_a.interval_hours, seed, venue_b.interval_hours)
    return build_market(
        symbol, price, rates, venue_a, rates_b, venue_b, seed=seed, start=start, end=end
    )


def binance_venue(rates: pd.Series) -> Venue:
    """Binance USD-M's fees with the interval the series actually settles on (8 h in the sample)."""
    return replace(BINANCE_USDM, interval_hours=infer_interval_hours(rates))


def recorded_venue(
    store: DataStore, symbol: str, exchange: str, fees: Venue
) -> tuple[pd.Series, Venue, pd.DataFrame | None]:
    """A second venue's funding recorded in the store (its interval inferred), and its daily
    closes when stored; fees and margin from `fees`."""
    rates = settlements(store.load(symbol, FUNDING, exchange=exchange))
    venue = Venue(
        exchange,
        infer_interval_hours(rates),
        fees.taker_fee,
        fees.maker_fee,
        fees.maintenance_margin,
    )
    try:
        bars = store.load(symbol, "1d", exchange=exchange)
    except DataError:
        return rates, venue, None  # no prices recorded: priced off venue A with the basis
    return rates, venue, daily_close_at(bars)
