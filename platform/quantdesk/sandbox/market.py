"""Replayed market data for the sandbox: 1-minute bars per market, funding, and the clock.

Only bars up to the clock are visible. The clock index i means bar i has closed, so "now" is
bar i's open time plus one minute; with speed s the clock moves s/60 bars per wall second,
plus any bars advanced by hand (speed 0 is a purely manual clock).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

import numpy as np
import pandas as pd

from quantdesk.data.store import DataStore
from quantdesk.data.synthetic import SynthSpec, generate_market
from quantdesk.data.timeframes import timeframe_ms
from quantdesk.errors import ConfigError, DataError, NoDataError
from quantdesk.model import dec, parse_symbol, perpetual_of
from quantdesk.venues.models import Bar, MarketSpec

MINUTE_MS = 60_000
RATE_QUANTUM = Decimal("1e-8")


@dataclass
class Series:
    """One market's replayable 1-minute bars (float arrays) and its filters."""

    spec: MarketSpec
    times: np.ndarray  # int64 ms open times
    ohlcv: np.ndarray  # float64, shape (n, 5)
    funding_times: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    funding_rates: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def bar(self, i: int) -> Bar:
        """Bar i in Decimal, prices on the tick grid and volume on the step grid."""
        o, h, lo, c, v = self.ohlcv[i]
        tick, step = self.spec.tick_size, self.spec.step_size
        return Bar(
            int(self.times[i]),
            _dec(o, tick),
            _dec(h, tick),
            _dec(lo, tick),
            _dec(c, tick),
            _dec(v, step),
        )

    def shifted(self, offset_ms: int) -> Series:
        """The same market relabelled offset_ms later (bars, funding times)."""
        return replace(
            self, times=self.times + offset_ms, funding_times=self.funding_times + offset_ms
        )

    def funding_rate(self, i: int) -> Decimal:
        """Funding rate i as Binance publishes it: 8 decimals."""
        return dec(self.funding_rates[i]).quantize(RATE_QUANTUM)

    def klines(
        self, timeframe: str, upto: int, start: int | None, end: int | None, limit: int
    ) -> list[list]:
        """Binance klines built from 1-minute bars 0..upto (the last one may be partial)."""
        span = timeframe_ms(timeframe)
        k = span // MINUTE_MS
        if start is not None:
            first = -(-start // span) * span  # klines open at or after startTime
            lo = int(np.searchsorted(self.times, first))
            hi = min(upto + 1, lo + limit * k)
        else:
            last = int(self.times[upto]) // span * span
            lo = int(np.searchsorted(self.times, last - (limit - 1) * span))
            hi = upto + 1
        times, data = self.times[lo:hi], self.ohlcv[lo:hi]
        if not len(times):
            return []
        buckets = times - times % span
        starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
        rows = []
        highs = np.maximum.reduceat(data[:, 1], starts)
        lows = np.minimum.reduceat(data[:, 2], starts)
        vols = np.add.reduceat(data[:, 4], starts)
        quotes = np.add.reduceat(data[:, 4] * data[:, 3], starts)
        ends = np.r_[starts[1:], len(times)] - 1
        tick, step = self.spec.tick_size, self.spec.step_size
        for j, s in enumerate(starts):
            t = int(buckets[s])
            if end is not None and t > end:
                break
            rows.append(
                [
                    t,
                    str(_dec(data[s, 0], tick)),
                    str(_dec(highs[j], tick)),
                    str(_dec(lows[j], tick)),
                    str(_dec(data[ends[j], 3], tick)),
                    str(_dec(vols[j], step)),
                    t + span - 1,
                    f"{quotes[j]:.8f}",
                    int(ends[j] - s + 1),
                    str(_dec(vols[j] / 2, step)),
                    f"{quotes[j] / 2:.8f}",
                    "0",
                ]
            )
        return rows[:limit]


def regrid_funding(series: Series, hours: int | None, offset: float) -> Series:
    """The same funding on another settlement interval: each settled rate spread evenly over
    the hours it covered, summed per `hours`, plus `offset` per hour (a second venue whose
    crowd pays a different rate: what a funding arbitrage rehearsal needs)."""
    times, rates = series.funding_times, series.funding_rates
    if len(times) < 2:
        return series
    hour = 3_600_000
    gap = int(np.median(np.diff(times)))
    span = max(gap // hour, 1)
    hours = span if hours is None else hours
    if hours < 1:
        raise ConfigError("funding_hours must be >= 1")
    # per-hour accruals over the hours each settlement covers (the first covers one interval)
    hourly_t = (times[:, None] - gap + hour * np.arange(1, span + 1)[None, :]).ravel()
    hourly_r = np.repeat(rates / span, span) + offset
    n = len(hourly_t) // hours
    ends = hourly_t[: n * hours].reshape(n, hours)[:, -1]
    summed = hourly_r[: n * hours].reshape(n, hours).sum(axis=1)
    return replace(series, funding_times=ends.astype(np.int64), funding_rates=summed)


def _dec(value: float, quantum: Decimal) -> Decimal:
    return dec(value).quantize(quantum)


def market_spec(symbol: str, price: float) -> MarketSpec:
    """Filters scaled to the price level, like Binance's: ~6 significant price digits."""
    base, quote, settle = parse_symbol(symbol)
    magnitude = math.floor(math.log10(price))
    tick = Decimal(1).scaleb(magnitude - 6)
    step = Decimal(1).scaleb(-magnitude - 1)
    return MarketSpec(
        symbol=symbol,
        id=f"{base}{quote}",
        base=base,
        quote=quote,
        perp=bool(settle),
        tick_size=tick,
        step_size=step,
        min_qty=step,
        max_qty=Decimal(9_000_000),
        min_notional=Decimal(5),
    )


def _series(symbol: str, frame: pd.DataFrame, funding: pd.DataFrame | None) -> Series:
    if frame.empty:
        raise NoDataError(f"no 1m bars for {symbol}")
    times = frame.index.as_unit("ms").asi8.astype(np.int64)
    ohlcv = frame[["open", "high", "low", "close", "volume"]].to_numpy(dtype=np.float64)
    series = Series(market_spec(symbol, float(ohlcv[0, 3])), times, ohlcv)
    if funding is not None and not funding.empty:
        series.funding_times = funding.index.as_unit("ms").asi8.astype(np.int64)
        series.funding_rates = funding["funding_rate"].to_numpy(dtype=np.float64)
    return series


def synthetic_series(symbols: Sequence[str], seed: int, days: int) -> dict[str, Series]:
    """Spot and perp series for each spot symbol from a seeded synthetic market."""
    market = generate_market(SynthSpec(seed=seed, days=days))
    out = {}
    for symbol in symbols:
        perp = perpetual_of(symbol)
        if ("spot", symbol) not in market.minute_bars:
            raise ConfigError(
                f"synthetic market has no {symbol}: use {', '.join(market.spec.symbols)}"
            )
        out[symbol] = _series(symbol, market.bars(symbol), None)
        out[perp] = _series(perp, market.bars(perp), market.funding[perp])
    return out


def store_series(store: DataStore, symbols: Sequence[str]) -> dict[str, Series]:
    """Spot (and, where stored, perp) 1-minute series from the data store."""
    out = {}
    for symbol in symbols:
        out[symbol] = _series(symbol, store.load(symbol, "1m", market="spot"), None)
        perp = perpetual_of(symbol)
        try:
            bars = store.load(perp, "1m", market="usdm")
        except DataError:
            continue
        try:
            funding = store.load(perp, "funding", market="usdm")
        except DataError:
            funding = None
        out[perp] = _series(perp, bars, funding)
    return out


class MarketClock:
    """Which bar is current: start index + bars advanced by hand + wall time x speed."""

    def __init__(
        self,
        n_bars: int,
        start_index: int,
        speed: float,
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed < 0:
            raise ConfigError("speed must be >= 0 (0 = manual clock)")
        self.n_bars = n_bars
        self.start_index = min(start_index, n_bars - 1)
        self.speed = speed
        self.manual = 0
        self._wall = wall
        self._wall_start = wall()

    def index(self) -> int:
        """Index of the latest closed bar."""
        auto = int((self._wall() - self._wall_start) * self.speed / 60) if self.speed else 0
        return min(self.start_index + self.manual + auto, self.n_bars - 1)

    def advance(self, bars: int) -> None:
        """Move the clock forward by hand."""
        if bars < 0:
            raise ConfigError("the clock only moves forward")
        self.manual += bars
