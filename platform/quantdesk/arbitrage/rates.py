"""Funding series of two venues, normalized by each venue's interval and aligned on one clock.

A rate is a fraction of the position's notional paid per funding interval (long pays a positive
rate). Venues settle on different intervals (Binance USD-M every 8 h, Lighter and Hyperliquid
every hour), so rates are only comparable per hour: rate / interval_hours. The APR is the
per-hour rate x 8760 (simple, not compounded: funding is paid on notional, not reinvested).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from quantdesk.errors import DataError

HOURS_PER_YEAR = 24 * 365
HOUR = pd.Timedelta(hours=1)


@dataclass(frozen=True)
class Venue:
    """One perpetuals venue: its funding interval, fees (fractions of notional) and margin."""

    name: str
    interval_hours: int
    taker_fee: float
    maker_fee: float
    maintenance_margin: float = 0.005

    def __post_init__(self) -> None:
        if self.interval_hours < 1:
            raise DataError(f"venue {self.name}: funding interval must be >= 1 hour")
        for what in ("taker_fee", "maker_fee", "maintenance_margin"):
            if not 0 <= getattr(self, what) < 1:
                raise DataError(f"venue {self.name}: {what} must be in [0, 1)")


# Binance USD-M VIP0 fees; the synthetic venue stands for an hourly DEX (Lighter/Hyperliquid-like).
BINANCE_USDM = Venue("binance", interval_hours=8, taker_fee=0.0005, maker_fee=0.0002)
SYNTHETIC_HOURLY = Venue("synthetic", interval_hours=1, taker_fee=0.0002, maker_fee=0.0)


def per_hour(rate: float | pd.Series, interval_hours: int) -> float | pd.Series:
    """A per-interval funding rate as a rate per hour (0.0001 per 8 h -> 0.0000125 per h)."""
    return rate / interval_hours


def apr(rate_per_hour: float | pd.Series) -> float | pd.Series:
    """A per-hour funding rate annualized (simple: x 8760)."""
    return rate_per_hour * HOURS_PER_YEAR


def settlements(frame: pd.DataFrame | pd.Series) -> pd.Series:
    """The funding_rate series of a stored funding frame, sorted, times on the whole hour."""
    series = frame["funding_rate"] if isinstance(frame, pd.DataFrame) else frame
    series = series.dropna().astype(np.float64)
    index = pd.DatetimeIndex(series.index)
    if index.tz is None:
        index = index.tz_localize("UTC")
    series.index = index.tz_convert("UTC").round("h")
    series = series[~series.index.duplicated(keep="last")].sort_index()
    if series.empty:
        raise DataError("funding series is empty")
    return series.rename("funding_rate")


def infer_interval_hours(rates: pd.Series) -> int:
    """The most common gap between settlements, in whole hours (a recorded series' interval)."""
    gaps = pd.Series(rates.index).diff().dropna()
    if gaps.empty:
        raise DataError("need at least two settlements to tell the funding interval")
    hours = round(float(gaps.mode().iloc[0] / HOUR))
    if hours < 1:
        raise DataError("settlements are less than an hour apart")
    return hours


def synthetic_rates(
    reference: pd.Series,
    reference_interval_hours: int,
    seed: int,
    interval_hours: int = 1,
    beta: float = 0.8,
    own_apr_sd: float = 0.15,
    half_life_hours: float = 72.0,
    noise_apr_sd: float = 0.05,
) -> pd.Series:
    """A seeded second venue's settlements, one every interval_hours over the reference's span.

    rate per hour = beta x the reference's per-hour rate of the interval in force
    + a mean-reverting own component (AR(1), stationary sd own_apr_sd in APR, given half-life)
    + white noise (sd noise_apr_sd in APR). The reference rate used is the one of the interval
    the hour lies in (the reference's next settlement): venues price the same crowding at the same
    time; the own component stands for the venue's own crowd (a DEX's longs, its points program).
    """
    reference = settlements(reference)
    rng = np.random.default_rng(seed)
    start = reference.index[0] - pd.Timedelta(hours=reference_interval_hours) + HOUR
    hours = pd.date_range(start, reference.index[-1], freq="1h")
    # the reference settlement covering each hour: the first at or after it
    at = np.searchsorted(reference.index.asi8, hours.asi8, side="left")
    ref_h = reference.to_numpy()[np.minimum(at, len(reference) - 1)] / reference_interval_hours
    phi = 0.5 ** (1.0 / half_life_hours)
    own_sd_h = own_apr_sd / HOURS_PER_YEAR
    shocks = rng.normal(0.0, own_sd_h * np.sqrt(1 - phi**2), len(hours))
    own = np.empty(len(hours))
    own[0] = rng.normal(0.0, own_sd_h)
    for i in range(1, len(hours)):
        own[i] = phi * own[i - 1] + shocks[i]
    noise = rng.normal(0.0, noise_apr_sd / HOURS_PER_YEAR, len(hours))
    hourly = pd.Series(beta * ref_h + own + noise, index=hours)
    # a venue settling every n hours pays the sum of the n hourly accruals at the interval's end
    bins = (np.arange(len(hours)) // interval_hours).astype(np.int64)
    summed = hourly.groupby(bins).sum()
    ends = hours[np.minimum((summed.index.to_numpy() + 1) * interval_hours - 1, len(hours) - 1)]
    full = np.bincount(bins) == interval_hours  # a last partial interval is not settled
    return pd.Series(summed.to_numpy()[full], index=ends[full], name="funding_rate")


def basis_path(
    index: pd.DatetimeIndex, seed: int, sd: float = 0.0005, half_life: float = 24.0
) -> pd.Series:
    """A seeded mean-reverting basis (fraction) on index: the second venue's price = p x (1+b)."""
    rng = np.random.default_rng([seed, 1])  # its own stream: the rates' draws do not move it
    phi = 0.5 ** (1.0 / half_life)
    shocks = rng.normal(0.0, sd * np.sqrt(1 - phi**2), len(index))
    out = np.empty(len(index))
    if len(index):
        out[0] = rng.normal(0.0, sd)
    for i in range(1, len(index)):
        out[i] = phi * out[i - 1] + shocks[i]
    return pd.Series(out, index=index, name="basis")


def hours_covered(rates: pd.Series, interval_hours: int) -> pd.Series:
    """Hours each settlement covers: the gap since the previous one (the venue's interval for
    the first). Venues change a symbol's interval (Binance moves some from 8 h to 4 h), so the
    gap, not a constant, normalizes each rate."""
    gaps = pd.Series(rates.index, index=rates.index).diff() / HOUR
    return gaps.fillna(float(interval_hours))


def known_per_hour(rates: pd.Series, interval_hours: int, clock: pd.DatetimeIndex) -> pd.Series:
    """At each clock time, the last settled rate (per hour) known then: what a decision may use.

    Before the first settlement nothing is known (NaN).
    """
    hourly = per_hour(rates, hours_covered(rates, interval_hours))
    known = hourly.reindex(hourly.index.union(clock)).ffill().reindex(clock)
    return known.rename("rate_h")


def settled_on(rates: pd.Series, clock: pd.DatetimeIndex) -> pd.Series:
    """The rate settled at each clock time (0 where none): what positions pay or receive then."""
    return rates.reindex(clock).fillna(0.0).rename("settled")


def align(
    rates_a: pd.Series,
    venue_a: Venue,
    rates_b: pd.Series,
    venue_b: Venue,
) -> pd.DataFrame:
    """Both venues on one hourly clock over their common span.

    Columns: settled_a/b (rate settled at that hour, 0 if none), rate_h_a/b (last known rate per
    hour), apr_a/b, spread_h (b - a per hour: what long A / short B earns) and spread_apr.
    """
    rates_a, rates_b = settlements(rates_a), settlements(rates_b)
    start = max(rates_a.index[0], rates_b.index[0])
    end = min(rates_a.index[-1], rates_b.index[-1])
    if start >= end:
        raise DataError("the two funding series do not overlap")
    clock = pd.date_range(start, end, freq="1h", name="time")
    out = pd.DataFrame(index=clock)
    for leg, rates, venue in (("a", rates_a, venue_a), ("b", rates_b, venue_b)):
        out[f"settled_{leg}"] = settled_on(rates, clock)
        out[f"rate_h_{leg}"] = known_per_hour(rates, venue.interval_hours, clock)
        out[f"apr_{leg}"] = apr(out[f"rate_h_{leg}"])
    out["spread_h"] = out["rate_h_b"] - out["rate_h_a"]
    out["spread_apr"] = apr(out["spread_h"])
    return out
