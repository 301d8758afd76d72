"""`StreamBarFeed`: closed candles from ccxt.pro's kline stream, never skipped, never doubled.

One watcher task per symbol reads `watch_ohlcv` updates. A candle is closed on its final update
(Binance's k.x, or the venue's event time past its end) or when the next candle opens. A stream
that fails (disconnect) or stays silent for `stall_s` (a stall: the connection may look open)
is dropped and subscribed afresh, and what closed meanwhile is fetched over REST
(`fetch_closed_bars` since the symbol's last closed candle) before the stream is trusted again;
a candle arriving after a hole (the stream reconnected after the backfill ran) also triggers a
backfill. Candles are keyed by open time and only those after the last one handed out are
kept, so a candle seen through both paths is one step.

The feed hands out a step once every symbol has closed it, exactly as the polling feed does;
on_idle (approvals, commands, reconciliation) runs at most every `poll_s` between steps.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from quantdesk.engine.feeds import Step
from quantdesk.model import VenueError
from quantdesk.system.bar_feeds import LiveBarFeed, _steps
from quantdesk.venues.ccxt_venue import CcxtVenue

log = logging.getLogger(__name__)

RETRY_S = 0.2  # first pause before reconnecting a failed stream (doubles up to RETRY_CAP_S)
RETRY_CAP_S = 5.0
BACKFILL_LIMIT = 500  # candles per REST page


@dataclass
class StreamStats:
    """Counters of one feed: what came through the stream and what had to be repaired."""

    updates: int = 0  # candle updates received from the stream
    closed: int = 0  # candles closed from the stream
    backfilled: int = 0  # candles that only REST delivered
    reconnects: int = 0  # streams dropped after an error
    stalls: int = 0  # streams dropped after stall_s of silence
    backfills: int = 0  # REST backfills run


class StreamBarFeed(LiveBarFeed):
    """Closed candles of several symbols from a ccxt.pro venue's kline streams."""

    def __init__(
        self,
        venue: CcxtVenue,
        symbols: Sequence[str],
        timeframe: str,
        *,
        poll_s: float = 5.0,
        stall_s: float = 30.0,
        after_ms: int | None = None,
        until_ms: int | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        """stall_s: a stream silent this long is reconnected; poll_s: how often on_idle runs;
        the rest as LiveBarFeed."""
        super().__init__(
            venue, symbols, timeframe, poll_s=poll_s, after_ms=after_ms, until_ms=until_ms,
            stop=stop,
        )  # fmt: skip
        self.stall_s = stall_s
        self.stats = StreamStats()
        self._closed: dict[str, dict[int, list[Any]]] = {s: {} for s in self.symbols}
        self._last: dict[str, int | None] = {}  # per symbol: the newest closed candle known
        self._forming: dict[str, list[Any]] = {}  # per symbol: the candle not yet closed
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_idle = 0.0
        # called with (symbol, candle row) as a stream update arrives (the benchmark's probe)
        self.on_update: Any = None

    # --- the feed ---------------------------------------------------------------------------

    async def _poll(self) -> list[Step]:
        """The steps every symbol has closed since the last call (starts the watchers)."""
        if not self._tasks:
            self._start()
        for task in self._tasks:
            if task.done() and not task.cancelled():
                task.result()  # a watcher only ends by an unexpected error: raise it here
        self.polls += 1
        if self.after_ms is None:
            if any(self._last.get(s) is None for s in self.symbols):
                return []
            # no warm-up: only what closes from now on is news
            self.after_ms = min(v for v in self._last.values() if v is not None)
            for rows in self._closed.values():
                rows.clear()
            return []
        known = [self._last.get(s) for s in self.symbols]
        if any(k is None for k in known):
            return []
        latest = min(k for k in known if k is not None)
        per_symbol = {}
        for symbol, rows in self._closed.items():
            ready = sorted(t for t in rows if self.after_ms < t <= latest)
            per_symbol[symbol] = [rows.pop(t) for t in ready]
            for t in [t for t in rows if t <= self.after_ms]:
                del rows[t]
        steps = _steps(per_symbol)
        if steps:
            self.after_ms = steps[-1][0].bar.time
        return steps

    def _idle_due(self) -> bool:
        now = time.monotonic()
        if now - self._last_idle < self.poll_s:
            return False
        self._last_idle = now
        return True

    async def _pause(self) -> None:
        """Wait for a closed candle, a stop, or the next idle time."""
        if self._changed.is_set():
            self._changed.clear()
            return
        wait = max(0.0, self.poll_s - (time.monotonic() - self._last_idle))
        waiters = [
            asyncio.ensure_future(self._changed.wait()),
            asyncio.ensure_future(self.stop.wait()),
        ]
        try:
            await asyncio.wait(waiters, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
        self._changed.clear()

    async def close(self) -> None:
        """Stop the watchers and close the stream connections."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        if tasks:
            with suppress(VenueError, OSError):
                await self.venue.reset_streams()

    # --- one symbol -------------------------------------------------------------------------

    def _start(self) -> None:
        for symbol in self.symbols:
            self._last.setdefault(symbol, self.after_ms)
            self._tasks.append(asyncio.create_task(self._watch(symbol), name=f"klines {symbol}"))

    async def _watch(self, symbol: str) -> None:
        """The symbol's kline stream forever: backfill after every loss, then follow."""
        lost, failures = True, 0  # the stream starts after the warm-up: fetch what closed since
        watch: asyncio.Future[Any] | None = None
        try:
            while True:
                if lost:
                    if not await self._backfill(symbol):
                        failures += 1
                        await asyncio.sleep(min(RETRY_S * 2**failures, RETRY_CAP_S))
                        continue
                    lost = False
                if watch is None:
                    watch = asyncio.ensure_future(self.venue.watch_candles(symbol, self.timeframe))
                # asyncio.wait, not wait_for: a ccxt watch does not always end when cancelled,
                # and wait_for would wait for it to; a stalled one is abandoned instead
                await asyncio.wait({watch}, timeout=self.stall_s)
                if not watch.done():
                    self.stats.stalls += 1
                    log.warning(
                        "%s klines: no update for %.1f s; resubscribing", symbol, self.stall_s
                    )
                    _abandon(watch)
                    watch = None
                    lost = True
                    self._forming.pop(symbol, None)
                    with suppress(VenueError, OSError):
                        await self.venue.reset_streams()
                    continue
                done, watch = watch, None
                if done.cancelled() or isinstance(done.exception(), VenueError | OSError):
                    # (ccxt cancels the watches of a connection it closes itself)
                    self.stats.reconnects += 1
                    failures += 1
                    reason = "cancelled" if done.cancelled() else type(done.exception()).__name__
                    log.warning("%s klines: stream failed (%s); reconnecting", symbol, reason)
                    lost = True
                    # an update lost with the connection may have changed the forming candle
                    self._forming.pop(symbol, None)
                    await asyncio.sleep(min(RETRY_S * 2 ** min(failures, 6), RETRY_CAP_S))
                    continue
                failures = 0
                await self._take(symbol, done.result())
        finally:
            if watch is not None:
                _abandon(watch)

    async def _take(self, symbol: str, updates: list[tuple[list[Any], bool]]) -> None:
        """Apply stream updates: close what they close, backfill a hole before it."""
        span = self.timeframe_ms
        for row, closed in updates:
            self.stats.updates += 1
            if self.on_update is not None:
                self.on_update(symbol, row)
            t = int(row[0])
            last = self._last.get(symbol)
            if last is not None and t <= last:
                continue  # already closed (a repeat after a reconnect)
            forming = self._forming.get(symbol)
            if forming is not None and int(forming[0]) < t:
                self._forming.pop(symbol)  # the next candle opened: the forming one is final
                self._add(symbol, forming)
                last = self._last.get(symbol)
            if last is not None and t - span > last:
                # every candle before t has closed, and the stream did not bring them all
                while not await self._backfill(symbol):
                    await asyncio.sleep(RETRY_S)
            if closed:
                self._forming.pop(symbol, None)
                self._add(symbol, row)
            else:
                self._forming[symbol] = row

    def _add(self, symbol: str, row: list[Any], *, backfilled: bool = False) -> None:
        t = int(row[0])
        last = self._last.get(symbol)
        if last is not None and t <= last:
            return
        self._closed[symbol][t] = row
        self._last[symbol] = t
        if backfilled:
            self.stats.backfilled += 1
        else:
            self.stats.closed += 1
        self._changed.set()

    async def _backfill(self, symbol: str) -> bool:
        """Closed candles after the symbol's last one, over REST; False if the venue failed."""
        self.stats.backfills += 1
        try:
            while True:
                last = self._last.get(symbol)
                since = None if last is None else last + 1
                limit = 1 if last is None else BACKFILL_LIMIT  # no start: only the newest
                rows = await self.venue.fetch_closed_bars(symbol, self.timeframe, since, limit)
                for row in rows:
                    self._add(symbol, row, backfilled=True)
                if last is None or len(rows) < limit:
                    return True
        except VenueError as exc:
            log.warning("%s klines: backfill failed (%s)", symbol, type(exc).__name__)
            return False


def _abandon(watch: asyncio.Future[Any]) -> None:
    """Cancel a watch nobody waits for any more; its outcome is consumed so that asyncio does
    not report it as never retrieved."""
    watch.cancel()
    watch.add_done_callback(lambda f: f.cancelled() or f.exception())
