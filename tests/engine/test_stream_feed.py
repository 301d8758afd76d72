"""StreamBarFeed against the sandbox's kline streams: closed candles only, each exactly once and
equal to the venue's klines, across a dropped connection and a stalled stream (both repaired by
a resubscription and a REST backfill)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from quantdesk.engine.feeds import Step
from quantdesk.system.bar_streams import StreamBarFeed
from quantdesk.venues import sandbox_pro_client
from quantdesk.venues.ccxt_venue import CcxtVenue
from tests.sandbox.conftest import Admin, admin, landed, sandbox, url  # noqa: F401

SYMBOLS = ["BTC/USDT", "ETH/USDT"]
MINUTE = 60_000
FIVE_MIN = 300_000


@pytest.fixture
async def venue(url: str, admin: Admin) -> AsyncIterator[CcxtVenue]:  # noqa: F811
    admin("POST", "limits", {"weight_limit": 1_000_000})
    v = CcxtVenue(sandbox_pro_client("binance", url, enableRateLimit=False), "sandbox")
    await v.load()
    yield v
    await v.close()


async def collect(feed: StreamBarFeed, admin: Admin, on_step=None) -> list[Step]:  # noqa: F811
    """Run the feed to its --until while the sandbox advances one bar per step taken (and a
    bar more whenever the feed has nothing new), so the clock never outruns the test."""
    got: list[Step] = []

    async def advance() -> None:
        while True:
            await asyncio.to_thread(admin.advance, 1)
            await asyncio.sleep(0.02)

    async def consume() -> None:
        async for step in feed:
            got.append(step)
            if on_step is not None:
                await on_step(len(got))

    ticker = asyncio.create_task(advance())
    try:
        await asyncio.wait_for(consume(), 60)
    finally:
        ticker.cancel()
        await feed.close()
    return got


async def assert_venue_klines(venue: CcxtVenue, steps: list[Step], tf: str, span: int) -> None:
    """Steps are consecutive candles of every symbol, each once, equal to the venue's."""
    times = [s[0].bar.time for s in steps]
    assert times == [times[0] + k * span for k in range(len(times))]
    for symbol in SYMBOLS:
        raw = await venue.exchange.fetch_ohlcv(symbol, tf, times[0], len(times))
        bars = [next(e.bar for e in s if e.symbol == symbol) for s in steps]
        assert [(b.time, b.open, b.high, b.low, b.close, b.volume) for b in bars] == [
            tuple(r[:6]) for r in raw
        ]


async def test_each_closed_candle_once_on_its_final_update(
    venue: CcxtVenue,
    admin: Admin,  # noqa: F811
) -> None:
    admin.advance(2)  # the clock stands inside a 5-minute candle
    feed = StreamBarFeed(venue, SYMBOLS, "5m", poll_s=0.05, stall_s=20)
    warm = await feed.history(3)
    feed.until_ms = warm[-1][0].bar.time + 6 * FIVE_MIN
    got: list[Step] = []
    arrived = asyncio.Event()

    async def consume() -> None:
        async for step in feed:
            got.append(step)
            arrived.set()

    async def drive() -> None:
        # one bar at a time, the next only once this one's updates are in: when a bar ends
        # a 5-minute candle, the step must come now, not when the next candle opens
        await landed(admin, "btcusdt@kline_5m", "ethusdt@kline_5m")
        while not task.done():
            seen, taken = feed.stats.updates, len(got)
            now = (await asyncio.to_thread(admin.advance, 1))["time"]
            while feed.stats.updates < seen + 2 and not task.done():
                await asyncio.sleep(0.01)
            if now % FIVE_MIN == 0:
                while len(got) == taken and not task.done():
                    arrived.clear()
                    await asyncio.wait_for(arrived.wait(), 10)
                assert task.done() or got[-1][0].bar.time == now - FIVE_MIN

    task = asyncio.create_task(consume())
    try:
        await asyncio.wait_for(asyncio.gather(task, drive()), 60)
    finally:
        await feed.close()
    assert got[0][0].bar.time == warm[-1][0].bar.time + FIVE_MIN
    await assert_venue_klines(venue, got, "5m", FIVE_MIN)
    assert all(sorted(e.symbol for e in s) == SYMBOLS for s in got)
    assert feed.stats.reconnects == feed.stats.stalls == 0


async def test_disconnect_resubscribes_and_backfills_the_gap(
    venue: CcxtVenue,
    admin: Admin,  # noqa: F811
) -> None:
    feed = StreamBarFeed(venue, SYMBOLS, "1m", poll_s=0.05, stall_s=20)
    warm = await feed.history(2)
    feed.until_ms = warm[-1][0].bar.time + 30 * MINUTE

    async def chaos(n: int) -> None:
        if n in (5, 15):
            # the connection drops at the next publish: the bars of that publish never
            # reach this client over the stream
            await asyncio.to_thread(admin.faults, stream_disconnects=1)

    steps = await collect(feed, admin, chaos)
    assert len(steps) == 30
    await assert_venue_klines(venue, steps, "1m", MINUTE)
    assert feed.stats.reconnects >= 2 and feed.stats.backfilled >= 2


async def test_stalled_stream_is_resubscribed_and_backfilled(
    venue: CcxtVenue,
    admin: Admin,  # noqa: F811
) -> None:
    feed = StreamBarFeed(venue, SYMBOLS, "1m", poll_s=0.05, stall_s=0.5)
    warm = await feed.history(2)
    feed.until_ms = warm[-1][0].bar.time + 20 * MINUTE

    async def chaos(n: int) -> None:
        if n == 5:
            await asyncio.to_thread(admin.faults, stream_stall_ms=2500)

    steps = await collect(feed, admin, chaos)
    assert len(steps) == 20
    await assert_venue_klines(venue, steps, "1m", MINUTE)
    assert feed.stats.stalls >= 1 and feed.stats.backfilled >= 1
