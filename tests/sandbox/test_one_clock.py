"""One clock: the replayed market is relabelled so the bar at the clock closes at wall "now"."""

from __future__ import annotations

import time

from quantdesk.sandbox import Sandbox
from tests.sandbox.conftest import make_config

BTC, PERP = "BTC/USDT", "BTC/USDT:USDT"
MINUTE, HOUR = 60_000, 3_600_000


def test_market_is_shifted_so_the_current_bar_closes_now() -> None:
    epoch = 1_900_000_123.456  # seconds
    sb = Sandbox(make_config(), epoch=lambda: epoch)
    assert sb.now_ms() == 1_900_000_080_000  # the minute "now" falls in
    assert sb.offset_ms % MINUTE == 0
    series = sb.series[BTC]
    assert series.times[sb.index] + MINUTE == sb.now_ms()
    assert all(sb.series[s].times[0] == series.times[0] for s in sb.series)
    # funding moves with the bars: the same 8 h spacing, settled ones all in the past
    assert (sb.series[PERP].funding_times[1] - sb.series[PERP].funding_times[0]) == 8 * HOUR
    settled = sb.series[PERP].funding_times[: sb.funding_next[PERP]]
    assert len(settled) >= 2 and settled[-1] <= sb.now_ms()


def test_data_time_kept_when_asked() -> None:
    config = make_config()
    config.shift_to_now = False
    sb = Sandbox(config, epoch=lambda: 1_900_000_123.0)
    assert sb.offset_ms == 0 and sb.now_ms() < 1_800_000_000_000


def test_now_minus_x_queries_see_the_rehearsal(client, admin) -> None:
    spot, perp = client(), client("binanceusdm")
    spot.create_order(BTC, "market", "buy", 0.01)
    now = spot.milliseconds()
    assert abs(spot.fetch_time() - now) < 5_000
    trades = spot.fetch_my_trades(BTC, since=now - HOUR)
    assert len(trades) == 1 and now - HOUR < trades[0]["timestamp"] <= now + 1000
    bars = spot.fetch_ohlcv(BTC, "1m", since=now - 11 * MINUTE, limit=10)
    assert len(bars) == 10 and now - 12 * MINUTE < bars[0][0] and bars[-1][0] < now
    funding = perp.fetch_funding_rate_history(PERP, since=now - 24 * HOUR)
    assert len(funding) >= 2 and all(now - 24 * HOUR <= f["timestamp"] <= now for f in funding)
    assert abs(perp.fetch_ticker(PERP)["timestamp"] - now) < 2 * MINUTE


def test_binance_connector_one_hour_ago(url: str, admin) -> None:
    from binance.spot import Spot

    spot = Spot(base_url=url)
    start = int(time.time() * 1000) - HOUR
    klines = spot.klines("BTCUSDT", "1m", startTime=start, limit=1000)
    assert 59 <= len(klines) <= 61 and klines[0][0] >= start
