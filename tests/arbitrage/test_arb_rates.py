"""Funding rates normalized by each venue's interval and aligned on one hourly clock."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantdesk.arbitrage.market import binance_sample, sample_market
from quantdesk.arbitrage.rates import (
    BINANCE_USDM,
    align,
    apr,
    infer_interval_hours,
    per_hour,
    synthetic_rates,
)
from quantdesk.errors import DataError
from tests.arbitrage.helpers import FREE_1H, FREE_8H, T0, hours


def test_an_8h_rate_per_hour_and_annualized():
    assert per_hour(0.0001, 8) == pytest.approx(0.0000125, abs=1e-18)
    assert per_hour(0.0001, 1) == 0.0001
    assert apr(0.0000125) == pytest.approx(0.0000125 * 8760)


def test_hourly_venue_aligned_with_an_8h_venue():
    a = pd.Series([0.0008, 0.0016, -0.0008], index=T0 + pd.to_timedelta([0, 8, 16], "h"))
    b = pd.Series(np.arange(17) * 1e-5, index=hours(17))  # settles every hour
    frame = align(a, FREE_8H, b, FREE_1H)
    assert len(frame) == 17 and frame.index[0] == T0
    # settled only on its own schedule
    assert frame["settled_a"].to_numpy().nonzero()[0].tolist() == [0, 8, 16]
    assert frame["settled_b"].iloc[5] == pytest.approx(5e-5)
    # known per-hour rate: the last settlement / interval, held until the next one
    assert frame["rate_h_a"].iloc[7] == pytest.approx(0.0001)
    assert frame["rate_h_a"].iloc[8] == pytest.approx(0.0002)
    assert frame["rate_h_a"].iloc[16] == pytest.approx(-0.0001)
    assert frame["rate_h_b"].iloc[7] == pytest.approx(7e-5)
    assert frame["spread_h"].iloc[7] == pytest.approx(7e-5 - 0.0001)
    assert frame["spread_apr"].iloc[7] == pytest.approx((7e-5 - 0.0001) * 8760)


def test_settlement_times_recorded_a_few_ms_late_land_on_the_hour():
    late = T0 + pd.to_timedelta([0, 8, 16], "h") + pd.Timedelta(milliseconds=2)
    a = pd.Series([1e-4, 2e-4, 3e-4], index=late)
    b = pd.Series(1e-5, index=hours(17))
    frame = align(a, FREE_8H, b, FREE_1H)
    assert frame["settled_a"].iloc[8] == pytest.approx(2e-4)


def test_series_that_do_not_overlap_are_refused():
    a = pd.Series([1e-4, 1e-4], index=T0 + pd.to_timedelta([0, 8], "h"))
    b = pd.Series([1e-5, 1e-5], index=T0 + pd.to_timedelta([100, 101], "h"))
    with pytest.raises(DataError, match="do not overlap"):
        align(a, FREE_8H, b, FREE_1H)


def test_interval_inferred_from_a_recorded_series():
    assert infer_interval_hours(pd.Series(0.0, index=T0 + pd.to_timedelta([0, 4, 8, 12], "h"))) == 4


def test_synthetic_venue_is_seeded_on_its_interval_and_follows_binance():
    _, rates = binance_sample("BTC/USDT:USDT")
    one = synthetic_rates(rates, 8, seed=3)
    assert one.equals(synthetic_rates(rates, 8, seed=3))
    assert not one.equals(synthetic_rates(rates, 8, seed=4))
    assert set(np.diff(one.index.asi8)) == {3_600 * 10**9}
    four = synthetic_rates(rates, 8, seed=3, interval_hours=4)
    assert set(np.diff(four.index.asi8)) == {4 * 3_600 * 10**9}
    # the Binance-correlated component shows: per-hour rates move together
    frame = align(rates, BINANCE_USDM, one, FREE_1H)
    assert frame["rate_h_a"].corr(frame["rate_h_b"]) > 0.3


def test_real_sample_market_prices_b_off_binance_with_a_small_basis():
    m = sample_market("BTC/USDT:USDT", seed=7)
    ratio = m.frame["price_b"] / m.frame["price_a"] - 1
    assert ratio.abs().max() < 0.01 and ratio.std() > 0
    assert m.venue_a.interval_hours == 8 and m.venue_b.interval_hours == 1
    # the first prices known are the close of 2020-01-01, stamped at the day's end
    assert m.frame.index[0] == pd.Timestamp("2020-01-02", tz="UTC")
    assert m.frame["price_a"].iloc[0] == pytest.approx(7197.57)


def test_a_venue_that_changes_its_interval_is_normalized_by_each_gap():
    # 8-hourly, then every 4 hours from 16:00: each rate over the hours it covers
    a = pd.Series([0.0008, 0.0008, 0.0008, 0.0004], index=T0 + pd.to_timedelta([0, 8, 16, 20], "h"))
    b = pd.Series(0.0, index=hours(21))
    frame = align(a, FREE_8H, b, FREE_1H)
    assert frame["rate_h_a"].iloc[16] == pytest.approx(0.0001)
    assert frame["rate_h_a"].iloc[20] == pytest.approx(0.0001)  # 0.0004 over 4 hours
    assert frame["rate_h_a"].iloc[0] == pytest.approx(0.0001)  # the first: the nominal 8 h
