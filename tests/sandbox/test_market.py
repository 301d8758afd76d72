"""Replayed market data: the clock, klines from 1m bars, filters, loading from the store."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from quantdesk.data.store import DataStore
from quantdesk.data.synthetic import SynthSpec, generate_market, resample_ohlcv, write_market
from quantdesk.errors import ConfigError
from quantdesk.model import Side
from quantdesk.sandbox import Sandbox
from quantdesk.sandbox.market import MarketClock, market_spec, store_series, synthetic_series
from quantdesk.venues import OrderRequest, OrderStatus, OrderType
from tests.sandbox.conftest import KEY, make_config


class FakeWall:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_clock_speed_and_manual_advance() -> None:
    wall = FakeWall()
    clock = MarketClock(n_bars=100, start_index=10, speed=60, wall=wall)
    assert clock.index() == 10
    wall.now += 2.5  # speed 60: one bar per wall second
    assert clock.index() == 12
    clock.advance(5)
    assert clock.index() == 17
    wall.now += 1000
    assert clock.index() == 99  # stops at the last bar
    with pytest.raises(ConfigError):
        clock.advance(-1)
    with pytest.raises(ConfigError):
        MarketClock(10, 0, -1)


def test_accelerated_clock_fills_resting_orders_as_time_passes() -> None:
    wall = FakeWall()
    config = make_config()
    config.speed = 600  # ten bars per wall second
    sb = Sandbox(config, wall=wall)
    account = sb.core.accounts[KEY]
    series = sb.series["BTC/USDT"]
    future_low = Decimal(repr(float(series.ohlcv[sb.index + 1 : sb.index + 31, 2].min())))
    price = sb.core.markets["BTC/USDT"].round_price(future_low) + Decimal("0.01")
    order = sb.core.submit(
        account,
        OrderRequest("BTC/USDT", Side.BUY, OrderType.LIMIT, qty=Decimal("0.1"), price=price),
    )
    start = sb.index
    sb.sync()
    assert sb.index == start and order.status is OrderStatus.NEW
    wall.now += 3.0
    sb.sync()
    assert sb.index == start + 30
    assert order.status is OrderStatus.FILLED


def test_klines_match_resampled_bars() -> None:
    series = synthetic_series(["ETH/USDT"], 7, 2)["ETH/USDT"]  # data time: buckets as stored
    market = generate_market(SynthSpec(seed=7, days=2))
    hourly = resample_ohlcv(market.bars("ETH/USDT"), "1h")
    rows = series.klines("1h", upto=599, start=None, end=None, limit=3)
    assert [r[0] for r in rows] == [int(t.value // 1_000_000) for t in hourly.index[7:10]]
    assert float(rows[0][2]) == pytest.approx(hourly["high"].iloc[7], abs=0.001)
    assert float(rows[1][5]) == pytest.approx(hourly["volume"].iloc[8], rel=1e-6)
    # the last hour is partial: it holds only the minutes up to the clock (bar 599)
    assert rows[-1][8] == 600 - 9 * 60
    assert float(rows[-1][4]) == pytest.approx(series.ohlcv[599, 3], abs=0.001)
    since = series.klines("15m", upto=599, start=int(series.times[0]) + 1, end=None, limit=2)
    assert since[0][0] == int(series.times[15])  # klines open at or after startTime


def test_market_spec_scales_filters_with_price() -> None:
    btc, doge = market_spec("BTC/USDT", 42_000.0), market_spec("DOGE/USDT:USDT", 0.08)
    assert (btc.tick_size, btc.step_size, btc.id, btc.perp) == (
        Decimal("0.01"),
        Decimal("0.00001"),
        "BTCUSDT",
        False,
    )
    assert (doge.tick_size, doge.step_size, doge.perp) == (Decimal("1e-8"), Decimal("10"), True)


def test_series_from_the_store(tmp_path) -> None:
    store = DataStore(tmp_path)
    market = generate_market(SynthSpec(seed=3, days=1))
    write_market(store, market, timeframes=("1m",))
    series = store_series(store, ["SOL/USDT"])
    assert set(series) == {"SOL/USDT", "SOL/USDT:USDT"}
    perp = series["SOL/USDT:USDT"]
    assert len(perp.funding_times) == len(market.funding["SOL/USDT:USDT"])
    first_rate = float(market.funding["SOL/USDT:USDT"]["funding_rate"].iloc[0])
    assert perp.funding_rate(0) == Decimal(repr(first_rate)).quantize(Decimal("1e-8"))
    assert np.allclose(series["SOL/USDT"].ohlcv[:, 3], market.bars("SOL/USDT")["close"])
    assert series["SOL/USDT"].times[1] - series["SOL/USDT"].times[0] == 60_000
