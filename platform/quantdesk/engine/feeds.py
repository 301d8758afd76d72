"""Feeds: where the kernel gets closed bars from.

A feed is an async iterator of steps; a step is the list of bars that closed at the same moment
(one per symbol that has a bar there), all with the same open time. Strategies only ever see
closed bars. `HistoricalFeed` replays the data store (or frames) bar by bar; a live feed (ccxt
polling of closed candles, or streams) implements the same `Feed` protocol and sets
`historical = False`, which tells the kernel to act on a close at once instead of at the next
bar's open (there is no next bar yet; the venue fills at the price in force).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import NamedTuple, Protocol

import numpy as np
import pandas as pd

from quantdesk.model import SimBar


class BarEvent(NamedTuple):
    """One closed bar of one symbol; `index` is its row in the replayed history (-1 if live)."""

    symbol: str
    bar: SimBar
    index: int = -1


Step = list[BarEvent]


class Feed(Protocol):
    """What the kernel consumes: steps of closed bars, in time order."""

    timeframe_ms: int
    historical: bool

    def __aiter__(self) -> AsyncIterator[Step]:
        """Yield steps (bars sharing one open time) as they close."""
        ...


class HistoricalFeed:
    """Replays aligned OHLCV history: one step per row, one event per symbol with a bar there.

    `bars` has column levels (field, symbol), as `quantdesk.backtest.runner.to_bars` builds it,
    so the replay sees exactly the bars the vectorbt backtest sees. A symbol's rows before its
    first bar (NaN close) are skipped.
    """

    historical = True

    def __init__(self, bars: pd.DataFrame, timeframe_ms: int) -> None:
        """bars: a wide OHLCV frame on a UTC DatetimeIndex; timeframe_ms: the bar length."""
        self.bars = bars
        self.timeframe_ms = int(timeframe_ms)
        self.symbols = [str(s) for s in bars["close"].columns]
        self.times = bars.index.as_unit("ms").asi8.astype(np.int64)
        self._fields = {
            f: bars[f].to_numpy(dtype=np.float64)
            for f in ("open", "high", "low", "close", "volume")
        }
        self._rows: Rows | None = None

    def __len__(self) -> int:
        return len(self.times)

    def step_at(self, i: int) -> Step:
        """The step of row i (what iterating yields for it; empty if no symbol has a bar)."""
        f = self._fields
        t = int(self.times[i])
        step = []
        for j, symbol in enumerate(self.symbols):
            close = float(f["close"][i, j])
            if close == close:  # not NaN
                o, h, low, v = (float(f[k][i, j]) for k in ("open", "high", "low", "volume"))
                step.append(BarEvent(symbol, SimBar(t, o, h, low, close, v), i))
        return step

    def rows(self) -> Rows:
        """Row bookkeeping for skipping quiet rows in bulk (computed once, on first use)."""
        if self._rows is None:
            self._rows = Rows(self.symbols, self.times, self._fields)
        return self._rows

    async def __aiter__(self) -> AsyncIterator[Step]:
        f = self._fields
        times = self.times.tolist()
        cols = [
            (s, *(f[k][:, j].tolist() for k in ("open", "high", "low", "close", "volume")))
            for j, s in enumerate(self.symbols)
        ]
        for i, t in enumerate(times):
            step = []
            for symbol, o, h, low, c, v in cols:
                close = c[i]
                if close == close:  # not NaN
                    step.append(BarEvent(symbol, SimBar(t, o[i], h[i], low[i], close, v[i]), i))
            if step:
                yield step


class Rows:
    """A HistoricalFeed's rows as the kernel skips them: how many steps a span of rows holds
    (rows where no symbol has a bar are no step) and each symbol's last bar up to a row."""

    def __init__(
        self, symbols: list[str], times: np.ndarray, fields: dict[str, np.ndarray]
    ) -> None:
        """times: the rows' open times (ms); fields: OHLCV arrays (rows x symbols)."""
        self.symbols = symbols
        self.times = times
        self.fields = fields
        valid = ~np.isnan(fields["close"])
        self.count = np.concatenate([[0], np.cumsum(valid.any(axis=1))])  # steps in rows [0, i)
        rows = np.arange(len(times))[:, None]
        self.last = np.maximum.accumulate(np.where(valid, rows, -1), axis=0)  # last bar row <= i
        self.first = np.where(valid.any(axis=0), valid.argmax(axis=0), len(times)).tolist()

    def steps(self, start: int, stop: int) -> int:
        """The number of steps in rows [start, stop)."""
        return int(self.count[stop] - self.count[start])

    def stop_after(self, start: int, steps: int) -> int:
        """The first row r with exactly `steps` steps in rows [start, r)."""
        return int(np.searchsorted(self.count, self.count[start] + steps, side="left"))

    def bar(self, i: int, j: int) -> SimBar:
        """Symbol j's bar of row i (which has one)."""
        f = self.fields
        return SimBar(
            int(self.times[i]),
            *(float(f[k][i, j]) for k in ("open", "high", "low", "close", "volume")),
        )
