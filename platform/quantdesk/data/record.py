"""Record a venue's trade and depth streams into the store (`quantdesk data record`).

Trades come from ccxt.pro's watch_trades (the aggTrade stream, whose ids are the ones REST
aggTrades / fetch_trades answers), deduped by id; after a reconnect the trades missed while
disconnected (or, on a re-run, since the last stored trade) are fetched over REST from the
last stored id. The book comes from the raw
Binance depth-diff stream, kept in sync the way Binance documents: buffer diffs, take a REST
snapshot, drop diffs up to its lastUpdateId, then require each diff to continue the previous
one (U = previous u + 1; USD-M: pu = previous u). A break is a gap: a new snapshot is stored
and counted as a resync. Rows are buffered and appended to the store (atomic Parquet writes)
every `flush_events` events or `flush_s` seconds and once more when the recording stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import aiohttp
import ccxt
import pandas as pd

from quantdesk.data.store import DataStore, SeriesKey
from quantdesk.data.ticks import (
    BOOK,
    DIFF,
    SNAPSHOT,
    TRADES,
    BookEvent,
    book_rows,
    trades_frame,
)
from quantdesk.errors import DataError, NoDataError

STREAMS = (TRADES, BOOK)
RETRY_S = 0.5  # pause before reconnecting a dropped stream
BACKFILL_LIMIT = 1000  # trades per REST page when backfilling
BACKFILL_PAGES = 100  # at most this many pages per backfill (the rest stays a gap)


@dataclass(frozen=True)
class RecordSpec:
    """What to record and how often to write it."""

    symbols: tuple[str, ...]
    streams: tuple[str, ...] = STREAMS
    duration_s: float | None = None  # None: until stopped
    depth: int = 1000  # levels of each REST snapshot
    flush_events: int = 1000
    flush_s: float = 5.0


@dataclass
class RecordStats:
    """Counters of one recording."""

    trades: int = 0
    book_events: int = 0
    snapshots: int = 0
    resyncs: int = 0
    reconnects: int = 0
    backfilled: int = 0
    flushes: int = 0
    rows_written: int = 0
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        """A one-line status: counts so far and the elapsed time."""
        counts = ", ".join(
            f"{f.name.replace('_', ' ')} {getattr(self, f.name)}"
            for f in fields(self)
            if f.name != "started"
        )
        return f"recording {time.monotonic() - self.started:.0f}s: {counts}"


def parse_streams(text: str) -> tuple[str, ...]:
    """Comma-separated stream names (trades, book), validated and deduplicated."""
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in STREAMS]
    if unknown or not names:
        raise DataError(
            f"unknown stream(s) {', '.join(unknown) or '(none given)'}: use {', '.join(STREAMS)}"
        )
    return names


def check_symbols(client: Any, symbols: tuple[str, ...]) -> None:
    """DataError naming the symbols the (loaded) client does not list."""
    missing = [s for s in symbols if s not in client.markets]
    if missing:
        raise DataError(f"{client.id} does not list {', '.join(missing)}")


class _Closed(Exception):
    """The depth stream ended."""


class Recorder:
    """Streams of several symbols into the store, with one buffer and one flush lock."""

    def __init__(
        self,
        client: Any,
        store: DataStore,
        exchange: str,
        market: str,
        spec: RecordSpec,
        ws_url: str,
        on_status: Callable[[RecordStats], None] | None = None,
    ) -> None:
        self.client, self.store, self.spec = client, store, spec
        self.exchange, self.market, self.ws_url = exchange, market, ws_url.rstrip("/")
        self.on_status = on_status
        self.stats = RecordStats()
        self._buffers: dict[SeriesKey, list[pd.DataFrame]] = {}
        self._pending = 0
        self._flush_lock = asyncio.Lock()
        self._last_flush = time.monotonic()
        self._last_ms: dict[str, int] = {}  # per symbol: time of the latest depth event
        self.last_ids: dict[SeriesKey, int] = {}  # the newest id buffered per series

    def key(self, symbol: str, kind: str) -> SeriesKey:
        """The store series of one symbol's trades or book."""
        return SeriesKey(self.exchange, self.market, symbol, kind)

    async def run(self, stop: asyncio.Event | None = None) -> RecordStats:
        """Record until stop is set or the duration ends; the last rows are always flushed."""
        stop = stop or asyncio.Event()
        await self.client.load_markets()
        check_symbols(self.client, self.spec.symbols)
        async with aiohttp.ClientSession() as http:
            workers = [
                *(self._trades(s) for s in self.spec.symbols if TRADES in self.spec.streams),
                *(self._book(http, s) for s in self.spec.symbols if BOOK in self.spec.streams),
                self._ticker(),
            ]
            tasks = [asyncio.ensure_future(w) for w in workers]
            stopper = asyncio.ensure_future(stop.wait())
            try:
                done, _ = await asyncio.wait(
                    [*tasks, stopper],
                    timeout=self.spec.duration_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for task in done:
                    if task is not stopper:
                        task.result()  # a worker only ends by failing: raise its error
            finally:
                for task in [*tasks, stopper]:
                    task.cancel()
                await asyncio.gather(*tasks, stopper, return_exceptions=True)
                await self.flush()
        return self.stats

    def _add(self, key: SeriesKey, frame: pd.DataFrame) -> None:
        self._buffers.setdefault(key, []).append(frame)
        self._pending += 1

    async def _maybe_flush(self) -> None:
        if self._pending >= self.spec.flush_events:
            await self.flush()

    async def flush(self) -> None:
        """Append every buffered row to the store, in the order it was recorded."""
        # shielded: a stop that cancels a worker mid-flush must not drop the rows it took
        await asyncio.shield(self._flush())

    async def _flush(self) -> None:
        async with self._flush_lock:
            buffers, self._buffers, self._pending = self._buffers, {}, 0
            self._last_flush = time.monotonic()
            for key, frames in buffers.items():
                frame = pd.concat(frames)
                added = await asyncio.to_thread(self.store.append, key, frame)
                self.stats.rows_written += added
            if buffers:
                self.stats.flushes += 1

    async def _ticker(self) -> None:
        """Flush every flush_s and report the status line."""
        while True:
            await asyncio.sleep(min(self.spec.flush_s, 1.0))
            if time.monotonic() - self._last_flush >= self.spec.flush_s:
                await self.flush()
            if self.on_status is not None:
                self.on_status(self.stats)

    def _stored_last_id(self, key: SeriesKey) -> int | None:
        try:
            ids = self.store.read(key)["id"]
        except NoDataError:
            return None
        return int(ids.max()) if len(ids) else None

    async def _trades(self, symbol: str) -> None:
        """watch_trades forever: new ids only, REST backfill after each reconnect."""
        key = self.key(symbol, TRADES)
        last_id = await asyncio.to_thread(self._stored_last_id, key)
        lost = last_id is not None  # resuming: fetch what was missed since the last run
        while True:
            try:
                batch = await self.client.watch_trades(symbol, params={"name": "aggTrade"})
                if lost and last_id is not None:
                    missed = await self._backfill(symbol, last_id)
                    self.stats.backfilled += len([t for t in missed if int(t["id"]) > last_id])
                    batch = missed + list(batch)
                lost = False
            except ccxt.NetworkError:
                self.stats.reconnects += 1
                lost = True
                await asyncio.sleep(RETRY_S)
                continue
            new = {int(t["id"]): t for t in batch if last_id is None or int(t["id"]) > last_id}
            if not new:
                continue
            trades = [new[i] for i in sorted(new)]
            last_id = int(trades[-1]["id"])
            self._add(key, trades_frame(trades))
            self.last_ids[key] = last_id
            self.stats.trades += len(trades)
            await self._maybe_flush()

    async def _backfill(self, symbol: str, last_id: int) -> list[dict]:
        """Trades after last_id over REST, page by page (at most BACKFILL_PAGES)."""
        out: list[dict] = []
        for _ in range(BACKFILL_PAGES):
            page = await self.client.fetch_trades(
                symbol, limit=BACKFILL_LIMIT, params={"fromId": last_id + 1}
            )
            page = [t for t in page if int(t["id"]) > last_id]
            out += page
            if len(page) < BACKFILL_LIMIT:
                return out
            last_id = int(page[-1]["id"])
        return out

    async def _book(self, http: aiohttp.ClientSession, symbol: str) -> None:
        """The depth stream forever: reconnect and resync whenever it drops."""
        market_id = self.client.market(symbol)["id"].lower()
        url = f"{self.ws_url}/{market_id}@depth@100ms"
        while True:
            try:
                async with http.ws_connect(url, heartbeat=30) as ws:
                    queue: asyncio.Queue[dict | None] = asyncio.Queue()
                    reader = asyncio.ensure_future(_read_depth(ws, queue))
                    try:
                        await self._follow(symbol, queue)
                    finally:
                        reader.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await reader
            except (aiohttp.ClientError, ConnectionError, _Closed):
                self.stats.reconnects += 1
                await asyncio.sleep(RETRY_S)

    async def _snapshot(self, symbol: str) -> tuple[int, BookEvent]:
        book = await self.client.fetch_order_book(symbol, self.spec.depth)
        last_id = int(book["nonce"])
        # the latest event's time (or the clock's) until a diff follows and lends its own
        stamp = book.get("timestamp") or self._last_ms.get(symbol) or self.client.milliseconds()
        event = BookEvent(
            pd.Timestamp(stamp, unit="ms", tz="UTC"),
            SNAPSHOT,
            last_id,
            last_id,
            [(float(p), float(q)) for p, q, *_ in book["bids"]],
            [(float(p), float(q)) for p, q, *_ in book["asks"]],
        )
        self.stats.snapshots += 1
        return last_id, event

    def _keep(self, key: SeriesKey, symbol: str, snapshot: BookEvent) -> BookEvent | None:
        """Buffer a snapshot now when an event gave it a time; else leave it pending."""
        if symbol not in self._last_ms:
            return snapshot
        self._add(key, book_rows(snapshot))
        return None

    async def _follow(self, symbol: str, queue: asyncio.Queue[dict | None]) -> None:
        """Sync on a snapshot, then store each diff that continues the sequence."""
        key = self.key(symbol, BOOK)
        last_id, pending = await self._snapshot(symbol)
        pending = self._keep(key, symbol, pending)
        synced = False
        try:
            while True:
                event = await queue.get()
                if event is None:
                    raise _Closed  # the next connection takes a new snapshot
                first, last = int(event["U"]), int(event["u"])
                self._last_ms[symbol] = int(event["E"])
                if last <= last_id:
                    continue  # already in the snapshot
                if "pu" in event and synced:
                    follows = int(event["pu"]) == last_id
                else:
                    follows = first <= last_id + 1
                if not follows:
                    self.stats.resyncs += synced
                    last_id, pending = await self._snapshot(symbol)
                    pending = self._keep(key, symbol, pending)
                    synced = False
                    continue
                when = pd.Timestamp(int(event["E"]), unit="ms", tz="UTC")
                if pending is not None:
                    # spot snapshots carry no time: the first diff's, so the snapshot sorts first
                    self._add(key, book_rows(_at(pending, min(when, pending.time))))
                    pending = None
                start = int(event["pu"]) + 1 if "pu" in event else first
                diff = BookEvent(when, DIFF, start, last, _levels(event["b"]), _levels(event["a"]))
                self._add(key, book_rows(diff))
                last_id, synced = last, True
                self.last_ids[key] = last
                self.stats.book_events += 1
                await self._maybe_flush()
        except asyncio.CancelledError:
            if pending is not None:  # stopped before any diff followed: keep the snapshot
                self._add(key, book_rows(pending))
            raise


def _at(event: BookEvent, when: pd.Timestamp) -> BookEvent:
    return BookEvent(when, event.kind, event.first_id, event.last_id, event.bids, event.asks)


def _levels(rows: list[list[str]]) -> list[tuple[float, float]]:
    return [(float(p), float(q)) for p, q in rows]


async def _read_depth(ws: aiohttp.ClientWebSocketResponse, queue: asyncio.Queue) -> None:
    """Queue each depthUpdate (plain or combined-stream framing); None when the stream ends."""
    try:
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            data = data.get("data", data) if isinstance(data, dict) else data
            if isinstance(data, dict) and data.get("e") == "depthUpdate":
                queue.put_nowait(data)
    finally:
        queue.put_nowait(None)
