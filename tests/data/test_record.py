"""Recording a sandbox's trade and depth streams over HTTP and websockets into the store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from quantdesk.data.quality import check_frame
from quantdesk.data.record import Recorder, RecordSpec
from quantdesk.data.store import DataStore, SeriesKey
from quantdesk.data.ticks import replay_book
from quantdesk.sandbox import Sandbox
from quantdesk.sandbox.streams import pro_client
from tests.sandbox.conftest import Admin, admin, landed, sandbox, url  # noqa: F401

BTC = "BTC/USDT"


def _ws(base: str) -> str:
    return f"ws://{urlsplit(base).netloc}/ws"


async def _advance(admin: Admin, bars: int) -> None:  # noqa: F811
    for _ in range(bars):
        await asyncio.to_thread(admin.advance, 1)
        await asyncio.sleep(0.05)


async def _until(done: Any, what: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not done():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def _caught_up(recorder: Recorder, sandbox: Sandbox, timeout: float = 20.0) -> None:  # noqa: F811
    """Wait until both series hold the sandbox's latest id (a loaded machine is slow)."""
    keys = [recorder.key(BTC, kind) for kind in recorder.spec.streams]
    deadline = asyncio.get_running_loop().time() + timeout
    while any(recorder.last_ids.get(k, -1) < sandbox.index for k in keys):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"recorder stuck at {recorder.last_ids}, sandbox {sandbox.index}")
        await asyncio.sleep(0.05)


async def _record(
    url: str,  # noqa: F811
    store: DataStore,
    steps: Any,
    sandbox: Sandbox,  # noqa: F811
    **spec: Any,
) -> Recorder:
    """Record BTC/USDT while `steps()` drives the sandbox, then stop once caught up and flush."""
    ex = pro_client("binance", url)
    recorder = Recorder(ex, store, "binance", "spot", RecordSpec((BTC,), **spec), _ws(url))
    stop = asyncio.Event()
    try:
        run = asyncio.ensure_future(recorder.run(stop))
        # both subscriptions land, then the book's first snapshot: a bar before it would
        # leave the snapshot pending (newer than every diff) with no diff to follow it
        await landed(Admin(url, sandbox.config.admin_token), "aggtrade", "@depth")
        await _until(lambda: recorder.stats.snapshots >= 1, "the first book snapshot")
        await steps(recorder)
        await _caught_up(recorder, sandbox)
        stop.set()
        await asyncio.wait_for(run, 10)
    finally:
        await ex.close()
    return recorder


async def _rest(url: str, call: str, *args: Any, **kwargs: Any) -> Any:  # noqa: F811
    ex = pro_client("binance", url)
    try:
        await ex.load_markets()
        return await getattr(ex, call)(*args, **kwargs)
    finally:
        await ex.close()


async def test_recorded_trades_and_book_match_the_sandbox_rest_api(
    url: str,  # noqa: F811
    admin: Admin,  # noqa: F811
    sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
) -> None:
    store = DataStore(tmp_path)
    start = sandbox.index
    rec = await _record(url, store, lambda _: _advance(admin, 6), sandbox, flush_events=4)
    trades = store.read(SeriesKey("binance", "spot", BTC, "trades"))
    ids = trades["id"].tolist()
    assert ids == list(range(start + 1, sandbox.index + 1)) and len(set(ids)) == len(ids)
    rest = await _rest(url, "fetch_trades", BTC, None, 100, {"fromId": start + 1})
    assert [int(t["id"]) for t in rest] == ids
    assert trades["price"].tolist() == [t["price"] for t in rest]

    book = store.read(SeriesKey("binance", "spot", BTC, "book"))
    replayed = replay_book(book)
    depth = await _rest(url, "fetch_order_book", BTC, 1000)
    assert replayed.last_id == depth["nonce"] == sandbox.index
    n = min(len(depth["bids"]), len(depth["asks"]))
    assert replayed.bids[:n] == [tuple(b) for b in depth["bids"][:n]]
    assert replayed.asks[:n] == [tuple(a) for a in depth["asks"][:n]]
    assert check_frame(book, "book") == [] and check_frame(trades, "trades") == []
    assert rec.stats.flushes >= 2 and rec.stats.resyncs == 0

    # resumable: a second recording backfills what was published between the runs and
    # appends after the first without duplicates
    await _advance(admin, 2)
    again_rec = await _record(url, store, lambda _: _advance(admin, 3), sandbox)
    assert again_rec.stats.backfilled >= 2
    again = store.read(SeriesKey("binance", "spot", BTC, "trades"))["id"].tolist()
    assert again == list(range(start + 1, sandbox.index + 1))


async def test_depth_gap_resyncs_and_a_dropped_stream_is_backfilled(
    url: str,  # noqa: F811
    admin: Admin,  # noqa: F811
    sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
) -> None:
    store = DataStore(tmp_path)
    start = sandbox.index

    async def steps(recorder: Recorder) -> None:
        await _advance(admin, 2)
        admin.faults(depth_gaps=1)
        await _advance(admin, 2)
        admin.faults(stream_disconnects=2)  # both connections: trades and depth
        snapshots = recorder.stats.snapshots
        await _advance(admin, 3)
        await landed(admin, "aggtrade", "@depth")  # both streams reconnected
        await _until(lambda: recorder.stats.snapshots > snapshots, "a snapshot after it")
        await _advance(admin, 2)

    rec = await _record(url, store, steps, sandbox, depth=100)
    assert rec.stats.resyncs == 1 and rec.stats.reconnects >= 1
    book = store.read(SeriesKey("binance", "spot", BTC, "book"))
    assert check_frame(book, "book") == []
    assert (book["kind"] == 0).groupby(book["last_id"]).any().sum() >= 2  # snapshots stored
    depth = await _rest(url, "fetch_order_book", BTC, 1000)
    assert replay_book(book).bids[:10] == [tuple(b) for b in depth["bids"][:10]]
    ids = store.read(SeriesKey("binance", "spot", BTC, "trades"))["id"].tolist()
    assert ids == list(range(start + 1, sandbox.index + 1))  # nothing lost while disconnected


@pytest.mark.parametrize("bad", ["DOGE/USDT"])
async def test_unknown_symbol_writes_nothing(
    url: str,  # noqa: F811
    admin: Admin,  # noqa: F811
    tmp_path: Path,
    bad: str,
) -> None:
    from quantdesk.errors import DataError

    ex = pro_client("binance", url)
    spec = RecordSpec((bad,), duration_s=1)
    try:
        with pytest.raises(DataError, match="does not list DOGE/USDT"):
            await Recorder(ex, DataStore(tmp_path), "binance", "spot", spec, _ws(url)).run()
    finally:
        await ex.close()
    assert not any(tmp_path.iterdir())
