"""Closed candles from a ccxt venue for paper and live sessions: the kernel's live `Feed`s.

`LiveBarFeed` polls `fetch_ohlcv` and yields only candles whose end is at or before the venue's
clock (the sandbox replays history, so "now" is the venue's, not the local wall clock).
`StreamBarFeed` (bar_streams.py) takes them from ccxt.pro's kline stream instead. Steps come out
in time order, one per open time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import suppress
from typing import Any

from quantdesk.data.timeframes import timeframe_ms
from quantdesk.engine.feeds import BarEvent, Step
from quantdesk.model import SimBar, VenueError, dec
from quantdesk.venues.ccxt_venue import CcxtVenue

log = logging.getLogger(__name__)


class LiveBarFeed:
    """Closed candles of several symbols from a ccxt venue, polled every `poll_s` seconds."""

    historical = False

    def __init__(
        self,
        venue: CcxtVenue,
        symbols: Sequence[str],
        timeframe: str,
        *,
        poll_s: float = 5.0,
        after_ms: int | None = None,
        until_ms: int | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        """after_ms: only candles opening after it (default: those closing after the first
        poll); until_ms: end the feed once a candle opening at or after it has closed."""
        self.venue = venue
        self.symbols = list(symbols)
        self.timeframe = timeframe
        self.timeframe_ms = timeframe_ms(timeframe)
        self.poll_s = poll_s
        self.after_ms = after_ms
        self.until_ms = until_ms
        self.stop = stop or asyncio.Event()
        self.polls = 0
        # awaited once per poll, between steps: the kernel is idle then, so work done here
        # (periodic reconciliation) never interleaves with an order in progress
        self.on_idle: Callable[[], Awaitable[None]] | None = None
        # called after the kernel has processed each step (the session's status line)
        self.after_step: Callable[[], None] | None = None
        # called with each step before the kernel gets it (the session journals its bars)
        self.on_step: Callable[[Step], None] | None = None

    async def history(self, bars: int) -> list[Step]:
        """The last `bars` closed candles as steps (warm-up); later polls continue after them."""
        per_symbol = {
            s: await self.venue.fetch_closed_bars(s, self.timeframe, None, bars + 1)
            for s in self.symbols
        }
        steps = _steps(per_symbol)[-bars:] if bars else []
        if steps:
            self.after_ms = max(self.after_ms or 0, steps[-1][0].bar.time)
        return steps

    async def _poll(self) -> list[Step]:
        per_symbol: dict[str, list[list[Any]]] = {}
        for symbol in self.symbols:
            since = None if self.after_ms is None else self.after_ms + 1
            per_symbol[symbol] = await self.venue.fetch_closed_bars(symbol, self.timeframe, since)
        self.polls += 1
        steps = _steps(per_symbol)
        if self.after_ms is None:
            # first poll without a starting point: only what closes from now on is news
            self.after_ms = steps[-1][0].bar.time if steps else None
            return []
        # a step is complete once every symbol has reported it (or moved past it)
        # (exchanges list a candle for every interval, traded or not)
        latest = min(rows[-1][0] if rows else self.after_ms for rows in per_symbol.values())
        ready = [s for s in steps if self.after_ms < s[0].bar.time <= latest]
        if ready:
            self.after_ms = ready[-1][0].bar.time
        return ready

    def finished(self) -> bool:
        """The --until time has been reached (or a stop was requested)."""
        if self.stop.is_set():
            return True
        return (
            self.until_ms is not None
            and self.after_ms is not None
            and self.after_ms >= self.until_ms
        )

    async def __aiter__(self) -> AsyncIterator[Step]:
        while not self.finished():
            try:
                steps = await self._poll()
            except VenueError as exc:
                log.warning("bar poll failed (%s); retrying", type(exc).__name__)
                steps = []
            for step in steps:
                if self.until_ms is not None and step[0].bar.time > self.until_ms:
                    self.after_ms = self.until_ms
                    return
                for event in step:
                    self.venue.marks[event.symbol] = dec(event.bar.close)
                if self.on_step is not None:
                    self.on_step(step)
                yield step
                if self.after_step is not None:  # the kernel has processed the step
                    self.after_step()
                if self.stop.is_set():
                    return
            if self.finished():
                return
            if self.on_idle is not None and self._idle_due():
                await self.on_idle()
            await self._pause()

    def _idle_due(self) -> bool:
        """Whether on_idle runs now (a polling feed idles once per poll)."""
        return True

    async def _pause(self) -> None:
        """Wait until the next poll (or a stop)."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), self.poll_s)

    async def close(self) -> None:
        """Release what the feed holds (a polling feed holds nothing)."""


def _steps(per_symbol: dict[str, list[list[Any]]]) -> list[Step]:
    """Rows per symbol -> steps of BarEvents sharing an open time, in time order."""
    by_time: dict[int, Step] = {}
    for symbol, rows in per_symbol.items():
        for t, o, h, low, c, v in (r[:6] for r in rows):
            bar = SimBar(int(t), float(o), float(h), float(low), float(c), float(v or 0.0))
            by_time.setdefault(int(t), []).append(BarEvent(symbol, bar, -1))
    return [by_time[t] for t in sorted(by_time)]
