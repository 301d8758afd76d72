"""LiveBarFeed against the sandbox's replayed market clock: closed candles only, in order, each
exactly once, several symbols aligned, --until honoured, poll failures survived."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from quantdesk.system.live import LiveBarFeed, RedactSignatures
from quantdesk.venues import sandbox_client
from quantdesk.venues.ccxt_venue import CcxtVenue
from tests.sandbox.conftest import Admin, admin, sandbox, url  # noqa: F401

SYMBOLS = ["BTC/USDT", "ETH/USDT"]
FIVE_MIN = 300_000


@pytest.fixture
async def venue(url: str, admin: Admin) -> AsyncIterator[CcxtVenue]:  # noqa: F811
    v = CcxtVenue(sandbox_client("binance", url, async_=True, enableRateLimit=False), "sandbox")
    await v.load()
    yield v
    await v.close()


async def advancing(admin: Admin, bars: int, every_s: float = 0.01) -> None:  # noqa: F811
    for _ in range(bars):
        await asyncio.to_thread(admin.advance, 1)
        await asyncio.sleep(every_s)


async def test_history_then_each_closed_candle_once(venue: CcxtVenue, admin: Admin) -> None:  # noqa: F811
    admin.advance(2)  # the clock stands inside a 5-minute candle
    feed = LiveBarFeed(venue, SYMBOLS, "5m", poll_s=0.005)
    warm = await feed.history(4)
    now = admin("GET", "clock")["time"]
    assert len(warm) == 4 and all(len(step) == 2 for step in warm)
    assert warm[-1][0].bar.time + FIVE_MIN <= now < warm[-1][0].bar.time + 2 * FIVE_MIN
    feed.until_ms = warm[-1][0].bar.time + 6 * FIVE_MIN
    task = asyncio.create_task(advancing(admin, 40))
    steps = [step async for step in feed]
    task.cancel()
    times = [s[0].bar.time for s in steps]
    assert times == [warm[-1][0].bar.time + k * FIVE_MIN for k in range(1, 7)]
    for step in steps:
        assert sorted(e.symbol for e in step) == SYMBOLS
        assert len({e.bar.time for e in step}) == 1 and step[0].index == -1
    # the feed's candles are the venue's final candles (none was caught half-formed)
    raw = await venue.exchange.fetch_ohlcv("BTC/USDT", "5m", times[0], 6)
    btc = [next(e.bar for e in s if e.symbol == "BTC/USDT") for s in steps]
    assert [(b.time, b.open, b.high, b.low, b.close) for b in btc] == [tuple(r[:5]) for r in raw]


async def test_stop_event_and_poll_errors(venue: CcxtVenue, admin: Admin) -> None:  # noqa: F811
    stop = asyncio.Event()
    feed = LiveBarFeed(venue, SYMBOLS[:1], "1m", poll_s=0.005, stop=stop)
    await feed.history(1)
    admin.faults(rate_limit_burst=3)  # the next polls are refused with 429
    got = []

    async def consume() -> None:
        async for step in feed:
            got.append(step[0].bar.time)
            if len(got) == 3:
                stop.set()

    task = asyncio.create_task(advancing(admin, 50, 0.02))
    await asyncio.wait_for(consume(), 20)
    task.cancel()
    assert len(got) == 3 and got == sorted(set(got))
    assert feed.finished()


def test_signatures_redacted_from_log_records() -> None:
    line = "GET http://127.0.0.1:1/api/v3/order?timestamp=1&signature=3d19255ecc8168abdbeb"
    record = logging.LogRecord("x", logging.WARNING, "f", 1, "lookup failed: %s", (line,), None)
    assert RedactSignatures().filter(record)
    assert record.getMessage() == "lookup failed: " + line.replace("3d19255ecc8168abdbeb", "***")
