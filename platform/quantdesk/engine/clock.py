"""Clocks: simulated (replay; time moves only when told) and wall (paper and live).

Both give int milliseconds UTC from `now_ms()` (also callable as `clock()`, which is what the
order manager takes) and an async `sleep`. A simulated sleep advances simulated time at once, so
retries and timeouts in a replay are deterministic and cost no real time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Protocol


class Clock(Protocol):
    """What engine components need from a clock."""

    def now_ms(self) -> int:
        """Current time, ms UTC."""
        ...

    def __call__(self) -> int:
        """Same as now_ms()."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""
        ...


def next_boundary(now_ms: int, step_ms: int) -> int:
    """The first multiple of step_ms strictly after now_ms (the next bar close)."""
    if step_ms <= 0:
        raise ValueError("step must be positive")
    return (now_ms // step_ms + 1) * step_ms


class SimClock:
    """Simulated time; it never goes backwards."""

    def __init__(self, start_ms: int) -> None:
        """start_ms: the initial time, ms UTC."""
        self._now = int(start_ms)

    def now_ms(self) -> int:
        """Current simulated time."""
        return self._now

    def __call__(self) -> int:
        """Same as now_ms()."""
        return self._now

    def advance_to(self, ts_ms: int) -> None:
        """Move time forward to ts_ms; moving backwards raises ValueError."""
        if ts_ms < self._now:
            raise ValueError(f"simulated time cannot go back from {self._now} to {ts_ms}")
        self._now = int(ts_ms)

    def advance_by(self, ms: int) -> None:
        """Move time forward by ms."""
        self.advance_to(self._now + ms)

    async def sleep(self, seconds: float) -> None:
        """Advance simulated time by `seconds` and let other tasks run once."""
        if seconds < 0:
            raise ValueError("cannot sleep a negative time")
        self.advance_by(round(seconds * 1000))
        await asyncio.sleep(0)

    def bars(self, times_ms: Iterator[int] | list[int], timeframe_ms: int) -> Iterator[int]:
        """Yield each bar's open time after advancing the clock to that bar's close.

        A strategy acting on a bar sees the clock at the bar close, which is when the bar is
        known (and when its signal is acted on at the next open, per the fill convention).
        """
        for open_ms in times_ms:
            self.advance_to(open_ms + timeframe_ms)
            yield open_ms


class WallClock:
    """Real UTC time."""

    def now_ms(self) -> int:
        """Current wall time in ms UTC."""
        return time.time_ns() // 1_000_000

    def __call__(self) -> int:
        """Same as now_ms()."""
        return self.now_ms()

    async def sleep(self, seconds: float) -> None:
        """Sleep in real time."""
        await asyncio.sleep(seconds)

    async def sleep_until(self, ts_ms: int) -> None:
        """Sleep until the wall clock reaches ts_ms (returns at once if it has)."""
        delay = (ts_ms - self.now_ms()) / 1000
        if delay > 0:
            await asyncio.sleep(delay)
