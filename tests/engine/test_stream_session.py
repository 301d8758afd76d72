"""Live and paper sessions on the venue's kline streams (feed = streams) against the sandbox,
with stream faults on the way (dropped connections, a stall): every bar reaches the strategy
exactly once and equals the venue's kline, and the journal's fills match the venue's."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal as D
from pathlib import Path
from typing import Any

from quantdesk.engine.journal import Journal
from quantdesk.system.live import Mode, SessionSpec, run_session
from tests.engine.test_live_session import (
    ENV,
    MINUTE,
    assert_journal_matches_venue,
    ccxt_client,  # noqa: F401
    spec,
)
from tests.sandbox.conftest import Admin, admin, landed, sandbox, url  # noqa: F401

BTC = "BTC/USDT"


def streamed(session: SessionSpec, stall_s: float = 0.5) -> SessionSpec:
    """The session with its venue on feed = streams."""
    venue = session.venue.model_copy(update={"feed": "streams", "stream_stall_s": stall_s})
    return dataclasses.replace(session, venue=venue)


async def run_with_faults(
    session: SessionSpec,
    admin: Admin,  # noqa: F811
    faults: dict[int, dict[str, Any]],
) -> Any:
    """Run the session to --until, advancing a bar every 30 ms once it trades; faults[i] is
    set before the i-th advance."""
    started = asyncio.Event()
    task = asyncio.create_task(run_session(session, env=ENV, started=started))

    async def drive() -> None:
        await asyncio.wait(
            [asyncio.ensure_future(started.wait()), task], return_when="FIRST_COMPLETED"
        )
        if not task.done():  # the session took the stream (it did not fall back to polling)
            await landed(admin, "btcusdt@kline_1m")
        i = 0
        while not task.done():
            if i in faults:
                await asyncio.to_thread(admin.faults, **faults[i])
            await asyncio.to_thread(admin.advance, 1)
            await asyncio.sleep(0.03)
            i += 1

    await asyncio.wait_for(asyncio.gather(task, drive()), 120)
    return task.result()


async def assert_bars_once(journal: Journal, ex: Any, until_ms: int, result: Any) -> None:
    """One step per bar after the warm-up up to --until, and the journal's bars are the
    venue's klines."""
    record = journal.events("session_started")["payload"].iloc[0]
    warm_end = int(record["warmup_until_ms"])
    assert result.steps == (until_ms - warm_end) // MINUTE
    bars = journal.bars(BTC)
    assert bars["ts"].is_unique and int(bars["ts"].iloc[-1]) == until_ms
    first = int(bars["ts"].iloc[0])
    raw = await ex.fetch_ohlcv(BTC, "1m", first, len(bars))
    got = bars[["ts", "open", "high", "low", "close", "volume"]].itertuples(index=False)
    assert [tuple(r) for r in got] == [tuple(r[:6]) for r in raw]


async def test_live_session_on_streams_survives_disconnects_and_a_stall(
    url: str,  # noqa: F811
    admin: Admin,  # noqa: F811
    ccxt_client: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    start = admin("GET", "clock")["time"]
    until = start + 40 * MINUTE
    path = tmp_path / "live.sqlite"
    faults = {
        5: {"stream_disconnects": 1},
        15: {"stream_stall_ms": 1500},
        25: {"stream_disconnects": 2},
    }
    result = await run_with_faults(streamed(spec(url, path, until)), admin, faults)
    left = admin("GET", "faults")
    assert left["stream_disconnects"] == left["stream_stall_ms"] == 0  # every fault fired
    with Journal(path) as journal:
        await assert_bars_once(journal, ccxt_client, until, result)
        assert result.orders >= 2 and len(journal.fills()) > 0
        await assert_journal_matches_venue(journal, ccxt_client, admin)


async def test_paper_session_on_streams_takes_every_bar_once(
    url: str,  # noqa: F811
    admin: Admin,  # noqa: F811
    ccxt_client: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    start = admin("GET", "clock")["time"]
    until = start + 30 * MINUTE
    path = tmp_path / "paper.sqlite"
    session = streamed(spec(url, path, until, mode=Mode.PAPER))
    result = await run_with_faults(session, admin, {8: {"stream_disconnects": 1}})
    assert result.fills > 0 and admin("GET", "fills") == []
    with Journal(path) as journal:
        await assert_bars_once(journal, ccxt_client, until, result)
        assert sum(journal.fills()["amount"]) > D(0)
