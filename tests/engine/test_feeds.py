"""HistoricalFeed: closed bars from the store, one step per time, symbols aligned."""

from __future__ import annotations

import pandas as pd

from quantdesk.data.store import DataStore, SeriesKey
from quantdesk.system.replay import feed_from_store
from tests.conftest import make_bars


async def test_feed_from_store_aligns_symbols_and_skips_rows_before_a_listing(
    store: DataStore,
) -> None:
    btc = make_bars(6, seed=1)
    eth = make_bars(4, start="2024-01-01 02:00", seed=2)  # listed two bars later
    store.write(SeriesKey("x", "spot", "BTC/USDT", "1h"), btc)
    store.write(SeriesKey("x", "spot", "ETH/USDT", "1h"), eth)
    feed = feed_from_store(store, ["BTC/USDT", "ETH/USDT"], "1h")
    assert feed.timeframe_ms == 3_600_000 and feed.historical
    steps = [step async for step in feed]
    assert [len(s) for s in steps] == [1, 1, 2, 2, 2, 2]
    assert [e.index for e in steps[3]] == [3, 3]
    first_eth = steps[2][1]
    assert first_eth.symbol == "ETH/USDT"
    assert first_eth.bar.time == int(pd.Timestamp("2024-01-01 02:00", tz="UTC").timestamp() * 1000)
    assert (first_eth.bar.open, first_eth.bar.close) == (eth["open"].iloc[0], eth["close"].iloc[0])
